"""The math: layers and activations, likelihoods, priors and the KL, the
optimizers, the parameter vector, gradient checks and random streams.
NumPy only; imports nothing from :mod:`npvae.models` or :mod:`npvae.app`."""

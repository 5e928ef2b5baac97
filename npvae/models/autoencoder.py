"""The plain Autoencoder on the VAE's layers: a deterministic code."""
import numpy as np

from ..core.layers import mlp
from ..core.validation import check_finite, refuse_non_finite
from .base import FLAT, BaseAutoencoder

__all__ = ["Autoencoder"]


class Autoencoder(BaseAutoencoder):
    r"""A plain Autoencoder on the same layers: a deterministic code
    :math:`z = \mathrm{enc}(x)`, no KL and no sampling.

    Training minimises the reconstruction loss
    :math:`-\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))`: binary
    cross-entropy for ``likelihood="bernoulli"``, and for ``"gaussian"`` the
    squared error scaled by :math:`1/2\sigma^2` plus a constant.

    Parameters are those of :class:`VAE` without ``beta`` and ``kl_warmup``.
    """

    def __init__(self, latent_dim=2, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, epochs=20, batch_size=128,
                 learning_rate=1e-3, lr_schedule="constant", beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, output_bias_init="zeros", dtype="float32",
                 random_state=None, verbose=False):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.likelihood = likelihood
        self.obs_var = obs_var
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.output_bias_init = output_bias_init
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _build_encoder(self, n_features, hidden, rng, dtype):
        self.encoder_ = mlp([n_features, *hidden, self.latent_dim], self.activation,
                            rng, dtype)

    def _named_encoder_layers(self):
        return self.encoder_.named_layers("encoder.")

    def train_step(self, x, optimizer=None):
        r"""One training step on the batch ``x``: forward to the mean
        reconstruction loss :math:`\frac1n \sum_i -\log p(x_i \mid
        \mathrm{dec}(\mathrm{enc}(x_i)))`, backward through the same pieces,
        then, given an ``optimizer``, one update of all parameters.

        Returns
        -------
        dict
            ``loss`` and ``recon``, the same batch mean in nats.
        """
        n = x.shape[0]
        code = self.encoder_.forward(x)
        out = self.decoder_.forward(code)
        recon = -self.likelihood_.forward(x, out) / n
        grad_out = self.likelihood_.backward(-1.0 / n)
        grad_code = self.decoder_.backward(grad_out)
        self.encoder_.backward(grad_code, input_grad=False)
        if optimizer is not None:
            refuse_non_finite({"loss": recon, "recon": recon}, self.parameters_)
            optimizer.step({FLAT: self.parameters_.theta}, {FLAT: self.parameters_.grad})
        return {"loss": recon, "recon": recon}

    def _train_batch(self, x, epoch_progress):
        return self.train_step(x, self.optimizer_)

    def _log_px(self, x):
        return self.likelihood_.log_prob(x, self.decoder_.forward(self.encoder_.forward(x)))

    def loss(self, X, eps=None):
        r"""Mean reconstruction loss :math:`\frac1n \sum_i -\log p(x_i \mid
        \mathrm{dec}(\mathrm{enc}(x_i)))`; ``eps`` is ignored (no noise)."""
        X = self.check_data(X)
        return -float(np.mean(self._log_px(X)))

    def loss_and_grads(self, X, eps=None):
        """The mean reconstruction loss and its gradient for every parameter
        (copies keyed like ``params_``); ``eps`` is ignored."""
        self._check_fitted_for_gradients()
        X = self.check_data(X)
        return self.train_step(X)["loss"], self._grads_copy()

    def transform(self, X):
        """The code :math:`z = \\mathrm{enc}(x)`."""
        X = self._validate_data(X, reset=False)
        return self._batched(self.encoder_.forward, X)

    def score_samples(self, X):
        r""":math:`\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))` per example, in
        nats. Not a bound on :math:`\log p(x)`: the Autoencoder has no prior."""
        X = self.check_data(X)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            return check_finite(self._batched(self._log_px, X), "log p(x | dec(enc(x)))")

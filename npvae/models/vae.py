"""The Variational Autoencoder: encode, reparameterize, decode, loss."""
from numbers import Integral, Real

import numpy as np

from ..core.layers import GaussianEncoder, Join, reparameterize, reparameterize_backward
from ..core.priors import PRIORS, SampledKL, kl_term, make_prior
from ..core.rng import as_generator, row_normals
from ..core.validation import check_finite, check_int, check_memory
from .base import BaseAutoencoder, Batch, per_row
from .hyperparameters import check_gradient_estimator, check_number, check_option

__all__ = ["VAE"]


class VAE(BaseAutoencoder):
    r"""Variational Autoencoder (Kingma & Welling, 2014) in NumPy.

    The encoder maps :math:`x` to the mean and log-variance of a diagonal
    Gaussian :math:`q(z \mid x)`; the decoder maps :math:`z` to
    :math:`p(x \mid z)`; training maximises the evidence lower bound

    .. math::
        \mathrm{ELBO}(x) = \mathbb{E}_{q(z \mid x)} \log p(x \mid z)
            - \mathrm{KL}\big(q(z \mid x) \,\|\, N(0, I)\big) \le \log p(x)

    (with the KL weighted by :math:`\beta` in the training loss).

    Parameters
    ----------
    latent_dim : int, default=2
        Dimension of :math:`z`.
    hidden_dims : tuple of int, default=(400,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        ``()`` makes both encoder and decoder linear.
    activation : str, default="relu"
        One of ``npvae.core.layers.ACTIVATIONS``.
    likelihood : {"bernoulli", "gaussian", "continuous_bernoulli"}, default="bernoulli"
        :math:`p(x \mid z)` (:mod:`npvae.core.likelihoods`): Bernoulli with logits
        from the decoder (needs :math:`x \in [0, 1]`), Gaussian with the
        decoder's mean, or the continuous Bernoulli, the normalised density
        on [0, 1] with logits from the decoder.
    obs_var : float or None, default=None
        Gaussian only: fixed observation variance :math:`\sigma^2`, or
        ``None`` to learn one isotropic :math:`\log\sigma^2`.
    beta : float, default=1.0
        Weight of the KL term in the training loss (:math:`\beta`-VAE).
    kl_warmup : float, default=0
        Epochs over which the KL weight rises linearly from 0 to ``beta``.
    prior : {"standard_normal", "mixture"}, default="standard_normal"
        :math:`p(z)`: :math:`N(0, I)` with the closed-form KL, or a learned
        mixture of ``n_components`` diagonal Gaussians
        (:class:`npvae.core.priors.GaussianMixture`), whose KL in the loss,
        ``elbo_terms``, ``score_samples`` and ``score`` is the one-sample
        estimate :math:`\log q(z \mid x) - \log p(z)` at the same
        :math:`z` as the reconstruction term (docs/math.md, §12).
    n_components : int, default=10
        Number of mixture components :math:`K`; used with ``prior="mixture"``.
    gradient_estimator : {"standard", "stl"}, default="standard"
        The encoder's gradient estimate.  ``"stl"``, "sticking the landing"
        (Roeder et al. 2017; docs/math.md §9b), differentiates the KL in its
        sampled form :math:`\log q(z \mid x) - \log p(z)` with :math:`\log q`'s
        parameters held fixed (its score term, zero on average, removed):
        unbiased, and noiseless once :math:`q` is the true posterior.  The
        loss reported and the scores stay those of ``"standard"`` (closed-form
        KL for :math:`N(0, I)`); the decoder's gradient is the same bit for
        bit.  ``"dreg"`` is refused: with one code the doubly reparameterised
        gradient is ``"stl"`` (use :class:`~npvae.models.iwae.IWAE` for it).
    epochs : int, default=20
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam's step size.
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` decays the step size to 0 over ``epochs``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's decay rates of the first and second moments and its
        :math:`\epsilon` (the names of scikit-learn's ``MLPClassifier``).
    output_bias_init : {"zeros", "data"}, default="zeros"
        ``"data"`` starts the decoder's output bias where the decoder's mean
        is the training data's mean per feature (Bernoulli: the logit of the
        pixel means, clipped to [0.001, 0.999]), as Burda et al. do.
    dtype : {"float32", "float64"}, default="float32"
        float32 for speed, float64 for gradient checks.
    random_state : int, numpy.random.Generator or None
        Seeds initialisation, shuffling and the noise :math:`\varepsilon`.
    verbose : bool, default=False
        Print one line per epoch.

    Attributes
    ----------
    encoder_ : npvae.core.layers.GaussianEncoder
        :math:`x \mapsto (\mu, \log\sigma^2)`.
    decoder_ : npvae.core.layers.Sequential
        :math:`z \mapsto` the likelihood's parameters (logits or means).
    likelihood_ : a piece of npvae.core.likelihoods (Bernoulli, Gaussian, ContinuousBernoulli)
        :math:`p(x \mid z)` from the decoder's output.
    prior_ : npvae.core.priors.StandardNormal or GaussianMixture
        :math:`p(z)`; the mixture's parameters are ``prior.logits``,
        ``prior.means`` and ``prior.logvars`` in ``params_``.
    parameters_ : npvae.core.parameters.ParameterVector
        All parameters as one vector, and their gradients as another.
    params_ : dict of str to ndarray
        The live parameter arrays, by name: views into ``parameters_.theta``,
        so writing into them changes the model.
    n_features_in_ : int
    n_iter_ : int
        Epochs trained.
    history_ : list of dict
        Per-epoch means of ``loss``, ``recon`` (:math:`-\log p(x|z)`) and ``kl``.
    optimizer_ : Adam
        Steps the parameter vector as a whole: its moments ``m`` and ``v``
        are one vector each, under the key ``npvae.models.base.FLAT``.
    kl_ : npvae.core.priors.ClosedFormKL or SampledKL
        The KL term of the loss: closed form for :math:`N(0, I)`, else the
        one-sample estimate with ``prior_``.
    path_kl_ : npvae.core.priors.SampledKL
        The sampled KL without its score term, which training differentiates
        instead of ``kl_`` when ``gradient_estimator`` is not ``"standard"``
        (read at each step, so ``set_params`` switches it mid-training).
    rng_ : numpy.random.Generator
        The generator of training, continued across ``fit_epoch`` calls.
    """

    def __init__(self, latent_dim=2, *, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, beta=1.0, kl_warmup=0,
                 prior="standard_normal", n_components=10, gradient_estimator="standard",
                 epochs=20, batch_size=128, learning_rate=1e-3,
                 lr_schedule="constant", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 output_bias_init="zeros", dtype="float32", random_state=None,
                 verbose=False):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.likelihood = likelihood
        self.obs_var = obs_var
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.prior = prior
        self.n_components = n_components
        self.gradient_estimator = gradient_estimator
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

    params_added_later = (*BaseAutoencoder.params_added_later, "prior", "n_components",
                          "gradient_estimator")
    has_prior = True
    # The gradient estimators this model offers (docs/math.md §9b).
    gradient_estimators = ("standard", "stl")

    def check_params(self):
        """The base's checks, then the KL weight, its warm-up, the prior and
        the gradient estimator."""
        hidden = super().check_params()
        check_number(self, "beta", Real, 0)
        check_number(self, "kl_warmup", Real, 0)
        check_option(self, "prior", PRIORS)
        check_number(self, "n_components", Integral, 1)
        check_gradient_estimator(self)
        return hidden

    def build_encoder(self, n_features, hidden, rng, dtype):
        r"""The Gaussian encoder, :math:`x \mapsto (\mu, \log\sigma^2)`."""
        self.encoder_ = GaussianEncoder([n_features, *hidden], self.latent_dim,
                                        self.activation, rng, dtype)

    def named_encoder_layers(self):
        """The encoder's pieces under the names checkpoints have always used."""
        yield from self.encoder_.body.named_layers("encoder.")
        yield "mu.", self.encoder_.mu
        yield "logvar.", self.encoder_.logvar

    def memory_needs(self, n_in, hidden, rows):
        """The base's, then the mixture prior's parameters (four times each)."""
        yield from super().memory_needs(n_in, hidden, rows)
        if self.prior == "mixture":
            yield (4 * self.n_components * (2 * self.latent_dim + 1),
                   f"n_components={self.n_components!r}")

    def build_prior(self, rng, dtype):
        """The prior and its KL term.  Only the mixture draws from ``rng``,
        so the default VAE's initialisation does not depend on the prior
        code."""
        self.prior_ = make_prior(self.prior, self.latent_dim, self.n_components, rng, dtype)
        self.kl_ = kl_term(self.prior_)
        self.path_kl_ = SampledKL(self.prior_, score_term=False)

    def named_layers(self):
        """The base's pieces, then the prior's parameters."""
        yield from super().named_layers()
        yield "prior.", self.prior_

    # ------------------------------------------------------------ one step
    def forward_backward(self, batch, beta=1.0):
        r"""One batch forward to the loss and backward, as docs/math.md
        derives it, filling ``parameters_.grad``.

        The loss is the mean negative ELBO with the KL weighted by
        :math:`\beta`,

        .. math::
            \mathcal{L} = \frac1n \sum_i -\log p(x_i \mid z_i)
                + \beta\,\mathrm{KL}\big(q(z \mid x_i) \,\|\, p(z)\big),
            \qquad z_i = \mu(x_i) + \sigma(x_i) \odot \varepsilon_i,

        the KL in closed form for :math:`p(z) = N(0, I)` and estimated at
        :math:`z_i` for the mixture prior.  With ``gradient_estimator="stl"``
        the gradient is that of the sampled KL with :math:`\log q`'s
        parameters held fixed (``path_kl_``, docs/math.md §9b), the value
        reported still ``kl_``'s.  Every piece returns per-row values
        and takes per-row gradients: :math:`\partial L / \partial \log p(x_i
        \mid z_i) = -1/n` and :math:`\partial L / \partial \mathrm{KL}_i =
        \beta/n`.  With labels in the batch (a conditional model) both
        networks' inputs join them (:class:`npvae.core.layers.Join`).

        Parameters
        ----------
        batch : npvae.models.base.Batch
            ``x`` (n, D), ``y_onehot`` (n, C) or None, ``eps`` (n, L).
        beta : float

        Returns
        -------
        dict
            The batch's means: ``loss``, ``recon`` (:math:`-\log p(x \mid z)`)
            and ``kl``, in nats.
        """
        x, y_onehot, eps = batch
        n = x.shape[0]
        decoder_input = Join()
        # Forward: §1 encode, §2 reparameterize, §3 decode, §4-5 the loss.
        mu, logvar = self.encoder_.forward(Join().forward(x, y_onehot))    # (n, L) each
        z = reparameterize(mu, logvar, eps)                                 # (n, L)
        out = self.decoder_.forward(decoder_input.forward(z, y_onehot))    # (n, D)
        log_px = self.likelihood_.forward(x, out)                           # (n,)
        kl = self.kl_.forward(mu, logvar, z, eps)                           # (n,)
        train_kl = self.kl_ if self.gradient_estimator == "standard" else self.path_kl_
        if train_kl is not self.kl_:
            train_kl.forward(mu, logvar, z, eps)      # STL: differentiated, not reported
        recon, kl = -float(log_px.sum()) / n, float(kl.sum()) / n
        loss = recon + beta * kl
        # Backward: the same steps in reverse; the KL's part through z (0 in
        # closed form) joins the decoder's before the reparameterization.
        grad_out = self.likelihood_.backward(per_row(n, -1.0 / n, out.dtype))
        kl_mu, kl_logvar, kl_z = train_kl.backward(per_row(n, beta / n, out.dtype))
        grad_z = decoder_input.backward(self.decoder_.backward(grad_out))
        grad_z += kl_z                              # the decoder's array is a new one
        grad_mu, grad_logvar = reparameterize_backward(grad_z, logvar, eps)
        self.encoder_.backward(grad_mu + kl_mu, grad_logvar + kl_logvar, input_grad=False)
        return {"loss": loss, "recon": recon, "kl": kl}

    def train_step(self, x, eps, beta=1.0, optimizer=None):
        r"""One training step on the batch ``x`` (n, D) with the noise ``eps``
        (n, L): :meth:`forward_backward`, then, given an ``optimizer``, the
        shared :meth:`~npvae.models.base.BaseAutoencoder.update` (refused with
        a FloatingPointError when the loss or a gradient is not finite).

        Returns
        -------
        dict
            The batch's means: ``loss``, ``recon`` and ``kl``, in nats.
        """
        return self.step(Batch(x, None, eps), beta, optimizer)

    def draw_noise(self, n):
        """:math:`\varepsilon` of shape (n, latent_dim) from ``rng_``."""
        return self.rng_.standard_normal((n, self.latent_dim), dtype=self.dtype)

    def beta_at(self, epoch_progress):
        """``beta``, rising linearly from 0 over ``kl_warmup`` epochs."""
        if self.kl_warmup > 0:
            return float(self.beta) * min(1.0, epoch_progress / self.kl_warmup)
        return float(self.beta)

    def check_noise(self, X, eps):
        """``eps`` as an array of the model's dtype and shape (n, latent_dim)
        for the rows of ``X``, finite; else a ValueError."""
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.shape != (X.shape[0], self.latent_dim):
            raise ValueError(f"eps must have shape {(X.shape[0], self.latent_dim)}, "
                             f"got {eps.shape}")
        if not np.isfinite(eps).all():
            raise ValueError("eps contains NaN or infinity")
        return eps

    def elbo_rows(self, x, y_onehot, eps):
        r""":math:`\log p(x \mid z)` and the KL per row, shape (n,) each: the
        forward pass of :meth:`forward_backward` without its caches' use."""
        mu, logvar = self.encoder_.forward(self.join_label(x, y_onehot))
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(self.join_label(z, y_onehot))
        return self.likelihood_.log_prob(x, out), self.kl_.forward(mu, logvar, z, eps)

    # ------------------------------------------------------------ for study
    def loss(self, X, eps, y=None):
        r"""Mean training loss per example for a fixed noise ``eps``:
        :math:`\frac1n\sum_i -\log p(x_i \mid z_i) + \beta\,\mathrm{KL}_i`,
        computed row by row (not by :meth:`forward_backward`).  A
        deterministic function of the parameters, for gradient checks."""
        X = self.check_data(X)
        Y = self.labels_onehot(y, X.shape[0])
        eps = self.check_noise(X, eps)
        log_px, kl = self.elbo_rows(X, Y, eps)
        return float(np.mean(-log_px + self.beta * kl))

    def loss_and_grads(self, X, eps=None, y=None):
        """The mean loss per example and its gradient for every parameter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        eps : ndarray of shape (n_samples, latent_dim), optional
            Reparameterization noise; drawn from ``rng_`` when omitted.
            With it given the call is deterministic.
        y : array-like of shape (n_samples,), optional
            The labels, for a model that ``needs_labels``.

        Returns
        -------
        loss : float
            Mean negative ELBO per example, with the KL weighted by ``beta``.
        grads : dict of str to ndarray
            Copies of the gradients, keyed like ``params_``.
        """
        self.check_initialized()
        X = self.check_data(X)
        Y = self.labels_onehot(y, X.shape[0])
        eps = self.check_noise(X, self.draw_noise(X.shape[0]) if eps is None else eps)
        return self.loss_and_grads_of(Batch(X, Y, eps), float(self.beta))

    # ------------------------------------------------------------ public verbs
    def encode(self, X, y=None):
        r"""Parameters of :math:`q(z \mid x)` (of :math:`q(z \mid x, y)` for a
        model that ``needs_labels``, with ``y`` one label for all rows or one
        per row).

        Returns
        -------
        mu, logvar : ndarray of shape (n_samples, latent_dim)
        """
        X = self.checked_input(X, reset=False)
        Y = self.labels_onehot(y, X.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            mu, logvar = self.in_row_blocks(
                lambda x, t: self.encoder_.forward(self.join_label(x, t)), X, Y)
        return check_finite(mu, "encode(X)'s mu"), check_finite(logvar, "encode(X)'s logvar")

    def transform(self, X, y=None):
        r"""The posterior means :math:`\mu(x)`, the VAE's code for ``X``."""
        return self.encode(X, y)[0]

    def reparameterize(self, mu, logvar, random_state=None):
        r""":math:`z = \mu + \sigma \odot \varepsilon` with fresh noise
        (from ``random_state``, or the model's own ``rng_``).

        ``mu`` and ``logvar`` are checked like codes: shape (n_samples,
        latent_dim), finite; a ``logvar`` so large that :math:`\sigma`
        overflows is an error.
        """
        mu, logvar = self.check_codes(mu), self.check_codes(logvar)
        if mu.shape != logvar.shape:
            raise ValueError(f"mu and logvar must have the same shape, got {mu.shape} "
                             f"and {logvar.shape}")
        rng = self.rng_ if random_state is None else as_generator(random_state)
        with np.errstate(over="ignore"):    # reported by check_finite
            z = reparameterize(mu, logvar, rng.standard_normal(mu.shape, dtype=self.dtype))
        return check_finite(z, "reparameterize(mu, logvar)")

    def sample(self, n_samples=1, random_state=None):
        r"""Decode draws from the prior :math:`p(z)` (:math:`N(0, I)` or the
        learned mixture), returning the decoder's mean (:meth:`decode`).

        Parameters
        ----------
        n_samples : int
        random_state : int, Generator or None
            Source of :math:`z`; the model's ``rng_`` when None.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        return self.sampled(self.checked_count(n_samples), None, random_state)

    def checked_count(self, n_samples):
        """``n_samples`` checked: an integer >= 1 whose codes and decoded
        samples (with the blocks they are stacked from) fit in memory."""
        self.check_fitted()
        check_int("n_samples", n_samples, 1)
        check_memory(n_samples * (self.latent_dim + 2 * self.n_features_in_),
                     np.dtype(self.dtype).itemsize, f"n_samples={n_samples!r}")
        return n_samples

    def sampled(self, n_samples, Y, random_state):
        """Decoded draws from the prior for a checked ``n_samples`` and
        one-hot labels ``Y`` (or None)."""
        rng = self.rng_ if random_state is None else as_generator(random_state)
        return self.decoded(self.prior_.sample(n_samples, rng), Y)

    def elbo_terms(self, X, y=None, random_state=0):
        r"""The two terms of the ELBO per example, in nats (of the
        conditional ELBO, with :math:`p(x \mid z, y)` and :math:`q(z \mid x,
        y)`, for a model that ``needs_labels``).

        Returns
        -------
        log_px_given_z : ndarray of shape (n_samples,)
            One-sample estimate of :math:`\mathbb{E}_q \log p(x \mid z)`.
        kl : ndarray of shape (n_samples,)
            :math:`\mathrm{KL}(q(z \mid x) \,\|\, N(0, I))`, exact; for the
            mixture prior the estimate :math:`\log q(z \mid x) - \log p(z)`
            at the same :math:`z`.

        Notes
        -----
        Each row's noise :math:`\varepsilon` is a function of that row's
        values and of ``random_state`` (0 by default;
        :func:`npvae.core.rng.row_normals`), so repeated calls agree, and a row's
        estimate is the same alone, in any batch and at any position.
        """
        X = self.check_data(X)
        Y = self.labels_onehot(y, X.shape[0])
        eps = row_normals(X, self.latent_dim, random_state, self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            log_px, kl = self.in_row_blocks(self.elbo_rows, X, Y, eps)
        given = "z" if Y is None else "z,y"
        return check_finite(log_px, f"log p(x|{given})"), check_finite(kl, "the KL term")

    def score_samples(self, X, y=None):
        r"""ELBO per example, :math:`\log p(x \mid z) - \mathrm{KL}` with
        :math:`\beta = 1`, in nats: a lower bound on :math:`\log p(x)` (on
        :math:`\log p(x \mid y)` for a model that ``needs_labels``) in the
        same sense and units as ``PCA.score_samples``."""
        log_px, kl = self.elbo_terms(X, y)
        return log_px - kl

"""The Variational Autoencoder: encode, reparameterize, decode, loss."""
import numpy as np
from numbers import Integral, Real
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..core.layers import GaussianEncoder, reparameterize, reparameterize_backward
from ..core.priors import PRIORS, make_prior
from ..core.rng import as_generator, row_normals
from ..core.validation import check_finite, check_int, refuse_non_finite
from .base import FLAT, BaseAutoencoder

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
    rng_ : numpy.random.Generator
        The generator of training, continued across ``fit_epoch`` calls.
    """

    def __init__(self, latent_dim=2, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, beta=1.0, kl_warmup=0,
                 prior="standard_normal", n_components=10,
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

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup": [Interval(Real, 0, None, closed="left")],
        "prior": [StrOptions(set(PRIORS))],
        "n_components": [Interval(Integral, 1, None, closed="left")],
    }
    _params_added_later = (*BaseAutoencoder._params_added_later, "prior", "n_components")

    def _build_encoder(self, n_features, hidden, rng, dtype):
        self.encoder_ = GaussianEncoder([n_features, *hidden], self.latent_dim,
                                        self.activation, rng, dtype)

    def _named_encoder_layers(self):
        # The names checkpoints have always used.
        yield from self.encoder_.body.named_layers("encoder.")
        yield "mu.", self.encoder_.mu
        yield "logvar.", self.encoder_.logvar

    def _build_prior(self, rng, dtype):
        # Only the mixture draws from rng: the default VAE's initialisation
        # stays what it was.
        self.prior_ = make_prior(self.prior, self.latent_dim, self.n_components, rng, dtype)

    def _named_layers(self):
        yield from super()._named_layers()
        yield "prior.", self.prior_

    # ------------------------------------------------------------ one step
    def train_step(self, x, eps, beta=1.0, optimizer=None):
        r"""One training step on the batch ``x`` with the noise ``eps``,
        as docs/math.md derives it.

        Forward to the loss, the mean negative ELBO with the KL weighted by
        :math:`\beta`,

        .. math::
            \mathcal{L} = \frac1n \sum_i -\log p(x_i \mid z_i)
                + \beta\,\mathrm{KL}\big(q(z \mid x_i) \,\|\, p(z)\big),
            \qquad z_i = \mu(x_i) + \sigma(x_i) \odot \varepsilon_i,

        the KL in closed form for :math:`p(z) = N(0, I)` and estimated at
        :math:`z_i` for the mixture prior;

        backward through the same pieces in reverse, filling the gradient of
        every parameter (views of ``parameters_.grad``); then, given an
        ``optimizer``, one update of all parameters at once, refused with a
        FloatingPointError when the loss or a gradient is not finite.

        Returns
        -------
        dict
            The batch's means: ``loss``, ``recon`` (:math:`-\log p(x \mid z)`)
            and ``kl``, in nats.
        """
        n = x.shape[0]
        # Forward: §1 encode, §2 reparameterize, §3 decode, §4-5 the loss.
        mu, logvar = self.encoder_.forward(x)
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(z)
        log_px_sum = self.likelihood_.forward(x, out)              # sum of log p(x|z)
        kl_sum = self.prior_.forward(mu, logvar, z)                # sum of KL(q || p)
        recon, kl = -log_px_sum / n, kl_sum / n
        loss = recon + beta * kl                   # (1/n) sum_i (-log p(x_i|z_i) + beta KL_i)
        # Backward: the same steps in reverse, dL/d(sum log p) = -1/n,
        # dL/d(sum KL) = beta/n; the KL's part through z (0 in closed form)
        # joins the decoder's before the reparameterization.
        grad_out = self.likelihood_.backward(-1.0 / n)
        kl_mu, kl_logvar, kl_z = self.prior_.backward(beta / n)
        grad_z = self.decoder_.backward(grad_out)
        grad_z += kl_z                              # the decoder's array is a new one
        grad_mu, grad_logvar = reparameterize_backward(grad_z, logvar, eps)
        self.encoder_.backward(grad_mu + kl_mu, grad_logvar + kl_logvar, input_grad=False)
        # Update: every backward above wrote its parameters' gradients into
        # views of parameters_.grad; Adam steps all of theta at once (one
        # key, FLAT, so that a checkpoint stores its moments as one vector).
        if optimizer is not None:
            refuse_non_finite({"loss": loss, "recon": recon, "kl": kl}, self.parameters_)
            optimizer.step({FLAT: self.parameters_.theta}, {FLAT: self.parameters_.grad})
        return {"loss": loss, "recon": recon, "kl": kl}

    def _train_batch(self, x, epoch_progress):
        eps = self.rng_.standard_normal((x.shape[0], self.latent_dim), dtype=self.dtype)
        return self.train_step(x, eps, self._beta_at(epoch_progress), self.optimizer_)

    def _beta_at(self, epoch_progress):
        if self.kl_warmup > 0:
            return float(self.beta) * min(1.0, epoch_progress / self.kl_warmup)
        return float(self.beta)

    def _check_eps(self, X, eps):
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.shape != (X.shape[0], self.latent_dim):
            raise ValueError(f"eps must have shape {(X.shape[0], self.latent_dim)}, "
                             f"got {eps.shape}")
        if not np.isfinite(eps).all():
            raise ValueError("eps contains NaN or infinity")
        return eps

    def _elbo_terms(self, x, eps):
        r""":math:`\log p(x \mid z)` and the KL per example, the forward
        pass of :meth:`train_step` without its caches' use."""
        mu, logvar = self.encoder_.forward(x)
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(z)
        return self.likelihood_.log_prob(x, out), self.prior_.kl(mu, logvar, z)

    # ------------------------------------------------------------ for study
    def loss(self, X, eps):
        r"""Mean training loss per example for a fixed noise ``eps``:
        :math:`\frac1n\sum_i -\log p(x_i \mid z_i) + \beta\,\mathrm{KL}_i`.
        A deterministic function of the parameters, for gradient checks."""
        X = self.check_data(X)
        eps = self._check_eps(X, eps)
        log_px, kl = self._elbo_terms(X, eps)
        return float(np.mean(-log_px + self.beta * kl))

    def loss_and_grads(self, X, eps=None):
        """The mean loss per example and its gradient for every parameter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        eps : ndarray of shape (n_samples, latent_dim), optional
            Reparameterization noise; drawn from ``rng_`` when omitted.
            With it given the call is deterministic.

        Returns
        -------
        loss : float
            Mean negative ELBO per example, with the KL weighted by ``beta``.
        grads : dict of str to ndarray
            Copies of the gradients, keyed like ``params_``.
        """
        self._check_fitted_for_gradients()
        X = self.check_data(X)
        if eps is None:
            eps = self.rng_.standard_normal((X.shape[0], self.latent_dim), dtype=self.dtype)
        eps = self._check_eps(X, eps)
        terms = self.train_step(X, eps, float(self.beta))
        return terms["loss"], self._grads_copy()

    # ------------------------------------------------------------ public verbs
    def encode(self, X):
        r"""Parameters of :math:`q(z \mid x)`.

        Returns
        -------
        mu, logvar : ndarray of shape (n_samples, latent_dim)
        """
        X = self._validate_data(X, reset=False)
        return self._batched(self.encoder_.forward, X)

    def transform(self, X):
        r"""The posterior means :math:`\mu(x)`, the VAE's code for ``X``."""
        return self.encode(X)[0]

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
        check_is_fitted(self)
        check_int("n_samples", n_samples, 1)
        rng = self.rng_ if random_state is None else as_generator(random_state)
        return self.decode(self.prior_.sample(n_samples, rng))

    def elbo_terms(self, X, random_state=0):
        r"""The two terms of the ELBO per example, in nats.

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
        eps = row_normals(X, self.latent_dim, random_state, self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            log_px, kl = self._batched(self._elbo_terms, X, eps)
        return check_finite(log_px, "log p(x|z)"), check_finite(kl, "the KL term")

    def score_samples(self, X):
        r"""ELBO per example, :math:`\log p(x \mid z) - \mathrm{KL}` with
        :math:`\beta = 1`, in nats: a lower bound on :math:`\log p(x)` in the
        same sense and units as ``PCA.score_samples``."""
        log_px, kl = self.elbo_terms(X)
        return log_px - kl

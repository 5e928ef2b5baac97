r"""The Importance Weighted Autoencoder (Burda, Grosse & Salakhutdinov, 2016).

The same encoder, decoder and likelihood as the VAE, trained on a tighter
bound: with :math:`k` codes per example drawn from :math:`q(z \mid x)`,

.. math::
    \mathcal{L}_k(x) = \log \frac1k \sum_{i=1}^k w_i, \qquad
    \log w_i = \log p(x \mid z_i) + \log p(z_i) - \log q(z_i \mid x),
    \qquad z_i = \mu(x) + \sigma(x) \odot \varepsilon_i,

which is the ELBO's one-sample estimate at :math:`k = 1` and rises towards
:math:`\log p(x)` as :math:`k` grows.  Its gradient is the gradient of the
log-weights averaged with the normalised weights :math:`\tilde w_i`
(docs/math.md §9); :meth:`IWAE.train_step` runs it with the VAE's pieces.
"""
import math
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from ..core.layers import reparameterize, reparameterize_backward
from .base import FLAT
from .vae import VAE
from ..core.validation import refuse_non_finite

__all__ = ["IWAE", "log_mean_exp", "sampled_kl", "sampled_kl_backward"]

_LOG_2PI = math.log(2 * math.pi)


def log_mean_exp(log_w):
    r"""The bound and the normalised weights from log-weights, over axis 0.

    .. math::
        \log \frac1k \sum_i e^{a_i} = m + \log \frac1k \sum_i e^{a_i - m},
        \qquad
        \tilde w_i = \frac{e^{a_i - m}}{\sum_l e^{a_l - m}},
        \qquad m = \max_i a_i

    Shifting by the largest :math:`a_i` keeps every exponential in
    :math:`(0, 1]` with at least one equal to 1, so nothing overflows and
    the sum is at least 1 (its logarithm is finite) however negative the
    log-weights are (hundreds of nats for images).

    Parameters
    ----------
    log_w : ndarray of shape (k, ...)

    Returns
    -------
    bound : ndarray of shape (...)
    weights : ndarray of shape (k, ...)
        The softmax of ``log_w`` over axis 0; each column sums to 1.
    """
    top = log_w.max(axis=0)
    weights = np.exp(log_w - top)
    total = weights.sum(axis=0)
    weights /= total
    return top + np.log(total) - math.log(log_w.shape[0]), weights


def sampled_kl(z, eps, logvar, prior):
    r"""The one-sample estimate of the KL, :math:`\log q(z \mid x) - \log p(z)`,
    per code, at :math:`z = \mu + \sigma \odot \varepsilon`, with the prior
    piece ``prior`` (:mod:`npvae.core.priors`).

    .. math::
        \log q(z \mid x) - \log p(z)
        = -\tfrac12 \sum_j \big(\log 2\pi + \log\sigma_j^2 + \varepsilon_j^2\big)
          - \log p(z),

    using :math:`(z_j - \mu_j)/\sigma_j = \varepsilon_j`.  With
    :math:`p(z) = N(0, I)` the constants cancel to
    :math:`\tfrac12 \sum_j (z_j^2 - \varepsilon_j^2 - \log\sigma_j^2)`, whose
    mean over :math:`\varepsilon` is :func:`npvae.core.losses.kl_standard_normal`.

    Parameters
    ----------
    z, eps : ndarray of shape (..., latent_dim)
    logvar : ndarray broadcastable to ``z``
    prior : a prior piece with ``log_prob`` of rows of codes

    Returns
    -------
    ndarray of shape (...)
    """
    log_q = -0.5 * np.sum(_LOG_2PI + logvar + eps * eps, axis=-1)
    return log_q - prior.log_prob(z.reshape(-1, z.shape[-1])).reshape(z.shape[:-1])


def sampled_kl_backward(z, prior):
    r"""The partial derivatives of :func:`sampled_kl` with :math:`\varepsilon`
    held fixed: with respect to the code (through :math:`-\log p(z)`) and to
    :math:`\log\sigma^2` directly (through :math:`\log q`'s normaliser).

    .. math::
        \frac{\partial}{\partial z} = -\frac{\partial \log p(z)}{\partial z}
            \;(= z \text{ for } N(0, I)), \qquad
        \frac{\partial}{\partial \log\sigma_j^2} = -\tfrac12, \qquad
        \frac{\partial}{\partial \mu_j} = 0

    :math:`\log q(z \mid x)` at :math:`z = \mu + \sigma\odot\varepsilon`
    depends on :math:`\mu` and :math:`\sigma` only through
    :math:`(z - \mu)/\sigma = \varepsilon` and the normaliser
    :math:`-\frac12 \log\sigma^2`: moving :math:`\mu` moves :math:`z`
    with it, so the density of the drawn code does not change.  The path
    through :math:`z` is :func:`npvae.core.layers.reparameterize_backward`'s.

    Returns
    -------
    grad_z : ndarray
        :math:`-\partial \log p(z) / \partial z`, shaped like ``z``.
    grad_logvar : float
        :math:`-\frac12`, the same for every entry.
    """
    grad = prior.log_prob_grad(z.reshape(-1, z.shape[-1])).reshape(z.shape)
    return -grad, -0.5


class IWAE(VAE):
    r"""Importance Weighted Autoencoder (Burda, Grosse & Salakhutdinov, 2016).

    A :class:`~npvae.models.vae.VAE` trained on the importance-weighted bound

    .. math::
        \mathcal{L}_k(x) = \log \frac1k \sum_{i=1}^k w_i, \qquad
        \log w_i = \log p(x \mid z_i) - \beta \big(\log q(z_i \mid x) - \log p(z_i)\big),
        \qquad z_i = \mu(x) + \sigma(x) \odot \varepsilon_i,

    whose expectation lies between the ELBO and :math:`\log p(x)` (for
    :math:`\beta = 1`), rising with :math:`k`.  Its gradient is
    :math:`\sum_i \tilde w_i \nabla \log w_i` with the normalised weights
    :math:`\tilde w_i = w_i / \sum_l w_l` treated as constants:

    .. math::
        \nabla \mathcal{L}_k = \frac{\sum_i \nabla w_i}{\sum_l w_l}
        = \sum_i \frac{w_i}{\sum_l w_l} \nabla \log w_i

    (:math:`\nabla w_i = w_i \nabla \log w_i`), a weighted VAE gradient
    that credits the codes which explain :math:`x` best.  At :math:`k = 1`
    it is the VAE's loss with the KL estimated by the same sample.
    docs/math.md §9 derives each step of :meth:`train_step`.

    ``score``, ``score_samples`` and ``elbo_terms`` mean what they mean for
    the VAE (the ELBO); :func:`npvae.models.evaluation.importance_weighted_log_likelihood`
    evaluates :math:`\mathcal{L}_k` at any :math:`k`, and :meth:`loss` at
    the :math:`k` of the noise it is given.

    Parameters
    ----------
    latent_dim, hidden_dims, activation, likelihood, obs_var
        As for :class:`~npvae.models.vae.VAE`.
    k : int, default=5
        Importance samples per example in training; ``k=1`` trains a VAE
        whose KL is estimated by its sample instead of in closed form.
    prior : {"standard_normal", "mixture"}
        :math:`p(z)` in the log-weights, as for the VAE; a learned mixture's
        parameters get each code's weighted gradient.
    beta : float, default=1.0
        Weight of the log-ratio :math:`\log q - \log p(z)` in the
        log-weights.  Only :math:`\beta = 1` gives a bound on
        :math:`\log p(x)`; other values train a tempered objective (at
        :math:`k = 1` the :math:`\beta`-VAE's, with the sampled KL), for
        warm-up.  Scores always use :math:`\beta = 1`.
    kl_warmup : float, default=0
        Epochs over which :math:`\beta` rises linearly from 0 to ``beta``,
        as for the VAE: the training starts from the bound on the decoder
        alone, :math:`\log \frac1k \sum_i p(x \mid z_i)`.
    n_components, beta_1, beta_2, epsilon, output_bias_init
        As for :class:`~npvae.models.vae.VAE`.
    epochs, batch_size, learning_rate, lr_schedule, dtype, random_state, verbose
        As for :class:`~npvae.models.vae.VAE`.  Each step decodes
        ``k * batch_size`` codes: memory and time grow with ``k``.

    Attributes
    ----------
    encoder_, decoder_, likelihood_, parameters_, params_, optimizer_, rng_
        As for :class:`~npvae.models.vae.VAE`.
    n_features_in_ : int
    n_iter_ : int
        Epochs trained.
    history_ : list of dict
        Per-epoch means of ``loss`` (:math:`-\mathcal{L}_k` with the
        epoch's :math:`\beta`), ``recon`` (:math:`-\log p(x \mid z_i)`
        over all :math:`k` codes) and ``kl`` (the prior's KL, closed form for :math:`N(0, I)`): ``recon + kl``
        is the negative ELBO, which ``loss`` undercuts on average by the
        bound's gain.
    """

    def __init__(self, latent_dim=2, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, k=5, beta=1.0, kl_warmup=0,
                 prior="standard_normal", n_components=10, epochs=20, batch_size=128,
                 learning_rate=1e-3, lr_schedule="constant", beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, output_bias_init="zeros", dtype="float32",
                 random_state=None, verbose=False):
        super().__init__(latent_dim=latent_dim, hidden_dims=hidden_dims,
                         activation=activation, likelihood=likelihood, obs_var=obs_var,
                         beta=beta, kl_warmup=kl_warmup, prior=prior,
                         n_components=n_components, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, lr_schedule=lr_schedule,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         output_bias_init=output_bias_init, dtype=dtype,
                         random_state=random_state, verbose=verbose)
        self.k = k

    _parameter_constraints = {
        **VAE._parameter_constraints,
        "k": [Interval(Integral, 1, None, closed="left")],
    }

    # ------------------------------------------------------------ one step
    def train_step(self, x, eps, beta=1.0, optimizer=None):
        r"""One training step on the batch ``x`` with the noise ``eps`` of
        shape (k, n, latent_dim), as docs/math.md §9 derives it.

        Forward to the loss :math:`-\frac1n \sum_n \mathcal{L}_k(x_n)`:
        encode the :math:`n` rows once, draw :math:`k` codes for each,
        decode all :math:`kn` codes as one batch, form the log-weights and
        their log-mean-exp.  Backward: the loss's derivative with respect
        to :math:`\log w_{in}` is :math:`-\tilde w_{in}/n`, which weighs
        each code's row in the likelihood's backward (one weight per row),
        then the decoder, the prior's and :math:`\log q`'s terms
        (:func:`sampled_kl_backward`), the reparameterization summed over
        the :math:`k` codes, and the encoder.  Given an ``optimizer``, one
        update of all parameters, refused with a FloatingPointError when
        the loss or a gradient is not finite.

        Returns
        -------
        dict
            The batch's means: ``loss`` (:math:`-\mathcal{L}_k`), ``recon``
            (:math:`-\log p(x \mid z)` over the :math:`kn` codes) and ``kl``
            (the prior's: closed form for :math:`N(0, I)`, one code's sampled
            estimate for a mixture), in nats.
        """
        k, n = eps.shape[0], x.shape[0]
        # Forward: encode once, k codes per row, decode the k*n codes at once.
        mu, logvar = self.encoder_.forward(x)                          # (n, L)
        z = reparameterize(mu, logvar, eps)                            # (k, n, L)
        out = self.decoder_.forward(z.reshape(k * n, -1)).reshape(k, n, -1)
        log_px_sum = self.likelihood_.forward(x, out)                  # caches for backward
        log_px = self.likelihood_.log_prob(x, out)                     # (k, n)
        log_w = log_px - beta * sampled_kl(z, eps, logvar, self.prior_)  # (k, n)
        bound, weights = log_mean_exp(log_w)                           # (n,), (k, n)
        loss = -float(bound.mean())
        recon = -log_px_sum / (k * n)
        kl = float(self.prior_.kl(mu, logvar, z[0]).mean())
        # Backward: dL/d(log w_in) = -w~_in / n, one weight per decoded row.
        g = (weights * (-1.0 / n))[..., None]                          # (k, n, 1)
        grad_out = self.likelihood_.backward(g)
        grad_z = self.decoder_.backward(grad_out.reshape(k * n, -1)).reshape(k, n, -1)
        kl_z, kl_logvar = sampled_kl_backward(z, self.prior_)
        grad_z -= (beta * g) * kl_z                                    # log p(z_i)
        # The prior's own parameters (a learned mixture's): dL/d log p(z_in) = beta g_in.
        self.prior_.log_prob_backward(z.reshape(k * n, -1), (beta * g).reshape(-1))
        grad_mu, grad_logvar = reparameterize_backward(grad_z, logvar, eps)
        grad_logvar = grad_logvar.sum(axis=0) - beta * (g * kl_logvar).sum(axis=0)  # log q
        self.encoder_.backward(grad_mu.sum(axis=0), grad_logvar, input_grad=False)
        # Update: Adam on all parameters as one vector.
        if optimizer is not None:
            refuse_non_finite({"loss": loss, "recon": recon, "kl": kl}, self.parameters_)
            optimizer.step({FLAT: self.parameters_.theta}, {FLAT: self.parameters_.grad})
        return {"loss": loss, "recon": recon, "kl": kl}

    def _train_batch(self, x, epoch_progress):
        eps = self.rng_.standard_normal((self.k, x.shape[0], self.latent_dim),
                                        dtype=self.dtype)
        return self.train_step(x, eps, self._beta_at(epoch_progress), self.optimizer_)

    def _check_eps(self, X, eps):
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.ndim != 3 or eps.shape[0] < 1 or eps.shape[1:] != (X.shape[0], self.latent_dim):
            raise ValueError(f"eps must have shape (k, {X.shape[0]}, {self.latent_dim}) "
                             f"with k >= 1 codes per example, got {eps.shape}")
        if not np.isfinite(eps).all():
            raise ValueError("eps contains NaN or infinity")
        return eps

    def _log_weights(self, x, eps, beta):
        r""":math:`\log w_{in}` of shape (k, n), the forward pass of
        :meth:`train_step` without its caches' use."""
        mu, logvar = self.encoder_.forward(x)
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(z.reshape(-1, self.latent_dim)).reshape(*z.shape[:2], -1)
        return self.likelihood_.log_prob(x, out) - beta * sampled_kl(z, eps, logvar, self.prior_)

    # ------------------------------------------------------------ for study
    def loss(self, X, eps):
        r"""Mean training loss per example for a fixed noise ``eps`` of shape
        (k, n_samples, latent_dim): :math:`-\frac1n \sum_n \mathcal{L}_k(x_n)`
        with :math:`k` = ``eps.shape[0]`` (any :math:`k \ge 1`, not only the
        model's) and ``beta``.  A deterministic function of the parameters,
        for gradient checks."""
        X = self.check_data(X)
        eps = self._check_eps(X, eps)
        bound, _ = log_mean_exp(self._log_weights(X, eps, float(self.beta)))
        return -float(np.mean(bound))

    def loss_and_grads(self, X, eps=None):
        """The mean loss per example (:meth:`loss`) and its gradient for
        every parameter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        eps : ndarray of shape (k, n_samples, latent_dim), optional
            Reparameterization noise, ``k`` codes per example; drawn from
            ``rng_`` with the model's ``k`` when omitted.  With it given the
            call is deterministic.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            Copies of the gradients, keyed like ``params_``.
        """
        self._check_fitted_for_gradients()
        X = self.check_data(X)
        if eps is None:
            eps = self.rng_.standard_normal((self.k, X.shape[0], self.latent_dim),
                                            dtype=self.dtype)
        eps = self._check_eps(X, eps)
        terms = self.train_step(X, eps, float(self.beta))
        return terms["loss"], self._grads_copy()

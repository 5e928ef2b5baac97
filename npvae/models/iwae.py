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
from scipy.special import logsumexp, softmax

from ..core.layers import Join, reparameterize, reparameterize_backward
from ..core.priors import SampledKL
from .hyperparameters import check_number
from .vae import VAE

__all__ = ["IWAE", "log_mean_exp", "dreg_factor"]


def log_mean_exp(log_w):
    r"""The bound and the normalised weights from log-weights, over axis 0.

    .. math::
        \log \frac1k \sum_i e^{a_i} = \operatorname{logsumexp}_i(a_i) - \log k,
        \qquad
        \tilde w_i = \operatorname{softmax}_i(a) = \frac{e^{a_i}}{\sum_l e^{a_l}}

    with ``scipy.special.logsumexp`` and ``softmax``, which shift by the
    largest :math:`a_i` so that nothing overflows however negative the
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
    return logsumexp(log_w, axis=0) - math.log(log_w.shape[0]), softmax(log_w, axis=0)


def dreg_factor(weights, beta):
    r"""What turns the IWAE's weight on a code's path gradient into DReG's,
    per code (docs/math.md §9b):

    .. math::
        \tilde w_i \,(1 - \beta + \beta\,\tilde w_i)
        = (1 - \beta)\,\tilde w_i + \beta\,\tilde w_i^2,
        \qquad\text{so the factor is}\qquad 1 - \beta + \beta\,\tilde w_i,

    :math:`\tilde w_i^2` at :math:`\beta = 1` (Tucker et al. 2018), and
    exactly 1 at :math:`k = 1` (:math:`\tilde w_1 = 1`: DReG is STL).

    Parameters
    ----------
    weights : ndarray of shape (k, n)
        The normalised weights :math:`\tilde w`.
    beta : float

    Returns
    -------
    ndarray of shape (k, n)
    """
    return (1.0 - beta) + beta * weights


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
    gradient_estimator : {"standard", "dreg", "stl"}, default="standard"
        The encoder's gradient estimate (docs/math.md §9b); the decoder's
        and the prior's gradients are the same bit for bit whichever it is.
        ``"dreg"``, the doubly reparameterised gradient (Tucker et al.
        2018): the score term of :math:`\log q` removed by the
        reparameterisation identity, each code's path gradient weighted by
        :math:`\tilde w_i^2` (by :math:`(1 - \beta)\tilde w_i + \beta
        \tilde w_i^2` with :math:`\beta \ne 1`); unbiased, and its
        signal-to-noise ratio does not fall with :math:`k`.  ``"stl"``:
        the score term dropped, the weights left at :math:`\tilde w_i`
        (Roeder et al. 2017): the same as ``"dreg"`` at :math:`k = 1`,
        biased for :math:`k > 1`.
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

    def __init__(self, latent_dim=2, *, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, k=5, beta=1.0, kl_warmup=0,
                 prior="standard_normal", n_components=10, gradient_estimator="standard",
                 epochs=20, batch_size=128,
                 learning_rate=1e-3, lr_schedule="constant", beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, output_bias_init="zeros", dtype="float32",
                 random_state=None, verbose=False):
        super().__init__(latent_dim=latent_dim, hidden_dims=hidden_dims,
                         activation=activation, likelihood=likelihood, obs_var=obs_var,
                         beta=beta, kl_warmup=kl_warmup, prior=prior,
                         n_components=n_components, gradient_estimator=gradient_estimator,
                         epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, lr_schedule=lr_schedule,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         output_bias_init=output_bias_init, dtype=dtype,
                         random_state=random_state, verbose=verbose)
        self.k = k

    importance_weighted = True
    gradient_estimators = ("standard", "dreg", "stl")

    def check_params(self):
        """The VAE's checks, then ``k``."""
        hidden = super().check_params()
        check_number(self, "k", Integral, 1)
        return hidden

    def memory_needs(self, n_in, hidden, rows):
        """The VAE's, then the ``k`` codes per row that a step decodes."""
        yield from super().memory_needs(n_in, hidden, rows)
        yield 4 * self.k * rows * (n_in + sum(hidden) + self.latent_dim), f"k={self.k!r}"

    def build_prior(self, rng, dtype):
        """The VAE's prior and KL terms (``kl_`` reported as ``kl``, and
        ``path_kl_``), and the sampled KL of the log-weights, whatever the
        prior."""
        super().build_prior(rng, dtype)
        self.sampled_kl_ = SampledKL(self.prior_)

    # ------------------------------------------------------------ one step
    def forward_backward(self, batch, beta=1.0):
        r"""One batch forward to the loss and backward, with ``batch.eps`` of
        shape (k, n, latent_dim), as docs/math.md §9 derives it, filling
        ``parameters_.grad``.

        Forward to the loss :math:`-\frac1n \sum_n \mathcal{L}_k(x_n)`:
        encode the :math:`n` rows once, draw :math:`k` codes for each,
        decode all :math:`kn` codes as one batch, form the log-weights
        :math:`\log w = \log p(x \mid z) - \beta\,(\log q(z \mid x) - \log p(z))`,
        shape (k, n), and their log-mean-exp.  Backward: the loss's
        derivative with respect to :math:`\log w_{in}` is
        :math:`g_{in} = -\tilde w_{in}/n`, the per-row gradient of the
        likelihood; the sampled KL's is :math:`-\beta g_{in}`; the
        reparameterization's gradients are summed over the :math:`k` codes.
        With labels in the batch both networks' inputs join them.

        ``"stl"`` and ``"dreg"`` hold :math:`\log q`'s parameters fixed in the
        sampled KL (``path_kl_``: its gradient reaches the encoder through
        :math:`z` only);
        ``"dreg"`` then scales each code's :math:`\partial\mathcal{L}/\partial z_i`
        by :func:`dreg_factor`, :math:`1 - \beta + \beta\tilde w_i`, turning
        its weight :math:`\tilde w_i` into :math:`\tilde w_i^2` at
        :math:`\beta = 1` (docs/math.md §9b).  The decoder's backward runs
        before, with the weights :math:`\tilde w_i`, unchanged.

        Returns
        -------
        dict
            The batch's means: ``loss`` (:math:`-\mathcal{L}_k`), ``recon``
            (:math:`-\log p(x \mid z)` over the :math:`kn` codes) and ``kl``
            (the VAE's: closed form for :math:`N(0, I)`, one code's sampled
            estimate for a mixture), in nats.
        """
        x, y_onehot, eps = batch
        k, n = eps.shape[0], x.shape[0]
        decoder_input = Join()
        # Forward: encode once, k codes per row, decode the k*n codes at once.
        mu, logvar = self.encoder_.forward(Join().forward(x, y_onehot))   # (n, L)
        z = reparameterize(mu, logvar, eps)                                # (k, n, L)
        joined = decoder_input.forward(z, y_onehot)
        out = self.decoder_.forward(joined.reshape(k * n, -1)).reshape(k, n, -1)
        log_px = self.likelihood_.forward(x, out)                          # (k, n)
        sampled_kl = self.sampled_kl_ if self.gradient_estimator == "standard" else self.path_kl_
        log_w = log_px - beta * sampled_kl.forward(mu, logvar, z, eps)        # (k, n)
        bound, weights = log_mean_exp(log_w)                               # (n,), (k, n)
        loss = -float(bound.mean())
        recon = -float(log_px.sum()) / (k * n)
        # Backward: dL/d(log w_in) = -w~_in / n, one weight per decoded row.
        g = weights * (-1.0 / n)                                           # (k, n)
        grad_out = self.likelihood_.backward(g)                            # (k, n, D)
        kl_mu, kl_logvar, kl_z = sampled_kl.backward(-beta * g)
        grad_joined = self.decoder_.backward(grad_out.reshape(k * n, -1))
        grad_z = decoder_input.backward(grad_joined.reshape(*joined.shape)) + kl_z
        if self.gradient_estimator == "dreg":
            grad_z *= dreg_factor(weights, beta)[..., None]   # w~ -> w~^2 on the path
        grad_mu, grad_logvar = reparameterize_backward(grad_z, logvar, eps)
        self.encoder_.backward(grad_mu.sum(axis=0) + kl_mu, grad_logvar.sum(axis=0) + kl_logvar,
                               input_grad=False)
        # Reported after the backward pass, which needed the prior's cache.
        kl = float(self.kl_.forward(mu, logvar, z[0], eps[0]).mean())
        return {"loss": loss, "recon": recon, "kl": kl}

    def draw_noise(self, n):
        """:math:`\varepsilon` of shape (k, n, latent_dim) from ``rng_``."""
        return self.rng_.standard_normal((self.k, n, self.latent_dim), dtype=self.dtype)

    def check_noise(self, X, eps):
        r"""``eps`` as an array of the model's dtype and shape (k, n,
        latent_dim) for the rows of ``X``, any :math:`k \ge 1`, finite."""
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.ndim != 3 or eps.shape[0] < 1 or eps.shape[1:] != (X.shape[0], self.latent_dim):
            raise ValueError(f"eps must have shape (k, {X.shape[0]}, {self.latent_dim}) "
                             f"with k >= 1 codes per example, got {eps.shape}")
        if not np.isfinite(eps).all():
            raise ValueError("eps contains NaN or infinity")
        return eps

    def log_weights(self, x, y_onehot, eps, beta):
        r""":math:`\log w_{in}` of shape (k, n), the forward pass of
        :meth:`forward_backward` without its caches' use."""
        mu, logvar = self.encoder_.forward(self.join_label(x, y_onehot))
        z = reparameterize(mu, logvar, eps)
        joined = self.join_label(z, y_onehot)
        out = self.decoder_.forward(joined.reshape(-1, joined.shape[-1])).reshape(
            *z.shape[:2], -1)
        return (self.likelihood_.log_prob(x, out)
                - beta * self.sampled_kl_.forward(mu, logvar, z, eps))

    # ------------------------------------------------------------ for study
    def loss(self, X, eps, y=None):
        r"""Mean training loss per example for a fixed noise ``eps`` of shape
        (k, n_samples, latent_dim): :math:`-\frac1n \sum_n \mathcal{L}_k(x_n)`
        with :math:`k` = ``eps.shape[0]`` (any :math:`k \ge 1`, not only the
        model's) and ``beta``.  A deterministic function of the parameters,
        for gradient checks."""
        X = self.check_data(X)
        Y = self.labels_onehot(y, X.shape[0])
        eps = self.check_noise(X, eps)
        bound, _ = log_mean_exp(self.log_weights(X, Y, eps, float(self.beta)))
        return -float(np.mean(bound))

    def loss_and_grads(self, X, eps=None, y=None):
        """The mean loss per example (:meth:`loss`) and its gradient for
        every parameter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        eps : ndarray of shape (k, n_samples, latent_dim), optional
            Reparameterization noise, ``k`` codes per example; drawn from
            ``rng_`` with the model's ``k`` when omitted.  With it given the
            call is deterministic.
        y : array-like of shape (n_samples,), optional
            The labels, for a model that ``needs_labels``.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            Copies of the gradients, keyed like ``params_``.
        """
        return super().loss_and_grads(X, eps, y)

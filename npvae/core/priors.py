r"""The VAE's prior :math:`p(z)` and the KL term it sets, as pieces with the
layer contract.

A prior is a density over codes:

* ``forward(z)`` takes codes of shape (..., L) and returns
  :math:`\log p(z_r)` per row, shape (...), caching what ``backward``
  needs;
* ``backward(dout)`` takes :math:`\partial L / \partial \log p(z_r)`, an
  array of exactly that shape, and returns :math:`\partial L / \partial z`,
  shape (..., L), filling ``grads`` for the prior's own parameters;
* ``sample(n, rng)`` draws :math:`z \sim p(z)`.

The KL term of the loss is a piece of its own, made by :func:`kl_term`:
:class:`ClosedFormKL` when the prior offers a closed form (its attribute
``has_closed_form_kl``: :math:`N(0, I)`), else :class:`SampledKL`, the
one-sample estimate :math:`\log q(z \mid x) - \log p(z)` at the training
step's own :math:`z`.  Both take ``forward(mu, logvar, z, eps)`` and return
the KL per row; ``backward(dout)`` returns ``(grad_mu, grad_logvar,
grad_z)``: the partial derivatives with :math:`\varepsilon` held fixed
*and* :math:`z` held fixed, and the part through :math:`z`, which the caller
adds to the decoder's before :func:`npvae.core.layers.reparameterize_backward`
(docs/math.md, §12).
"""
import math

import numpy as np
from scipy.special import logsumexp

from . import losses

__all__ = ["StandardNormal", "GaussianMixture", "DiagonalGaussian", "PRIORS", "make_prior",
           "ClosedFormKL", "SampledKL", "kl_term"]

_LOG_2PI = math.log(2 * math.pi)


class StandardNormal:
    r""":math:`p(z) = N(0, I)`, no parameters; its KL from a diagonal
    Gaussian has the closed form :func:`npvae.core.losses.kl_standard_normal`.

    Parameters
    ----------
    latent_dim : int
    dtype : numpy dtype
        Floating type of the samples.
    """

    params = grads = {}
    has_closed_form_kl = True

    def __init__(self, latent_dim, dtype=np.float64):
        self.latent_dim = latent_dim
        self.dtype = np.dtype(dtype)
        self._z = None

    def forward(self, z):
        r""":math:`\log N(z_r \mid 0, I) = -\frac12 \sum_j (\log 2\pi + z_{rj}^2)`
        per row: ``z`` of shape (..., L), result of shape (...)."""
        self._z = z
        return -0.5 * (_LOG_2PI + z * z).sum(axis=-1)

    def backward(self, dout):
        r""":math:`\partial L / \partial z_r = -g_r z_r` for :math:`g_r` = ``dout``
        of shape (...); returns shape (..., L)."""
        z, self._z = self._z, None
        return -dout[..., None] * z

    def sample(self, n, rng):
        r""":math:`n` draws :math:`z \sim N(0, I)` from the generator ``rng``."""
        return rng.standard_normal((n, self.latent_dim), dtype=self.dtype)


class GaussianMixture:
    r"""A learned mixture of :math:`K` diagonal Gaussians,

    .. math::
        p(z) = \sum_k \pi_k\, N(z \mid m_k, \operatorname{diag} s_k^2),
        \qquad \pi = \operatorname{softmax}(a),

    with the parameters ``logits`` :math:`a` (K,), ``means`` :math:`m`
    (K, L) and ``logvars`` :math:`\log s^2` (K, L).  The KL has no closed
    form; the loss uses :class:`SampledKL`, the estimate at the sample :math:`z`,

    .. math::
        \widehat{\mathrm{KL}} = \log q(z \mid x) - \log p(z),
        \qquad \log p(z) = \log \sum_k e^{\ell_k(z)},
        \qquad \ell_k(z) = \log \pi_k + \log N(z \mid m_k, s_k^2),

    an unbiased estimate of :math:`\mathrm{KL}(q \,\|\, p)`.  Its gradients
    (docs/math.md, §12) run through the responsibilities
    :math:`r_k(z) = e^{\ell_k(z) - \log p(z)}`.

    Parameters
    ----------
    latent_dim, n_components : int
    rng : numpy.random.Generator
        Source of the initial means, :math:`m_k \sim N(0, I)`, spread out
        so that the components start apart; the weights start equal and the
        variances at 1.
    dtype : numpy dtype
    """

    has_closed_form_kl = False

    def __init__(self, latent_dim, n_components, rng, dtype=np.float64):
        self.latent_dim, self.n_components = latent_dim, n_components
        self.dtype = np.dtype(dtype)
        self.params = {
            "logits": np.zeros(n_components, dtype=self.dtype),
            "means": rng.standard_normal((n_components, latent_dim)).astype(self.dtype),
            "logvars": np.zeros((n_components, latent_dim), dtype=self.dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    @property
    def weights(self):
        r""":math:`\pi = \operatorname{softmax}(a)`, the mixing weights, shape (K,)."""
        logits = self.params["logits"]
        return np.exp(logits - logsumexp(logits))

    def _log_joint(self, z):
        r""":math:`\ell_{rk} = \log \pi_k + \log N(z_r \mid m_k, s_k^2)`, (..., K),
        the differences :math:`d_{rk} = z_r - m_k` and the scaled residuals
        :math:`u_{rk} = (z_r - m_k) / s_k^2`, (..., K, L)."""
        logits, means, logvars = (self.params[k] for k in ("logits", "means", "logvars"))
        d = z[..., None, :] - means
        u = d * np.exp(-logvars)
        log_pi = logits - logsumexp(logits)
        log_joint = log_pi - 0.5 * np.sum(_LOG_2PI + logvars + d * u, axis=-1)
        return log_joint, d, u

    def forward(self, z):
        r""":math:`\log p(z_r) = \log \sum_k e^{\ell_k(z_r)}` per row, by
        ``scipy.special.logsumexp``: ``z`` of shape (..., L), result of shape
        (...); the responsibilities and residuals are cached."""
        log_joint, d, u = self._log_joint(z)
        log_pz = logsumexp(log_joint, axis=-1)
        self._cache = np.exp(log_joint - log_pz[..., None]), d, u
        return log_pz

    def backward(self, dout):
        r"""Gradients of :math:`L` through :math:`\log p(z_r)` for
        :math:`g_r` = ``dout`` of shape (...), with the responsibilities
        :math:`r_{rk}`, :math:`u_{rk} = (z_r - m_k)/s_k^2` and
        :math:`\pi = \operatorname{softmax}(a)`:

        .. math::
            \frac{\partial L}{\partial z_r} = -g_r \sum_k r_{rk} u_{rk}, \qquad
            \frac{\partial L}{\partial m_k} = \sum_r g_r r_{rk} u_{rk},

            \frac{\partial L}{\partial \log s_k^2}
                = \tfrac12 \sum_r g_r r_{rk} \big(u_{rk} \odot (z_r - m_k) - 1\big),
            \qquad
            \frac{\partial L}{\partial a_k} = \sum_r g_r (r_{rk} - \pi_k)

        Returns :math:`\partial L / \partial z`, shape (..., L), and fills
        ``grads``.
        """
        (r, d, u), self._cache = self._cache, None
        w = r * dout[..., None]                          # (..., K)
        w_sum = w.reshape(-1, self.n_components).sum(axis=0)
        weighted_u = w[..., None] * u                    # (..., K, L)
        flat_u = weighted_u.reshape(-1, self.n_components, self.latent_dim)
        self.grads["means"][...] = flat_u.sum(axis=0)
        self.grads["logvars"][...] = 0.5 * (
            np.einsum("nkl,nkl->kl", flat_u, d.reshape(flat_u.shape)) - w_sum[:, None])
        self.grads["logits"][...] = w_sum - dout.sum() * self.weights
        return -weighted_u.sum(axis=-2)

    def responsibilities(self, z):
        r""":math:`r_{rk} = p(k \mid z_r) = e^{\ell_k(z_r) - \log p(z_r)}`,
        (n, K): which component each code belongs to."""
        log_joint = self._log_joint(z)[0]
        return np.exp(log_joint - logsumexp(log_joint, axis=-1)[:, None])

    def sample(self, n, rng):
        r""":math:`n` draws from the mixture: a component
        :math:`k \sim \operatorname{Categorical}(\pi)`, then
        :math:`z = m_k + s_k \odot \varepsilon`, :math:`\varepsilon \sim N(0, I)`."""
        weights = self.weights.astype(np.float64)
        k = rng.choice(self.n_components, size=n, p=weights / weights.sum())
        eps = rng.standard_normal((n, self.latent_dim), dtype=self.dtype)
        return self.params["means"][k] + np.exp(0.5 * self.params["logvars"][k]) * eps


class DiagonalGaussian:
    r"""The log-density of codes under a diagonal Gaussian whose mean and
    log-variance are inputs, not parameters: a conditional prior such as
    the two-layer model's :math:`p(z_1 \mid z_2)` (docs/math.md §9c), whose
    :math:`\mu, \log\sigma^2` a network computes from :math:`z_2`.

    .. math::
        \log N(z \mid \mu, \operatorname{diag}\sigma^2)
            = -\tfrac12 \sum_j \Big(\log 2\pi + \log\sigma_j^2
              + \frac{(z_j - \mu_j)^2}{\sigma_j^2}\Big)

    * ``forward(z, mu, logvar)``: all three of shape (..., L); returns the
      log-density per row, shape (...), caching :math:`z - \mu` and
      :math:`1/\sigma^2`, which it computes on the way;
    * ``backward(dout)``: ``dout`` :math:`= g`, shape (...); returns
      ``(grad_z, grad_mu, grad_logvar)``, each (..., L), from that cache:

    .. math::
        \frac{\partial L}{\partial \mu} = g\,\frac{z - \mu}{\sigma^2},
        \qquad
        \frac{\partial L}{\partial z} = -g\,\frac{z - \mu}{\sigma^2},
        \qquad
        \frac{\partial L}{\partial \log\sigma^2}
            = \frac g2 \Big(\frac{(z - \mu)^2}{\sigma^2} - 1\Big).

    Both equal the textbook :func:`npvae.core.losses.gaussian_log_likelihood`
    and :func:`~npvae.core.losses.gaussian_log_likelihood_backward` (scaled by
    :math:`g`) bit for bit, with neither :math:`z - \mu` nor
    :math:`e^{-\log\sigma^2}` computed twice (tests/core/test_diagonal_gaussian.py).
    """

    params = grads = {}

    def __init__(self):
        self._cache = None

    def forward(self, z, mu, logvar):
        r""":math:`\log N(z_r \mid \mu_r, \sigma_r^2)` per row, shape (...)."""
        r, inv_var = z - mu, np.exp(-logvar)
        self._cache = r, inv_var
        return -0.5 * (_LOG_2PI + logvar + r * r * inv_var).sum(axis=-1)

    def backward(self, dout):
        r"""``(grad_z, grad_mu, grad_logvar)`` for :math:`g` = ``dout`` of
        shape (...), each of shape (..., L)."""
        (r, inv_var), self._cache = self._cache, None
        g = dout[..., None]
        r_over_var = r * inv_var                       # (z - mu) / sigma^2
        grad_logvar = 0.5 * (r * r_over_var - 1) * g
        grad_mu = r_over_var * g
        return -grad_mu, grad_mu, grad_logvar


PRIORS = {"standard_normal": StandardNormal, "mixture": GaussianMixture}


def make_prior(name, latent_dim, n_components, rng, dtype):
    """A new prior piece from its name in ``PRIORS``; only the mixture
    draws from ``rng`` (its initial means)."""
    if name == "standard_normal":
        return StandardNormal(latent_dim, dtype)
    if name == "mixture":
        return GaussianMixture(latent_dim, n_components, rng, dtype)
    raise ValueError(f"unknown prior {name!r}; choose one of {tuple(PRIORS)}")


class ClosedFormKL:
    r""":math:`\mathrm{KL}\big(N(\mu, \operatorname{diag}\sigma^2) \,\|\, N(0, I)\big)`
    per row in closed form, :func:`npvae.core.losses.kl_standard_normal`;
    no parameters."""

    params = grads = {}

    def __init__(self):
        self._cache = None

    def forward(self, mu, logvar, z, eps):
        r"""The KL per row, shape (n,), for ``mu`` and ``logvar`` of shape
        (n, L); the closed form needs neither ``z`` nor ``eps``."""
        self._cache = mu, logvar, z
        return losses.kl_standard_normal(mu, logvar)

    def backward(self, dout):
        r"""By :func:`npvae.core.losses.kl_standard_normal_backward`, for
        :math:`g_n` = ``dout`` of shape (n,):
        :math:`(g_n \mu_n,\ \frac{g_n}2 (\sigma_n^2 - 1),\ 0)`, shaped like
        ``mu``, ``logvar`` and ``z`` (nothing depends on :math:`z`)."""
        (mu, logvar, z), self._cache = self._cache, None
        grad_mu, grad_logvar = losses.kl_standard_normal_backward(mu, logvar)
        g = dout[:, None]
        return g * grad_mu, g * grad_logvar, np.zeros(z.shape, z.dtype)


class SampledKL:
    r"""The one-sample estimate of the KL at the code :math:`z = \mu + \sigma
    \odot \varepsilon`, for any prior piece:

    .. math::
        \widehat{\mathrm{KL}} = \log q(z \mid x) - \log p(z),
        \qquad
        \log q(z \mid x) = -\tfrac12 \sum_j \big(\log 2\pi + \log\sigma_j^2
            + \varepsilon_j^2\big)

    using :math:`(z_j - \mu_j)/\sigma_j = \varepsilon_j`; unbiased for
    :math:`\mathrm{KL}(q \,\|\, p)`.  The codes may carry leading axes
    beyond the rows of :math:`\mu` (the IWAE's :math:`k` codes per row).

    Parameters
    ----------
    prior : a prior piece of this module
        Its parameters get their gradients through ``backward``.
    score_term : bool, default=True
        Whether :math:`\log q`'s gradient keeps the score term
        :math:`\partial \log q(z; \mu, \sigma) / \partial(\mu, \log\sigma^2)`
        at fixed :math:`z`.  ``False`` is the stop-gradient of "sticking the
        landing" (Roeder et al. 2017; docs/math.md §9b): :math:`\log q`'s
        parameters held fixed, its gradient only through :math:`z`,
        :math:`\partial \log q / \partial z = -(z - \mu)/\sigma^2
        = -\varepsilon/\sigma`.  The value is the same either way.
    """

    params = grads = {}

    def __init__(self, prior, score_term=True):
        self.prior = prior
        self.score_term = score_term
        self._cache = None

    def forward(self, mu, logvar, z, eps):
        r"""The estimate per code, shape (..., n) for ``z`` and ``eps`` of
        shape (..., n, L) and ``mu``, ``logvar`` of shape (n, L)."""
        self._cache = mu.shape, logvar, eps
        log_q = -0.5 * (_LOG_2PI + logvar + eps * eps).sum(axis=-1)
        return log_q - self.prior.forward(z)

    def backward(self, dout):
        r"""For :math:`g` = ``dout`` of shape (..., n): through :math:`-\log p(z)`
        the prior's backward with :math:`-g` (filling its ``grads``), and
        through :math:`\log q` at fixed :math:`\varepsilon`

        .. math::
            \frac{\partial}{\partial \mu_j} = 0, \qquad
            \frac{\partial}{\partial \log\sigma_j^2} = -\tfrac12 \sum g

        (moving :math:`\mu` moves :math:`z` with it, so the density of the
        drawn code does not change), summed over the codes of each row.
        Without the score term (``score_term=False``) :math:`\log q`'s
        parameters are held fixed and its gradient runs through :math:`z`
        alone,

        .. math::
            \frac{\partial}{\partial \mu} = \frac{\partial}{\partial \log\sigma^2} = 0,
            \qquad
            \frac{\partial}{\partial z} \mathrel{+}= -g\, \varepsilon \odot e^{-\log\sigma^2/2},

        which the caller's ``reparameterize_backward`` carries into
        :math:`\mu` and :math:`\log\sigma^2`.  Returns ``(grad_mu,
        grad_logvar, grad_z)`` of the shapes of ``mu``, ``logvar`` and ``z``.
        """
        (mu_shape, logvar, eps), self._cache = self._cache, None
        grad_z = self.prior.backward(-dout)
        if not self.score_term:
            grad_z -= dout[..., None] * eps * np.exp(-0.5 * logvar)
            zeros = np.zeros(mu_shape, grad_z.dtype)
            return zeros, zeros, grad_z
        per_row = -0.5 * dout.reshape(-1, mu_shape[0]).sum(axis=0)
        grad_logvar = np.broadcast_to(per_row[:, None].astype(grad_z.dtype), mu_shape)
        return np.zeros(mu_shape, grad_z.dtype), grad_logvar, grad_z


def kl_term(prior):
    """The KL piece for ``prior``: its closed form when it has one, else the
    sampled estimate."""
    return ClosedFormKL() if prior.has_closed_form_kl else SampledKL(prior)

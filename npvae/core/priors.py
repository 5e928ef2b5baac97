r"""The VAE's prior :math:`p(z)` as pieces with the layer contract, and the
KL term of the loss that it sets.

Each prior takes the encoder's :math:`(\mu, \log\sigma^2)` and the sample
:math:`z = \mu + \sigma \odot \varepsilon` drawn from them:

* ``forward(mu, logvar, z)`` returns :math:`\sum_n \mathrm{KL}_n` over the
  batch, in nats, caching what ``backward`` needs;
* ``backward(scale)`` returns ``(grad_mu, grad_logvar, grad_z)``, the
  gradients of ``scale`` :math:`\times \sum_n \mathrm{KL}_n`, filling
  ``grads`` for the prior's own parameters.  ``grad_mu`` and
  ``grad_logvar`` are the partial derivatives with :math:`\varepsilon`
  held fixed *and* :math:`z` held fixed; the part through :math:`z` is
  ``grad_z``, which the caller adds to the decoder's before
  :func:`npvae.core.layers.reparameterize_backward` (docs/math.md, §12);
* ``kl(mu, logvar, z)`` gives :math:`\mathrm{KL}_n` per example, for
  scoring; ``log_prob(z)`` is :math:`\log p(z_n)` per row;
  ``sample(n, rng)`` draws :math:`z \sim p(z)`.

:class:`StandardNormal` has the closed-form KL of :mod:`npvae.core.losses` and no
parameters; :class:`GaussianMixture` learns its weights, means and
variances, and its KL is the one-sample estimate
:math:`\log q(z \mid x) - \log p(z)` at the training step's own :math:`z`.
"""
import math

import numpy as np

from . import losses

__all__ = ["StandardNormal", "GaussianMixture", "PRIORS", "make_prior",
           "log_posterior", "log_sum_exp"]

_LOG_2PI = math.log(2 * math.pi)


def log_posterior(mu, logvar, z):
    r""":math:`\log q(z \mid x) = \log N(z \mid \mu, \operatorname{diag}\sigma^2)`
    per row.

    .. math::
        \log q(z \mid x) = -\frac12 \sum_j \Big(\log 2\pi + \log\sigma_j^2
            + \frac{(z_j - \mu_j)^2}{\sigma_j^2}\Big)
        = -\frac12 \sum_j \big(\log 2\pi + \log\sigma_j^2 + \varepsilon_j^2\big)

    for :math:`z = \mu + \sigma \odot \varepsilon`: as a function of
    :math:`(\mu, \log\sigma^2)` at fixed :math:`\varepsilon` its gradients
    are 0 and :math:`-\frac12` per dimension.
    """
    r = z - mu
    return -0.5 * np.sum(_LOG_2PI + logvar + r * r * np.exp(-logvar), axis=-1)


def log_sum_exp(a, axis=-1):
    r""":math:`\log \sum_k e^{a_k}` along ``axis``, computed as
    :math:`a^* + \log \sum_k e^{a_k - a^*}` with :math:`a^* = \max_k a_k`,
    so that no exponential overflows and the largest term is exactly 1."""
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(a - top), axis=axis))


class StandardNormal:
    r""":math:`p(z) = N(0, I)`, with the closed-form KL of
    :func:`npvae.core.losses.kl_standard_normal` (no parameters).

    Parameters
    ----------
    latent_dim : int
    dtype : numpy dtype
        Floating type of the samples.
    """

    params = grads = {}

    def __init__(self, latent_dim, dtype=np.float64):
        self.latent_dim = latent_dim
        self.dtype = np.dtype(dtype)
        self._cache = None

    def kl(self, mu, logvar, z=None):
        r""":math:`\mathrm{KL}(q(z \mid x) \,\|\, N(0, I))` per example, exact;
        ``z`` is not needed."""
        return losses.kl_standard_normal(mu, logvar)

    def forward(self, mu, logvar, z=None):
        r""":math:`\sum_n \mathrm{KL}_n`, caching :math:`(\mu, \log\sigma^2)`."""
        self._cache = mu, logvar
        return float(self.kl(mu, logvar).sum())

    def backward(self, scale):
        r"""By :func:`npvae.core.losses.kl_standard_normal_backward`:
        :math:`(s\,\mu,\ \frac s2 (\sigma^2 - 1),\ 0)` for ``scale`` :math:`s`;
        the closed form does not depend on :math:`z`, so its gradient there
        is the number 0, which adds nothing to the decoder's."""
        (mu, logvar), self._cache = self._cache, None
        grad_mu, grad_logvar = losses.kl_standard_normal_backward(mu, logvar)
        return scale * grad_mu, scale * grad_logvar, 0

    def log_prob(self, z):
        r""":math:`\log N(z \mid 0, I) = -\frac12 \sum_j (\log 2\pi + z_j^2)` per row."""
        return -0.5 * np.sum(_LOG_2PI + z * z, axis=-1)

    def log_prob_grad(self, z):
        r""":math:`\partial \log N(z \mid 0, I) / \partial z = -z`."""
        return -z

    def log_prob_backward(self, z, scale):
        """No parameters to fill (see :meth:`GaussianMixture.log_prob_backward`)."""

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
    form; the loss uses the estimate at the sample :math:`z`,

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
        r""":math:`\pi = \operatorname{softmax}(a)`, the mixing weights."""
        logits = self.params["logits"]
        return np.exp(logits - log_sum_exp(logits))

    def _log_joint(self, z):
        r""":math:`\ell_{nk} = \log \pi_k + \log N(z_n \mid m_k, s_k^2)`, (n, K),
        and the scaled residuals :math:`u_{nk} = (z_n - m_k) / s_k^2`,
        :math:`d_{nk} = z_n - m_k`, (n, K, L)."""
        logits, means, logvars = (self.params[k] for k in ("logits", "means", "logvars"))
        d = z[:, None, :] - means
        u = d * np.exp(-logvars)
        log_pi = logits - log_sum_exp(logits)
        log_joint = log_pi - 0.5 * np.sum(_LOG_2PI + logvars + d * u, axis=-1)
        return log_joint, d, u

    def log_prob(self, z):
        r""":math:`\log p(z_n) = \log \sum_k e^{\ell_k(z_n)}` per row, by
        :func:`log_sum_exp`."""
        return log_sum_exp(self._log_joint(z)[0])

    def log_prob_grad(self, z):
        r""":math:`\partial \log p(z_n) / \partial z_n = -\sum_k r_{nk}\,
        (z_n - m_k) / s_k^2`."""
        log_joint, _, u = self._log_joint(z)
        r = np.exp(log_joint - log_sum_exp(log_joint)[:, None])
        return -np.einsum("nk,nkl->nl", r, u)

    def log_prob_backward(self, z, scale):
        r"""Fill ``grads`` with the gradients of :math:`\sum_m s_m \log p(z_m)`
        for one weight :math:`s_m` per row (the IWAE's per-code weights):

        .. math::
            \frac{\partial}{\partial m_k} = \sum_m s_m r_{mk} u_{mk}, \qquad
            \frac{\partial}{\partial \log s_k^2}
                = \tfrac12 \sum_m s_m r_{mk} \big(u_{mk} \odot (z_m - m_k) - 1\big),
            \qquad
            \frac{\partial}{\partial a_k} = \sum_m s_m (r_{mk} - \pi_k)
        """
        log_joint, d, u = self._log_joint(z)
        r = np.exp(log_joint - log_sum_exp(log_joint)[:, None]) * scale[:, None]
        self.grads["means"][...] = np.einsum("mk,mkl->kl", r, u)
        self.grads["logvars"][...] = 0.5 * (np.einsum("mk,mkl->kl", r, u * d)
                                            - r.sum(axis=0)[:, None])
        self.grads["logits"][...] = r.sum(axis=0) - scale.sum() * self.weights

    def responsibilities(self, z):
        r""":math:`r_{nk} = p(k \mid z_n) = e^{\ell_k(z_n) - \log p(z_n)}`,
        (n, K): which component each code belongs to."""
        log_joint = self._log_joint(z)[0]
        return np.exp(log_joint - log_sum_exp(log_joint)[:, None])

    def kl(self, mu, logvar, z):
        r""":math:`\log q(z_n \mid x_n) - \log p(z_n)` per example."""
        return log_posterior(mu, logvar, z) - self.log_prob(z)

    def forward(self, mu, logvar, z):
        r""":math:`\sum_n \log q(z_n \mid x_n) - \log p(z_n)`, caching the
        responsibilities and residuals for ``backward``."""
        log_joint, d, u = self._log_joint(z)
        log_pz = log_sum_exp(log_joint)
        r = np.exp(log_joint - log_pz[:, None])
        self._cache = logvar, r, d, u
        return float(np.sum(log_posterior(mu, logvar, z) - log_pz))

    def backward(self, scale):
        r"""Gradients of :math:`s \sum_n (\log q(z_n \mid x_n) - \log p(z_n))`
        for ``scale`` :math:`s`, with :math:`r_{nk}`, :math:`u_{nk} = (z_n -
        m_k)/s_k^2` and :math:`\pi = \operatorname{softmax}(a)`:

        .. math::
            \frac{\partial}{\partial z_n} = s \sum_k r_{nk} u_{nk}, \qquad
            \frac{\partial}{\partial m_k} = -s \sum_n r_{nk} u_{nk},

            \frac{\partial}{\partial \log s_k^2}
                = -\frac s2 \sum_n r_{nk} \big(u_{nk} \odot (z_n - m_k) - 1\big),
            \qquad
            \frac{\partial}{\partial a_k} = -s \sum_n (r_{nk} - \pi_k),

        and through :math:`\log q` at fixed :math:`\varepsilon`: 0 for
        :math:`\mu`, :math:`-\frac s2` for each :math:`\log\sigma_j^2`.
        """
        (logvar, r, d, u), self._cache = self._cache, None
        r_sum = r.sum(axis=0)
        weighted_u = r[:, :, None] * u
        self.grads["means"][...] = -scale * weighted_u.sum(axis=0)
        self.grads["logvars"][...] = -0.5 * scale * (
            np.einsum("nkl,nkl->kl", weighted_u, d) - r_sum[:, None])
        self.grads["logits"][...] = -scale * (r_sum - r.shape[0] * self.weights)
        grad_z = scale * weighted_u.sum(axis=1)
        return np.zeros_like(logvar), np.full_like(logvar, -0.5 * scale), grad_z

    def sample(self, n, rng):
        r""":math:`n` draws from the mixture: a component
        :math:`k \sim \operatorname{Categorical}(\pi)`, then
        :math:`z = m_k + s_k \odot \varepsilon`, :math:`\varepsilon \sim N(0, I)`."""
        weights = self.weights.astype(np.float64)
        k = rng.choice(self.n_components, size=n, p=weights / weights.sum())
        eps = rng.standard_normal((n, self.latent_dim), dtype=self.dtype)
        return self.params["means"][k] + np.exp(0.5 * self.params["logvars"][k]) * eps


PRIORS = {"standard_normal": StandardNormal, "mixture": GaussianMixture}


def make_prior(name, latent_dim, n_components, rng, dtype):
    """A new prior piece from its name in ``PRIORS``; only the mixture
    draws from ``rng`` (its initial means)."""
    if name == "standard_normal":
        return StandardNormal(latent_dim, dtype)
    if name == "mixture":
        return GaussianMixture(latent_dim, n_components, rng, dtype)
    raise ValueError(f"unknown prior {name!r}; choose one of {tuple(PRIORS)}")

r"""The decoder's distributions :math:`p(x \mid z)` as pieces with the layer
contract.

Each likelihood turns the decoder's output :math:`o` into a distribution
over the data:

* ``forward(x, o)`` takes ``x`` of shape (..., d) and ``o`` of shape
  (..., d) (``x`` broadcast against ``o``) and returns
  :math:`\log p(x_r \mid o_r)` per row, shape (...), in nats, caching what
  ``backward`` needs;
* ``backward(dout)`` takes :math:`\partial L / \partial \log p_r`, an array
  of exactly the shape ``forward`` returned, and returns
  :math:`\partial L / \partial o`, shape (..., d), filling ``grads`` for
  the likelihood's own parameters (the Gaussian's learned noise).  The model
  chooses the weights: the VAE's mean negative log-likelihood passes
  :math:`-1/n` per row, the IWAE its normalised importance weights,
  inference its mask (with each pixel as a row);
* ``log_prob(x, o)`` gives the same values as ``forward`` without caching,
  for scoring; with ``overwrite=True`` the caller gives up ``o`` (a fresh
  output it will not read again), which a likelihood may then work in;
  ``mean(o)`` is :math:`\mathbb{E}[x \mid o]`, what ``decode``
  returns; ``check_support(X)`` refuses data the density is not defined on.

The equations are those of :mod:`npvae.core.losses`, which holds the textbook
functions; the Bernoulli runs the fused form of :mod:`npvae.core.fused`,
whose docstring names its textbook twin.  A new likelihood is one new class
here and one entry in ``LIKELIHOODS``.
"""
import math

import numpy as np

from . import losses
from .fused import bernoulli_log_likelihood_fused
from .layers import sigmoid

__all__ = ["Bernoulli", "Gaussian", "ContinuousBernoulli", "LIKELIHOODS", "make_likelihood"]


class Bernoulli:
    r"""Bernoulli pixels with probabilities :math:`\sigma(\ell)` from the
    decoder's logits :math:`\ell`.

    .. math::
        \log p(x \mid \ell) = \sum_d x_d \ell_d - \operatorname{softplus}(\ell_d),
        \qquad
        \frac{\partial \log p}{\partial \ell_d} = x_d - \sigma(\ell_d)

    Parameters
    ----------
    dtype : numpy dtype
        Unused: the Bernoulli has no parameters of its own.
    obs_var : None
        Unused (a Gaussian's setting; accepted so every likelihood is built
        alike).
    """

    params = grads = {}

    def __init__(self, dtype=np.float64, obs_var=None):
        self._residual = None

    @staticmethod
    def check_support(X):
        """Refuse data outside [0, 1], where the density is not defined."""
        _check_unit_interval(X, "Bernoulli")

    def init_from_data(self, X):
        """Nothing to set from the training data."""

    def forward(self, x, logits):
        r""":math:`\log p(x_r \mid \ell_r)` per row, shape (...) for
        ``logits`` of shape (..., d), caching the residual
        :math:`x - \sigma(\ell)` for ``backward``.

        Runs :func:`npvae.core.fused.bernoulli_log_likelihood_fused`, which
        shares one exponential per entry between the value and the
        gradient; its textbook twin is
        :func:`~npvae.core.losses.bernoulli_log_likelihood` and
        :func:`~npvae.core.losses.bernoulli_log_likelihood_backward`.
        """
        log_px, self._residual = bernoulli_log_likelihood_fused(x, logits)
        return log_px

    def backward(self, dout):
        r""":math:`\partial L/\partial \ell_{rd} = g_r\,(x_{rd} - \sigma(\ell_{rd}))`
        for :math:`g_r` = ``dout`` of shape (...); returns shape (..., d)."""
        residual, self._residual = self._residual, None
        residual *= dout[..., None]     # a new array of forward's, so scaled in place
        return residual

    def log_prob(self, x, logits, *, overwrite=False):
        r""":math:`\log p(x_r \mid \ell_r)` per row, shape (...), by the fused
        form without its residual; with ``overwrite`` in place of ``logits``
        (which then hold :math:`\log(1 + e^{-|\ell|})`)."""
        return bernoulli_log_likelihood_fused(x, logits, residual=False,
                                              overwrite_logits=overwrite)[0]

    def mean(self, logits):
        r""":math:`\mathbb{E}[x \mid \ell] = \sigma(\ell)`, the pixel probabilities."""
        return sigmoid(logits)

    @staticmethod
    def inverse_mean(mean):
        r"""The logits whose mean is ``mean``: :math:`\ell = \log\frac{m}{1 - m}`,
        with :math:`m` clipped to [0.001, 0.999] so that the logits stay
        within :math:`\pm 6.9`."""
        m = np.clip(mean, 0.001, 0.999)
        return np.log(m) - np.log1p(-m)


class ContinuousBernoulli:
    r"""Continuous Bernoulli pixels (Loaiza-Ganem & Cunningham, 2019): the
    normalised density on [0, 1] of the Bernoulli's formula, from the
    decoder's logits :math:`\eta`.

    .. math::
        \log p(x \mid \eta) = \sum_d x_d \eta_d - \operatorname{softplus}(\eta_d)
            + \log C(\eta_d),
        \qquad
        \frac{\partial \log p}{\partial \eta_d} = x_d - \mathbb{E}[x_d \mid \eta_d]

    with :math:`C(\eta) = \eta / \tanh(\eta/2)` and
    :math:`\mathbb{E}[x \mid \eta] = 1/(1 - e^{-\eta}) - 1/\eta`
    (docs/math.md, section 10).

    Parameters
    ----------
    dtype : numpy dtype
        Unused: the continuous Bernoulli has no parameters of its own.
    obs_var : None
        Unused (a Gaussian's setting; accepted so every likelihood is built
        alike).
    """

    params = grads = {}

    def __init__(self, dtype=np.float64, obs_var=None):
        self._cache = None

    @staticmethod
    def check_support(X):
        """Refuse data outside [0, 1], where the density is not defined."""
        _check_unit_interval(X, "continuous Bernoulli")

    def init_from_data(self, X):
        """Nothing to set from the training data."""

    def forward(self, x, logits):
        r""":math:`\log p(x_r \mid \eta_r)` per row, shape (...) for ``logits``
        of shape (..., d), by
        :func:`npvae.core.losses.continuous_bernoulli_log_likelihood`, caching
        ``x`` and :math:`\eta`."""
        self._cache = x, logits
        return self.log_prob(x, logits)

    def backward(self, dout):
        r""":math:`\partial L/\partial \eta_{rd} = g_r\,(x_{rd} - \mathbb{E}[x_{rd} \mid \eta_{rd}])`
        by :func:`npvae.core.losses.continuous_bernoulli_log_likelihood_backward`,
        for :math:`g_r` = ``dout`` of shape (...); returns shape (..., d)."""
        (x, logits), self._cache = self._cache, None
        residual = losses.continuous_bernoulli_log_likelihood_backward(x, logits)
        residual *= dout[..., None]    # a new array, so scaled in place
        return residual

    def log_prob(self, x, logits, *, overwrite=False):
        r""":math:`\log p(x_r \mid \eta_r)` per row, shape (...); ``logits``
        are never written (``overwrite`` is allowed, not used)."""
        return losses.continuous_bernoulli_log_likelihood(x, logits)

    def mean(self, logits):
        r""":math:`\mathbb{E}[x \mid \eta] = 1/(1 - e^{-\eta}) - 1/\eta`, by
        :func:`npvae.core.losses.continuous_bernoulli_mean`: pulled towards 1/2
        from the Bernoulli's :math:`\sigma(\eta)`."""
        return losses.continuous_bernoulli_mean(logits)


class Gaussian:
    r"""Gaussian data around the decoder's output :math:`m`, with one
    isotropic noise variance :math:`\sigma^2`, fixed or learned.

    .. math::
        \log N(x \mid m, \sigma^2 I) = -\frac12 \sum_d \Big(\log 2\pi
            + \log\sigma^2 + \frac{(x_d - m_d)^2}{\sigma^2}\Big)

    Parameters
    ----------
    dtype : numpy dtype
        Floating type of :math:`\log\sigma^2`.
    obs_var : float or None
        A fixed :math:`\sigma^2`, or ``None`` to learn :math:`\log\sigma^2`
        as the parameter ``obs_logvar``.
    """

    def __init__(self, dtype=np.float64, obs_var=None):
        if obs_var is None:
            self.params = {"obs_logvar": np.zeros((), dtype=dtype)}
            self.grads = {"obs_logvar": np.zeros((), dtype=dtype)}
            self._fixed_logvar = None
        else:
            self.params = self.grads = {}
            self._fixed_logvar = np.asarray(math.log(obs_var), dtype=dtype)
        self._cache = None

    @property
    def logvar(self):
        r""":math:`\log\sigma^2`, a 0-d array (the live parameter when learned)."""
        if self._fixed_logvar is None:
            return self.params["obs_logvar"]
        return self._fixed_logvar

    @staticmethod
    def check_support(X):
        """Every finite X is in the support."""

    def init_from_data(self, X):
        r"""Start a learned noise variance at the data's mean per-feature
        variance, :math:`\sigma^2_0 = \frac1D \sum_d \operatorname{Var}(x_d)`,
        the noise of a model that explains nothing.

        Adam moves :math:`\log\sigma^2` by about the learning rate a step,
        so from 1 it would take thousands of steps to reach the scale of
        data in [0, 1], with the decoder's fit drowned in noise until then.
        """
        if self._fixed_logvar is not None:
            return
        variance = _mean_feature_variance(X)
        if 0 < variance < math.inf:     # constant data: nothing to scale to
            # Kept where exp(-log sigma^2) and its square stay finite in the dtype.
            bound = 0.5 * math.log(float(np.finfo(self.logvar.dtype).max))
            self.params["obs_logvar"][...] = min(max(math.log(variance), -bound), bound)

    def forward(self, x, mean):
        r""":math:`\log N(x_r \mid m_r, \sigma^2 I)` per row, shape (...) for
        ``mean`` of shape (..., d), by
        :func:`npvae.core.losses.gaussian_log_likelihood`, caching ``x`` and
        :math:`m`."""
        self._cache = x, mean
        return self.log_prob(x, mean)

    def backward(self, dout):
        r"""For :math:`g_r` = ``dout`` of shape (...), by
        :func:`npvae.core.losses.gaussian_log_likelihood_backward` row by row:

        .. math::
            \frac{\partial L}{\partial m_r} = g_r\,\frac{x_r - m_r}{\sigma^2},
            \qquad
            \frac{\partial L}{\partial \log\sigma^2}
                = \sum_r g_r \sum_d \Big(\frac{(x_{rd} - m_{rd})^2}{2\sigma^2} - \frac12\Big)

        Returns :math:`\partial L/\partial m`, shape (..., d); the second
        fills ``grads["obs_logvar"]`` when the noise is learned.
        """
        (x, mean), self._cache = self._cache, None
        # Rows one at a time: logvar of shape (..., 1) sums each row's share.
        logvar_per_row = np.broadcast_to(self.logvar, (*dout.shape, 1))
        grad_mean, grad_logvar = losses.gaussian_log_likelihood_backward(x, mean,
                                                                         logvar_per_row)
        if self._fixed_logvar is None:
            self.grads["obs_logvar"][...] = np.sum(dout * grad_logvar[..., 0])
        grad_mean *= dout[..., None]
        return grad_mean

    def log_prob(self, x, mean, *, overwrite=False):
        r""":math:`\log N(x_n \mid m_n, \sigma^2 I)` per example (summed over
        the last axis); ``mean`` is never written (``overwrite`` is allowed,
        not used)."""
        return losses.gaussian_log_likelihood(x, mean, self.logvar)

    def mean(self, out):
        r""":math:`\mathbb{E}[x \mid m] = m`."""
        return out

    @staticmethod
    def inverse_mean(mean):
        """The decoder output whose mean is ``mean``: ``mean`` itself."""
        return mean


def _check_unit_interval(X, name):
    lo, hi = X.min(), X.max()
    if lo < 0 or hi > 1:
        raise ValueError(
            f"the {name} likelihood needs X in [0, 1], got values in "
            f"[{lo:.4g}, {hi:.4g}]; rescale X (in a Pipeline, MinMaxScaler(clip=True) "
            f"keeps unseen rows in [0, 1]) or use likelihood='gaussian'")


def _mean_feature_variance(X, block=4096):
    r""":math:`\frac1D \sum_d \operatorname{Var}(x_d)`, accumulated in
    float64 over row blocks (no copy of ``X``); inf if it overflows."""
    mean = X.mean(axis=0, dtype=np.float64)
    total = 0.0
    with np.errstate(over="ignore"):
        for start in range(0, X.shape[0], block):
            r = X[start:start + block] - mean
            total += float(np.einsum("ij,ij->", r, r))
    return total / X.size


LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian,
               "continuous_bernoulli": ContinuousBernoulli}


def make_likelihood(name, dtype, obs_var=None):
    """A new likelihood piece from its name in ``LIKELIHOODS``."""
    try:
        cls = LIKELIHOODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown likelihood {name!r}; choose one of {tuple(LIKELIHOODS)}") from None
    return cls(dtype=dtype, obs_var=obs_var)

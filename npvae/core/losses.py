r"""Log-likelihoods of the decoder and the KL term of the encoder, in nats.

The textbook forms.  Each value function returns one number per example,
shape (n,) (summed over features or latent dimensions); each ``*_backward``
returns the gradient of one example's number with respect to its own
inputs, row by row (the pieces of :mod:`npvae.core.likelihoods` weigh the
rows).  The training step's fused Bernoulli form is
:func:`npvae.core.fused.bernoulli_log_likelihood_fused`.  The VAE's loss
per example is

.. math::
    \mathcal{L}(x) = -\log p(x \mid z) + \beta\,
        \mathrm{KL}\big(q(z \mid x) \,\|\, N(0, I)\big),
    \qquad z = \mu(x) + \sigma(x) \odot \varepsilon,

the negative ELBO when :math:`\beta = 1`.
"""
from typing import NamedTuple

import numpy as np

from .layers import sigmoid, softplus

__all__ = [
    "bernoulli_log_likelihood", "bernoulli_log_likelihood_backward",
    "gaussian_log_likelihood", "gaussian_log_likelihood_backward",
    "kl_standard_normal", "kl_standard_normal_backward",
    "continuous_bernoulli_log_norm", "continuous_bernoulli_log_norm_backward",
    "continuous_bernoulli_mean", "continuous_bernoulli_log_likelihood",
    "continuous_bernoulli_log_likelihood_backward",
]

_LOG_2PI = float(np.log(2 * np.pi))


def bernoulli_log_likelihood(x, logits):
    r"""Bernoulli log-likelihood of ``x`` with probabilities
    :math:`\sigma(\ell)`, from the logits :math:`\ell`.

    .. math::
        \log p(x \mid \ell) = \sum_d x_d \log\sigma(\ell_d)
            + (1 - x_d) \log(1 - \sigma(\ell_d))
        = \sum_d x_d \ell_d - \operatorname{softplus}(\ell_d)

    The right-hand form never takes the log of a probability that rounded
    to 0, so it stays finite for any finite logits.  For ``x`` in [0, 1]
    that is not binary it is the negative binary cross-entropy.

    Returns
    -------
    ndarray of shape (n,)
    """
    return np.sum(x * logits - softplus(logits), axis=-1)


def bernoulli_log_likelihood_backward(x, logits):
    r""":math:`\partial \log p / \partial \ell_d = x_d - \sigma(\ell_d)`."""
    return x - sigmoid(logits)


def gaussian_log_likelihood(x, mean, logvar):
    r"""Gaussian log-density of ``x`` with all its constants, in nats.

    .. math::
        \log N(x \mid m, \sigma^2 I) = -\frac12 \sum_d \Big(\log 2\pi
            + \log\sigma^2 + \frac{(x_d - m_d)^2}{\sigma^2}\Big)

    Parameters
    ----------
    x, mean : ndarray of shape (n, d)
    logvar : float or ndarray
        :math:`\log\sigma^2`: a scalar (isotropic noise, learned or fixed)
        or an array broadcastable to ``x``.

    Returns
    -------
    ndarray of shape (n,)
    """
    r = x - mean
    logvar = np.broadcast_to(logvar, r.shape)
    return -0.5 * np.sum(_LOG_2PI + logvar + r * r * np.exp(-logvar), axis=-1)


def gaussian_log_likelihood_backward(x, mean, logvar):
    r"""Gradients of the batch's summed Gaussian log-density.

    .. math::
        \frac{\partial \log p}{\partial m_d} = \frac{x_d - m_d}{\sigma^2},
        \qquad
        \frac{\partial \log p}{\partial \log\sigma^2}
            = \sum_{\text{shared}} \Big(\frac{(x_d - m_d)^2}{2\sigma^2}
              - \frac12\Big)

    where the second sum runs over the entries that share one
    :math:`\log\sigma^2` (all of them for a scalar).

    Returns
    -------
    grad_mean : ndarray of shape (n, d)
    grad_logvar : ndarray of the shape of ``logvar``
    """
    r = x - mean
    logvar = np.asarray(logvar)
    grad_mean = r * np.exp(-logvar)
    grad_full = 0.5 * (r * grad_mean - 1)
    # Sum the broadcast entries back onto the shape of logvar.
    lead = grad_full.ndim - logvar.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(logvar.shape) if s == 1)
    grad_logvar = np.sum(grad_full, axis=axes).reshape(logvar.shape)
    return grad_mean, grad_logvar


def kl_standard_normal(mu, logvar):
    r"""KL divergence from :math:`N(\mu, \operatorname{diag}\sigma^2)` to
    :math:`N(0, I)`, in closed form.

    .. math::
        \mathrm{KL} = -\frac12 \sum_j \big(1 + \log\sigma_j^2 - \mu_j^2
            - \sigma_j^2\big)
        = \frac12 \sum_j \big(\mu_j^2 + (\sigma_j^2 - 1) - \log\sigma_j^2\big)

    evaluated in the right-hand form with :math:`\sigma^2 - 1` from
    ``expm1``: each term is then :math:`\ge 0` in floating point too,
    whereas :math:`1 + \log\sigma^2 - \sigma^2` cancels to a negative
    rounding error for :math:`|\log\sigma^2| \approx 10^{-9}`.

    Returns
    -------
    ndarray of shape (n,)
    """
    return 0.5 * (mu * mu + (np.expm1(logvar) - logvar)).sum(axis=-1)


def kl_standard_normal_backward(mu, logvar):
    r"""Gradients of the closed-form KL.

    .. math::
        \frac{\partial\,\mathrm{KL}}{\partial \mu_j} = \mu_j, \qquad
        \frac{\partial\,\mathrm{KL}}{\partial \log\sigma_j^2}
            = \tfrac12 \big(\sigma_j^2 - 1\big)

    Returns
    -------
    grad_mu, grad_logvar : ndarray
    """
    return mu, 0.5 * np.expm1(logvar)


# --------------------------------------------------------------------------
# The continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019): docs/math.md §10

# The Taylor coefficients of the Langevin function coth(u) - 1/u, the
# 2^{2k} B_{2k} / (2k)! of the Bernoulli numbers: eleven terms reach float64
# rounding for |u| <= 1/2 (the series converges for |u| < pi, each term
# (u/pi)^2 ~ 1/40 of the last there).
_LANGEVIN_SERIES = (1 / 3, -1 / 45, 2 / 945, -1 / 4725, 2 / 93555,
                    -1382 / 638512875, 4 / 18243225, -3617 / 162820783125,
                    87734 / 38979295480125, -349222 / 1531329465290625,
                    310732 / 13447856940643125)
# |eta| below which the series run; above it the closed forms cancel by at
# most a factor of ~10 and never overflow.
_SERIES_BELOW = 1.0
_LOG2 = float(np.log(2.0))


def _langevin_series(u):
    r""":math:`L(u) = \coth u - 1/u = \sum_k \frac{2^{2k} B_{2k}}{(2k)!} u^{2k-1}`
    by Horner's rule in :math:`u^2`, for :math:`|u| \le 1/2`."""
    u2 = u * u
    total = np.full_like(u, _LANGEVIN_SERIES[-1])
    for c in _LANGEVIN_SERIES[-2::-1]:
        total *= u2
        total += c
    return total * u


class _SeriesAndClosedInputs(NamedTuple):
    r"""The inputs of both forms of a continuous-Bernoulli function of
    :math:`\eta`, each on harmless values: both forms are computed on every
    entry and ``np.where(small, series, closed)`` keeps the right one."""
    eta: np.ndarray     # the logits
    small: np.ndarray   # |eta| < 1: where the series serves
    u: np.ndarray       # eta / 2 clipped into the series' range
    a: np.ndarray       # |eta| kept >= 1 for the closed forms
    t: np.ndarray       # e^{-a}
    m: np.ndarray       # 1 - e^{-a}, by expm1


def _series_and_closed_inputs(logits):
    eta = np.asarray(logits)
    small = np.abs(eta) < _SERIES_BELOW
    u = np.clip(eta, -_SERIES_BELOW, _SERIES_BELOW) * 0.5
    a = np.maximum(np.abs(eta), _SERIES_BELOW)
    return _SeriesAndClosedInputs(eta, small, u, a, np.exp(-a), -np.expm1(-a))


def continuous_bernoulli_log_norm(logits):
    r"""The log normalising constant of the continuous Bernoulli, from the
    logit :math:`\eta` (elementwise).

    .. math::
        \log C(\eta) = -\log \int_0^1 e^{x\eta - \operatorname{softplus}(\eta)}\,dx
            = \log\frac{\eta}{\tanh(\eta/2)},
        \qquad \log C(0) = \log 2

    (for :math:`\lambda = \sigma(\eta)` this is the paper's
    :math:`C(\lambda) = 2\operatorname{artanh}(1 - 2\lambda)/(1 - 2\lambda)`).
    It is even in :math:`\eta`.  For :math:`|\eta| < 1`, with
    :math:`u = \eta/2` and the Langevin series :math:`L(u) = \coth u - 1/u`,

    .. math::
        \log C = \log 2 + \log\big(1 + u L(u)\big)
            = \log 2 + \frac{\eta^2}{12} - \frac{7\eta^4}{1440} + \dots

    (no 0/0 at :math:`\eta = 0`); otherwise, with :math:`a = |\eta|`,

    .. math::
        \log C = \log a + \log(1 + e^{-a}) - \log(1 - e^{-a}),

    which stays finite for the largest floats.
    """
    eta, small, u, a, t, m = _series_and_closed_inputs(logits)
    series = _LOG2 + np.log1p(u * _langevin_series(u))
    closed = np.log(a) + np.log1p(t) - np.log(m)
    return np.where(small, series, closed)


def continuous_bernoulli_log_norm_backward(logits):
    r"""The derivative of :func:`continuous_bernoulli_log_norm`
    (elementwise): what the normalising constant adds to the Bernoulli's
    gradient :math:`x - \sigma(\eta)`.

    .. math::
        \frac{d \log C}{d\eta} = \frac1\eta - \frac1{\sinh \eta}
            = \sigma(\eta) - \mathbb{E}[x \mid \eta]
            = \tfrac12\big(\tanh u - L(u)\big), \quad u = \eta/2

    The last form (with the series of :math:`L`) serves
    :math:`|\eta| < 1`, where the first cancels; beyond,
    :math:`1/\sinh a = 2 e^{-a} / ((1 - e^{-a})(1 + e^{-a}))` never
    overflows.
    """
    eta, small, u, a, t, m = _series_and_closed_inputs(logits)
    series = 0.5 * (np.tanh(u) - _langevin_series(u))
    closed = np.sign(eta) * (1 / a - 2 * t / (m * (1 + t)))
    return np.where(small, series, closed)


def continuous_bernoulli_mean(logits):
    r"""The mean of the continuous Bernoulli with logit :math:`\eta`
    (elementwise), what ``decode`` returns.

    .. math::
        \mathbb{E}[x \mid \eta]
            = \frac{\int_0^1 x e^{x\eta}\,dx}{\int_0^1 e^{x\eta}\,dx}
            = \frac{1}{1 - e^{-\eta}} - \frac1\eta
            = \frac12 + \frac12 L(\eta/2),
        \qquad \mathbb{E}[x \mid 0] = \frac12

    with the Langevin series :math:`L(u) = \coth u - 1/u = u/3 - u^3/45 +
    \dots` for :math:`|\eta| < 1`, where the first form cancels; beyond,
    with :math:`a = |\eta|`, :math:`\mathbb{E} = 1/(1 - e^{-a}) - 1/a` for
    :math:`\eta > 0` and :math:`1/a - e^{-a}/(1 - e^{-a})` for
    :math:`\eta < 0` (the same, by :math:`\mathbb{E}[x \mid -\eta] = 1 -
    \mathbb{E}[x \mid \eta]`, without forming that difference).  The
    continuous Bernoulli's mean is not :math:`\sigma(\eta)`: it is pulled
    towards 1/2.
    """
    eta, small, u, a, t, m = _series_and_closed_inputs(logits)
    series = 0.5 + 0.5 * _langevin_series(u)
    closed = np.where(eta > 0, 1 / m - 1 / a, 1 / a - t / m)
    return np.where(small, series, closed)


def continuous_bernoulli_log_likelihood(x, logits):
    r"""Continuous Bernoulli log-density of ``x`` in [0, 1] with logits
    :math:`\eta`, in nats per example.

    .. math::
        \log p(x \mid \eta) = \sum_d x_d \eta_d - \operatorname{softplus}(\eta_d)
            + \log C(\eta_d)

    the Bernoulli's log-likelihood (the negative binary cross-entropy)
    plus :func:`continuous_bernoulli_log_norm`, which makes it a density on
    :math:`[0, 1]^D` for grey-level ``x``.  Summed per entry, as
    :func:`bernoulli_log_likelihood` is.

    Returns
    -------
    ndarray of shape (n,)
    """
    return np.sum(x * logits - softplus(logits) + continuous_bernoulli_log_norm(logits),
                  axis=-1)


def continuous_bernoulli_log_likelihood_backward(x, logits):
    r""":math:`\partial \log p / \partial \eta_d = x_d - \mathbb{E}[x_d \mid \eta_d]`,

    the Bernoulli's :math:`x_d - \sigma(\eta_d)` plus
    :func:`continuous_bernoulli_log_norm_backward`, formed in one step by
    :func:`continuous_bernoulli_mean`."""
    return x - continuous_bernoulli_mean(logits)

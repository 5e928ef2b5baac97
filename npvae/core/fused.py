r"""The fused forms: faster ways to compute a textbook function, in one place.

A student stepping through the training step meets these instead of the
textbook forms they equal.  Each fused form's docstring names its textbook
twin, and :data:`TWINS` pairs every one of them, so that one test
(tests/core/test_fused.py) checks each pair agrees in float64 to
:math:`10^{-12}` relative.  Two live beside what owns them, and are listed
here: :func:`npvae.core.layers.column_sums` (``Dense.backward``'s bias
gradient) and :func:`npvae.core.layers.row_sums` (the likelihoods' sums per
row; layers sit below this module) and
:meth:`npvae.core.optimizers.Adam.step` (which owns its moment buffers).
Why each is faster is measured in benchmarks/README.md.
"""
import numpy as np

from . import losses
from .layers import column_sums, row_sums
from .optimizers import Adam, adam_step_textbook

__all__ = ["bernoulli_log_likelihood_fused", "TWINS"]


def bernoulli_log_likelihood_fused(x, logits, residual=True, overwrite_logits=False):
    r"""The Bernoulli log-likelihood per row and, with ``residual``, its
    gradient :math:`x - \sigma(\ell)`, from one exponential per element.

    Textbook twin: :func:`npvae.core.losses.bernoulli_log_likelihood` and
    :func:`npvae.core.losses.bernoulli_log_likelihood_backward`.

    .. math::
        \log p(x \mid \ell) = \sum_d \tfrac12 \big((2 x_d - 1)\, \ell_d - |\ell_d|\big)
            - \log(1 + e_d),
        \qquad e_d = e^{-|\ell_d|} \in (0, 1],

        \sigma(\ell) = \frac{e^{\min(\ell, 0)}}{1 + e_d},
        \qquad e^{\min(\ell, 0)} = \max\big(e_d, \operatorname{sign} \ell\big)

    since :math:`x \ell - \max(\ell, 0) = \frac12((2x - 1)\ell - |\ell|)`.
    Both terms are :math:`\le 0`, so one sum per row adds terms of one sign
    (by :func:`npvae.core.layers.row_sums`, twin of ``.sum(axis=-1)``):
    separate sums of :math:`x \ell` and :math:`\max(\ell, 0)` run to
    thousands of nats per MNIST row and cancel to about a hundred, which in
    float32 costs more precision than the result has.  :math:`\log(1 + e)` is ``log``, not ``log1p``: with
    :math:`e \le 1` both are exact to a rounding of 1, and ``log`` is
    faster.  The sigmoid reuses :math:`e_d` (it is :math:`e^{\ell}` for
    :math:`\ell < 0`; :math:`\operatorname{sign} \ell = 1` wins otherwise),
    so it equals :func:`npvae.core.layers.sigmoid` bit for bit.

    :math:`2x - 1` is formed at the shape of ``x``: once for all the samples
    it broadcasts over (the importance-weighted estimate's ``(c, b, d)``
    logits against ``(b, d)`` data).  Scoring fresh logits that are not
    needed afterwards (``overwrite_logits``), the exponential's pass works
    in them instead of in a new array.

    Parameters
    ----------
    x : ndarray of shape (..., d)
        Data in [0, 1], broadcastable against ``logits``.
    logits : ndarray of shape (..., d)
        Read only, unless ``overwrite_logits``.
    residual : bool
        Whether to form :math:`x - \sigma(\ell)` too.
    overwrite_logits : bool
        Without ``residual`` only: score in place, leaving
        :math:`\log(1 + e_d)` in ``logits``.

    Returns
    -------
    log_px : ndarray of shape (...)
        :math:`\log p(x \mid \ell)` per row.
    residual : ndarray of shape (..., d), or None
        A new array :math:`x - \sigma(\ell)`; None without ``residual``.
    """
    if residual and overwrite_logits:
        raise ValueError("overwrite_logits scores in place, without the residual: "
                         "pass residual=False")
    signed = np.multiply(x, 2.0, out=np.empty(x.shape, logits.dtype))
    signed -= 1.0
    # In the array of 2x - 1 when x has the logits' shape, else one new array.
    signed = np.multiply(signed, logits, out=signed if signed.shape == logits.shape else None)
    e = np.abs(logits, out=logits if overwrite_logits else None)
    signed -= e                                # 2 (x l - max(l, 0)) <= 0
    signed *= 0.5
    np.negative(e, out=e)
    np.exp(e, out=e)
    if not residual:
        e += 1
        signed -= np.log(e, out=e)             # log p per entry, <= 0
        return row_sums(signed), None
    denom = e + 1
    work = np.log(denom)
    signed -= work                             # log p per entry, <= 0
    log_px = row_sums(signed)
    np.sign(logits, out=work)
    np.maximum(e, work, out=work)              # exp(min(l, 0))
    np.divide(work, denom, out=work)           # sigma(l)
    np.subtract(x, work, out=work)
    return log_px, work


def _bernoulli_textbook(x, logits, residual=True):
    return (losses.bernoulli_log_likelihood(x, logits),
            losses.bernoulli_log_likelihood_backward(x, logits) if residual else None)


def _bernoulli_scored_in_place(x, logits):
    # The scoring path, in place of a copy of the logits: the twin's convention.
    return bernoulli_log_likelihood_fused(x, logits.copy(), residual=False,
                                          overwrite_logits=True)[0]


def _adam_step(theta, g, m, v, t, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    # Adam.step at step t on copies of (theta, m, v): the textbook twin's convention.
    adam = Adam(learning_rate, beta1, beta2, eps)
    adam.t, adam.m, adam.v = t - 1, {"p": m.copy()}, {"p": v.copy()}
    theta = theta.copy()
    adam.step({"p": theta}, {"p": g})
    return theta, adam.m["p"], adam.v["p"]


# Every fused form of the training step and its textbook twin, each pair
# called with the same arguments and returning the same values; a form that
# works in place is wrapped to take and return arrays as its twin does.
TWINS = [
    (bernoulli_log_likelihood_fused, _bernoulli_textbook),
    (_bernoulli_scored_in_place, losses.bernoulli_log_likelihood),
    (column_sums, lambda g: g.sum(axis=0)),
    (row_sums, lambda a: a.sum(axis=-1)),
    (_adam_step, adam_step_textbook),
]

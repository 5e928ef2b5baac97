r"""Finite-difference gradient checks.

The analytic gradients of every layer, loss and model are compared with
central differences

.. math::
    \frac{\partial f}{\partial \theta_i} \approx
    \frac{f(\theta + h e_i) - f(\theta - h e_i)}{2h},

whose error is :math:`O(h^2)` (against :math:`O(h)` for one-sided ones), and
summarised by the relative error

.. math::
    \mathrm{err}(a, n) = \frac{\lVert a - n \rVert}
                             {\max(\lVert a \rVert + \lVert n \rVert, \text{tiny})},

with Euclidean norms over the entries checked: 0 when they agree, 1 when
one of them is zero, and scale-free, so one threshold serves gradients of
any size.  Checks run in float64; with smooth functions the error is
typically 1e-11 to 1e-8.

The default step :math:`h = 3 \cdot 10^{-5}` balances the truncation error,
:math:`O(h^2)`, against the rounding error of the loss,
:math:`O(\epsilon_{\text{mach}} |f| / h)`: over VAEs and Autoencoders
with 0-2 hidden layers, both likelihoods and smooth activations, the
largest error measured was 4e-8 at this step, against 1e-7 at
:math:`10^{-5}` (stacked sigmoids shrink the first layer's gradient, so
rounding dominates) and 5e-7 at :math:`10^{-4}` (truncation dominates for
the scalar noise log-variance).

Example
-------
>>> import numpy as np
>>> from npvae import VAE, gradcheck
>>> X = np.random.default_rng(0).random((16, 5))
>>> vae = VAE(latent_dim=2, hidden_dims=(8,), activation="tanh", dtype="float64")
>>> report = gradcheck.check_model(vae, X)
>>> report.max_error < 1e-7
True
>>> print(report.summary())            # doctest: +SKIP
max relative error 1.23e-09 <= threshold 1e-06: passed
"""
import numpy as np

from .rng import as_generator

__all__ = ["numerical_gradient", "relative_error", "check_gradient",
           "check_model", "GradcheckReport"]

TINY = 1e-300


def numerical_gradient(f, x, h=3e-5, indices=None):
    """Central-difference gradient of the scalar ``f()`` with respect to ``x``.

    Parameters
    ----------
    f : callable
        Takes no arguments and returns a scalar; it must read ``x``, which is
        perturbed in place (and restored) entry by entry.
    x : ndarray of float64
    h : float
        Step size.
    indices : array of int, optional
        Flat indices of the entries to differentiate; all of them by default.

    Returns
    -------
    ndarray
        The gradient at ``indices`` (flat), or the whole gradient in the
        shape of ``x`` when ``indices`` is None.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}")
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous so that it can be perturbed in place")
    idx = np.arange(flat.size) if indices is None else np.asarray(indices)
    grad = np.empty(idx.size)
    for k, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + h
        f_plus = float(f())
        flat[i] = old - h
        f_minus = float(f())
        flat[i] = old
        grad[k] = (f_plus - f_minus) / (2 * h)
    return grad.reshape(x.shape) if indices is None else grad


def relative_error(analytic, numeric, tiny=TINY):
    r""":math:`\lVert a - n \rVert / \max(\lVert a \rVert + \lVert n \rVert, \text{tiny})`."""
    a = np.asarray(analytic, dtype=np.float64).ravel()
    n = np.asarray(numeric, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), tiny))


def check_gradient(f, x, analytic, h=3e-5):
    """Relative error between ``analytic`` and the numerical gradient of
    ``f()`` with respect to ``x`` (all entries)."""
    return relative_error(analytic, numerical_gradient(f, x, h))


class GradcheckReport:
    """Per-parameter result of :func:`check_model`.

    Attributes
    ----------
    rows : list of tuple
        ``(name, shape, n_checked, relative_error)`` for each parameter.
    threshold : float
        The largest relative error that passes.
    """

    def __init__(self, rows, threshold=1e-6):
        self.rows, self.threshold = rows, threshold

    @property
    def errors(self):
        """The relative error of each parameter, by name."""
        return {name: err for name, *_, err in self.rows}

    @property
    def max_error(self):
        """The largest relative error over all parameters."""
        return max(err for *_, err in self.rows)

    @property
    def passed(self):
        """Whether every relative error is at most ``threshold``."""
        return self.max_error <= self.threshold

    def summary(self):
        """The one line ``npvae gradcheck`` ends with: the largest error
        against the threshold, passed or FAILED."""
        return (f"max relative error {self.max_error:.2e} {'<=' if self.passed else '>'} "
                f"threshold {self.threshold:g}: {'passed' if self.passed else 'FAILED'}")

    def __str__(self):
        width = max(len("parameter"), *(len(name) for name, *_ in self.rows))
        lines = [f"{'parameter':<{width}}  {'shape':>12}  {'checked':>7}  rel. error",
                 "-" * (width + 35)]
        for name, shape, n, err in self.rows:
            lines.append(f"{name:<{width}}  {str(shape):>12}  {n:>7d}  {err:.2e}")
        return "\n".join(lines + [self.summary()])


def check_model(model, X, eps=None, max_entries=30, h=3e-5, random_state=0, *, y=None,
                threshold=1e-6):
    r"""Compare a model's analytic gradients with central differences.

    The model's loss must be a deterministic function of its parameters:
    for a VAE the noise :math:`\varepsilon` is drawn once here (or passed)
    and reused by every evaluation.

    Parameters
    ----------
    model : estimator
        Needs ``params_`` (a dict of live float64 arrays, built by
        ``initialize`` if the model is not yet fitted),
        ``loss_and_grads(X, eps)`` and ``loss(X, eps)`` (with ``y=y`` when
        labels are given).  Any npvae model: VAE (either prior, any
        likelihood), IWAE, ConditionalVAE, Autoencoder, TwoLayerVAE, TwoLayerIWAE.
    X : ndarray of shape (n, d)
    eps : ndarray, optional
        Noise for the reparameterization, of shape (n, latent_dim), or
        (k, n, latent_dim) for a model with ``k`` importance samples (the
        IWAE), ``noise_dim`` wide for two stochastic layers; drawn from
        ``random_state`` when none is given (a model without latent noise
        ignores it).
    max_entries : int
        Parameters with more entries are checked on a random subset of
        this size.
    h : float
        Finite-difference step.
    random_state : int or numpy.random.Generator
        Chooses ``eps`` and the subsets.
    y : array-like of shape (n,), optional
        The rows' labels, for a model that ``needs_labels``.
    threshold : float
        The largest relative error that passes (the report's ``passed``).

    Returns
    -------
    GradcheckReport
    """
    rng = as_generator(random_state)
    X = np.asarray(X, dtype=np.float64)
    labels = {} if y is None else {"y": y}
    if not hasattr(model, "params_"):
        model.initialize(X.shape[1], **({} if y is None else {"classes": np.unique(y)}))
    if getattr(model, "dtype", "float64") != "float64":
        raise ValueError("gradient checks need dtype='float64'; "
                         f"this model uses {model.dtype!r}")
    if eps is None:     # a model without latent noise ignores it
        k = getattr(model, "k", None)
        # One code's noise is latent_dim wide, or noise_dim (two stochastic layers).
        width = getattr(model, "noise_dim", model.latent_dim)
        eps = rng.standard_normal((X.shape[0], width) if k is None else (k, X.shape[0], width))
    _, grads = model.loss_and_grads(X, eps=eps, **labels)
    rows = []
    for name, p in model.params_.items():
        if p.size > max_entries:
            idx = np.sort(rng.choice(p.size, size=max_entries, replace=False))
        else:
            idx = np.arange(p.size)
        numeric = numerical_gradient(lambda: model.loss(X, eps=eps, **labels), p, h, idx)
        err = relative_error(grads[name].reshape(-1)[idx], numeric)
        rows.append((name, p.shape, idx.size, err))
    return GradcheckReport(rows, threshold)

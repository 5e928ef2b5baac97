r"""Finding the code of a partly observed image by gradient ascent through
the decoder: inpainting and super-resolution with a trained model.

Only some pixels of :math:`x` are seen, marked by a mask
:math:`m_d \in \{0, 1\}`.  The encoder was trained on whole images, so
instead of asking it we search for the code that best explains the
observed pixels under the decoder and the prior (a MAP estimate):

.. math::
    J(z) = \sum_d m_d \log p(x_d \mid z) + \log p(z),
    \qquad \hat z = \arg\max_z J(z),

and decode :math:`\hat z` to fill in the unobserved pixels.  The gradient
runs backwards through the decoder by the chain rule, the same hand-written
backward passes that train the model, but stopping at :math:`z`:

.. math::
    \frac{\partial J}{\partial z}
        = J_{\mathrm{dec}}(z)^\top \Big( m \odot
          \frac{\partial \log p(x \mid o)}{\partial o} \Big)
          + \frac{\partial \log p(z)}{\partial z},
    \qquad
    \frac{\partial \log p(x_d \mid o_d)}{\partial o_d} =
    \begin{cases}
        x_d - \sigma(o_d) & \text{Bernoulli, logits } o \\
        (x_d - o_d) / \sigma^2 & \text{Gaussian, means } o
    \end{cases}

where :math:`o = \mathrm{dec}(z)` is the decoder's output,
:math:`J_{\mathrm{dec}}` its Jacobian, and the prior's gradient is
:math:`-z` for :math:`N(0, I)`.  :math:`J` is separable over
examples, so one call fits a whole batch.
"""
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..core.optimizers import Adam
from ..core.priors import StandardNormal

__all__ = ["log_joint", "log_joint_grad", "fit_latent"]


def _check_inputs(model, X, Z, mask):
    check_is_fitted(model)
    X = model.check_data(X)
    Z = model.check_codes(Z)
    if Z.shape[0] != X.shape[0]:
        raise ValueError(f"X and Z must have as many rows: {X.shape[0]} != {Z.shape[0]}")
    if mask is None:
        mask = np.ones_like(X)
    else:
        mask = np.asarray(mask)
        if mask.dtype.kind not in "biuf":
            raise TypeError(f"mask must be boolean or 0/1, got an array of dtype {mask.dtype}")
        try:
            mask = np.broadcast_to(mask, X.shape).astype(X.dtype)
        except ValueError:
            raise ValueError(f"mask of shape {mask.shape} does not match X of "
                             f"shape {X.shape}") from None
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError("mask must contain only 0/1 or False/True")
    return X, Z, mask


def _prior(model):
    """The model's prior p(z) (:mod:`npvae.core.priors`); :math:`N(0, I)` for an
    Autoencoder, which has none of its own."""
    return getattr(model, "prior_", None) or StandardNormal(model.latent_dim)


def log_joint(model, X, Z, mask=None):
    r"""The objective :math:`J(z)` per example, in nats.

    .. math::
        J(z) = \sum_d m_d \log p(x_d \mid z) + \log p(z)

    with the model's prior :math:`p(z)` (:mod:`npvae.core.priors`; :math:`N(0, I)`
    for an Autoencoder, which has none).

    Parameters
    ----------
    model : VAE or Autoencoder
        A fitted model; only its decoder and likelihood are used.
    X : array-like of shape (n_samples, n_features)
        Images; the values at unobserved pixels are ignored but must be
        finite (and in [0, 1] for the Bernoulli likelihood).
    Z : array-like of shape (n_samples, latent_dim)
    mask : array-like of bool or 0/1, broadcastable to X, optional
        1 where a pixel is observed; all pixels by default.

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    return _log_joint(model, *_check_inputs(model, X, Z, mask), _prior(model))


def _log_joint(model, X, Z, mask, prior):
    r""":math:`J(z)` per example, shape (n,), for checked inputs, by the
    forward passes of the decoder, the likelihood with each pixel as a row
    (values of shape (n, d)) and the prior, whose caches
    :func:`_log_joint_grad` uses."""
    out = model.decoder_.forward(Z)
    # A trailing axis of length 1 makes each pixel a row of the likelihood.
    log_px = model.likelihood_.forward(X[..., None], out[..., None])       # (n, d)
    return np.sum(mask * log_px, axis=1) + prior.forward(Z)


def log_joint_grad(model, X, Z, mask=None):
    r""":math:`J(z)` per example and its gradient with respect to ``Z``,
    backpropagated by hand through the decoder (see the module docstring).

    .. math::
        \frac{\partial J}{\partial z} = J_{\mathrm{dec}}(z)^\top
            \big(m \odot \partial_o \log p(x \mid o)\big) - z

    The decoder's backward pass also writes its parameter gradients into
    the model's gradient buffers, which training overwrites before use.

    Returns
    -------
    values : ndarray of shape (n_samples,)
    grad_Z : ndarray of shape (n_samples, latent_dim)
    """
    return _log_joint_grad(model, *_check_inputs(model, X, Z, mask))


def _log_joint_grad(model, X, Z, mask):
    r"""The backward passes of :func:`_log_joint` for :math:`L = J`: the
    likelihood's per-pixel gradient is the mask, the prior's 1 per row."""
    prior = _prior(model)
    values = _log_joint(model, X, Z, mask, prior)
    grad_out = model.likelihood_.backward(mask)[..., 0]                   # (n, d)
    grad_prior = prior.backward(np.ones(Z.shape[0], dtype=Z.dtype))      # (n, L)
    return values, model.decoder_.backward(grad_out) + grad_prior


def fit_latent(model, X, mask=None, z0=None, steps=300, learning_rate=0.05):
    r"""Maximise :math:`J(z)` over ``Z`` with Adam, starting from ``z0``.

    Parameters
    ----------
    model : VAE or Autoencoder
        A fitted model.
    X : array-like of shape (n_samples, n_features)
        Images, observed where ``mask`` is 1 (other values ignored).
    mask : array-like of bool or 0/1, broadcastable to X, optional
        1 where a pixel is observed; all pixels by default.
    z0 : array-like of shape (n_samples, latent_dim), optional
        Starting codes; the prior's mode, 0, by default.
    steps : int
        Adam steps.
    learning_rate : float
        Adam's step size.

    Returns
    -------
    Z : ndarray of shape (n_samples, latent_dim)
        The codes found; ``model.decode(Z)`` completes the images.
    """
    check_is_fitted(model)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if z0 is None:
        z0 = np.zeros((model.check_data(X).shape[0], model.latent_dim))
    # Checked once here, not at every step (which log_joint_grad would do).
    X, Z, mask = _check_inputs(model, X, z0, mask)
    Z = np.array(Z)  # a copy: z0 stays as it was
    optimizer = Adam(learning_rate=learning_rate)
    for _ in range(steps):
        _, grad = _log_joint_grad(model, X, Z, mask)
        # Adam descends, so it is handed the gradient of -J.
        optimizer.step({"z": Z}, {"z": -grad})
    return Z

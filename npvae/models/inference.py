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


def _log_px_per_pixel(model, X, out):
    """:math:`\\log p(x_d \\mid o_d)` for each pixel, shape of ``X``."""
    # A trailing axis of length 1 makes the likelihood's sum run over nothing.
    return model.likelihood_.log_prob(X[..., None], out[..., None])


def _log_px_grad_out(model, X, out):
    r""":math:`\partial \log p(x_d \mid o_d) / \partial o_d` for each pixel:
    the likelihood's backward pass for :math:`L = \sum \log p`, each pixel's
    term depending on its own output only."""
    model.likelihood_.forward(X, out)
    return model.likelihood_.backward(1.0)


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
    return _log_joint(model, *_check_inputs(model, X, Z, mask))[0]


def _log_joint(model, X, Z, mask):
    """:math:`J(z)` per example and the decoder's output, for checked inputs."""
    out = model.decoder_.forward(Z)
    return np.sum(mask * _log_px_per_pixel(model, X, out), axis=1) + _prior(model).log_prob(Z), out


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
    values, out = _log_joint(model, X, Z, mask)
    grad_out = mask * _log_px_grad_out(model, X, out)
    return values, model.decoder_.backward(grad_out) + _prior(model).log_prob_grad(Z)


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

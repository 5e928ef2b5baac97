"""Layers with hand-written forward and backward passes.

Every layer follows one contract, so that a student can hold each method
against its derivation:

* ``forward(x)`` computes the output and caches exactly what ``backward``
  needs (never recomputing the forward pass later);
* ``backward(grad_out)`` takes :math:`\\partial L / \\partial y` and returns
  :math:`\\partial L / \\partial x`, storing the gradient of each parameter in
  ``grads`` under the same name as in ``params``.

The reparameterization of the VAE lives here too: it is a layer with two
inputs, :math:`\\mu` and :math:`\\log\\sigma^2`, and a noise tensor
:math:`\\varepsilon` that is an argument rather than hidden state.
"""
from functools import lru_cache

import numpy as np

__all__ = ["row_sums", 
    "Dense", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus", "Identity",
    "Sequential", "GaussianEncoder", "Join", "ACTIVATIONS", "make_activation", "mlp", "sigmoid",
    "softplus", "column_sums", "reparameterize", "reparameterize_backward",
]


def sigmoid(x):
    r"""Logistic function, evaluated without overflow.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}}
              = \frac{e^{\min(x, 0)}}{1 + e^{-|x|}}

    Only exponentials :math:`\le 1` are ever formed, so no input overflows.
    (It equals the branching form ``where(x >= 0, 1, e) / (1 + e)`` bit for
    bit, and runs faster: benchmarks/README.md.)
    """
    return np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))


def softplus(x):
    r"""Softplus, evaluated without overflow.

    .. math:: \operatorname{softplus}(x) = \log(1 + e^{x})
              = \max(x, 0) + \log(1 + e^{-|x|})
    """
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class Dense:
    r"""Fully connected layer :math:`y = x W + b`.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output.
    rng : numpy.random.Generator
        Source of the initial weights.
    init : {"glorot", "he"}
        Glorot (Xavier) uniform, :math:`W_{ij} \sim U(-a, a)` with
        :math:`a = \sqrt{6 / (n_{in} + n_{out})}`, suits activations that are
        linear near zero (tanh, sigmoid, identity, softplus); He normal,
        :math:`W_{ij} \sim N(0, 2 / n_{in})`, keeps the variance through ReLUs.
    dtype : numpy dtype
        Floating type of the parameters.

    Attributes
    ----------
    params : dict
        ``{"W": (in, out) array, "b": (out,) array}``.
    grads : dict
        Gradients of the loss, same keys and shapes, filled by ``backward``.
    """

    def __init__(self, in_features, out_features, rng, init="glorot",
                 dtype=np.float64):
        if init == "glorot":
            a = np.sqrt(6.0 / (in_features + out_features))
            W = rng.uniform(-a, a, size=(in_features, out_features))
        elif init == "he":
            W = rng.normal(0.0, np.sqrt(2.0 / in_features),
                           size=(in_features, out_features))
        else:
            raise ValueError(f"init must be 'glorot' or 'he', got {init!r}")
        self.params = {"W": W.astype(dtype),
                       "b": np.zeros(out_features, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x = None

    def forward(self, x):
        r""":math:`y = x W + b`, caching :math:`x` for the weight gradient."""
        self._x = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def predict(self, x):
        r""":math:`y = x W + b` for inference: nothing is cached."""
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, grad_out, input_grad=True):
        r"""Gradients of :math:`y = xW + b` for a batch of rows.

        .. math::
            \frac{\partial L}{\partial W} = x^\top \frac{\partial L}{\partial y},
            \qquad
            \frac{\partial L}{\partial b} = \sum_n \frac{\partial L}{\partial y_n},
            \qquad
            \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} W^\top

        With ``input_grad=False`` the last product is skipped (the first
        layer of a network has no use for it) and ``None`` is returned.
        """
        np.matmul(self._x.T, grad_out, out=self.grads["W"])
        column_sums(grad_out, out=self.grads["b"])
        return grad_out @ self.params["W"].T if input_grad else None


def column_sums(g, out=None):
    r""":math:`\sum_n g_n`, the sum of a batch's rows, as the product
    :math:`\mathbf{1}^\top g`.

    The textbook form is ``g.sum(axis=0)`` (equal up to rounding, see the
    tests); BLAS's matrix-vector product is faster than NumPy's reduction
    over rows.
    """
    return np.matmul(_ones(g.shape[0], g.dtype), g, out=out)


def row_sums(a):
    r""":math:`\sum_d a_{\dots d}`, the sum of each row of ``a`` (..., d), as
    the product :math:`a \mathbf{1}`, shape (...).

    The textbook form is ``a.sum(axis=-1)`` (equal up to rounding, see the
    tests); BLAS's matrix-vector product is faster than NumPy's reduction
    along rows (three times for MNIST's rows of 784).
    """
    return a @ _ones(a.shape[-1], a.dtype)


@lru_cache(maxsize=16)
def _ones(n, dtype):
    # Batch sizes repeat every step, so one vector serves them all; a view
    # of a read-only array, which nothing can make writeable again.
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones[:]


class Identity:
    r""":math:`y = x`, :math:`\partial L/\partial x = \partial L/\partial y`."""

    params = grads = {}

    def forward(self, x):
        """Return ``x`` unchanged."""
        return x

    def backward(self, grad_out):
        """Pass the gradient through unchanged."""
        return grad_out


class ReLU:
    r"""Rectified linear unit :math:`y = \max(x, 0)`."""

    params = grads = {}

    def forward(self, x):
        r""":math:`y = \max(x, 0)`, caching the mask :math:`[x > 0]`."""
        self._mask = x > 0
        return x * self._mask

    def forward_in_place(self, x):
        r""":math:`x \leftarrow \max(x, 0)` for inference, overwriting ``x``
        (the same product with the mask as ``forward``, nothing cached)."""
        return np.multiply(x, x > 0, out=x)

    def backward(self, grad_out):
        r""":math:`\partial L/\partial x = [x > 0] \, \partial L/\partial y`
        (the subgradient 0 is taken at the kink)."""
        return grad_out * self._mask


class LeakyReLU:
    r"""Leaky ReLU :math:`y = x` for :math:`x > 0`, :math:`y = \alpha x` otherwise."""

    params = grads = {}

    def __init__(self, alpha=0.01):
        self.alpha = alpha

    def forward(self, x):
        r""":math:`y = x \, s(x)` with slope :math:`s = 1` if :math:`x > 0`
        else :math:`\alpha`; the slopes are cached."""
        self._slope = np.where(x > 0, 1.0, self.alpha).astype(x.dtype)
        return x * self._slope

    def forward_in_place(self, x):
        r""":math:`x \leftarrow x \, s(x)` for inference, overwriting ``x``."""
        x *= np.where(x > 0, 1.0, self.alpha).astype(x.dtype)
        return x

    def backward(self, grad_out):
        r""":math:`\partial L/\partial x = s(x) \, \partial L/\partial y`."""
        return grad_out * self._slope


class Tanh:
    r"""Hyperbolic tangent :math:`y = \tanh x`."""

    params = grads = {}

    def forward(self, x):
        r""":math:`y = \tanh x`, caching :math:`y`."""
        self._y = np.tanh(x)
        return self._y

    def forward_in_place(self, x):
        r""":math:`x \leftarrow \tanh x` for inference, overwriting ``x``."""
        return np.tanh(x, out=x)

    def backward(self, grad_out):
        r""":math:`\partial L/\partial x = (1 - y^2) \, \partial L/\partial y`."""
        return grad_out * (1 - self._y * self._y)


class Sigmoid:
    r"""Logistic function :math:`y = 1 / (1 + e^{-x})`."""

    params = grads = {}

    def forward(self, x):
        r""":math:`y = \sigma(x)`, caching :math:`y`."""
        self._y = sigmoid(x)
        return self._y

    def forward_in_place(self, x):
        r""":math:`x \leftarrow \sigma(x)` for inference, overwriting ``x``."""
        x[...] = sigmoid(x)
        return x

    def backward(self, grad_out):
        r""":math:`\partial L/\partial x = y (1 - y) \, \partial L/\partial y`."""
        return grad_out * self._y * (1 - self._y)


class Softplus:
    r"""Softplus :math:`y = \log(1 + e^{x})`."""

    params = grads = {}

    def forward(self, x):
        r""":math:`y = \operatorname{softplus}(x)`, caching :math:`x`."""
        self._x = x
        return softplus(x)

    def forward_in_place(self, x):
        r""":math:`x \leftarrow \operatorname{softplus}(x)` for inference, overwriting ``x``."""
        x[...] = softplus(x)
        return x

    def backward(self, grad_out):
        r""":math:`\partial L/\partial x = \sigma(x) \, \partial L/\partial y`."""
        return grad_out * sigmoid(self._x)


ACTIVATIONS = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh,
    "sigmoid": Sigmoid, "softplus": Softplus, "identity": Identity,
}

# Which initialisation keeps activations' variance steady through each kind.
_INIT_FOR = {"relu": "he", "leaky_relu": "he"}


def make_activation(name):
    """Return a new activation layer from its name in ``ACTIVATIONS``."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; "
                         f"choose one of {sorted(ACTIVATIONS)}") from None


class Sequential:
    """A chain of layers, applied in order; its parameters are named
    ``"<index>.<param>"``, e.g. ``"0.W"``.

    Parameters
    ----------
    layers : list
        Layers with ``forward``/``backward`` and ``params``/``grads`` dicts.
    """

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x):
        r""":math:`y = f_L(\dots f_2(f_1(x)))`."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def predict(self, x):
        r""":math:`y = f_L(\dots f_2(f_1(x)))` for inference (sampling,
        scoring): nothing is cached for ``backward``, and each activation
        overwrites the fresh output of the layer before it instead of
        allocating its own; ``x`` itself is never written."""
        given = x
        for layer in self.layers:
            if hasattr(layer, "forward_in_place"):
                x = layer.forward_in_place(x.copy() if x is given else x)
            else:
                x = getattr(layer, "predict", layer.forward)(x)
        return x

    def backward(self, grad_out, input_grad=True):
        r"""Chain rule backwards through the layers:
        :math:`\partial L/\partial x = J_1^\top \cdots J_L^\top \, \partial L/\partial y`.

        ``input_grad=False`` skips the gradient with respect to the chain's
        input when its first layer is ``Dense`` (returns ``None`` then).
        """
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if i == 0 and not input_grad and isinstance(layer, Dense):
                return layer.backward(grad_out, input_grad=False)
            grad_out = layer.backward(grad_out)
        return grad_out

    def named_layers(self, prefix=""):
        """Yield ``(prefix + "<index>.", layer)`` for every layer, in order."""
        for i, layer in enumerate(self.layers):
            yield f"{prefix}{i}.", layer

    def named_params(self, prefix=""):
        """Yield ``(name, param, grad)`` for every parameter, in order."""
        for layer_prefix, layer in self.named_layers(prefix):
            for key, value in layer.params.items():
                yield f"{layer_prefix}{key}", value, layer.grads[key]


def mlp(sizes, activation, rng, dtype=np.float64, final_activation=False):
    """Build ``Dense -> activation -> ... -> Dense`` through ``sizes``.

    Parameters
    ----------
    sizes : sequence of int
        Widths ``[n_in, h_1, ..., n_out]``; with only ``[n_in]`` the chain is
        empty (the identity map).
    activation : str
        Name in ``ACTIVATIONS``, placed after each ``Dense``.
    rng : numpy.random.Generator
        Source of the initial weights.
    dtype : numpy dtype
        Floating type of the parameters.
    final_activation : bool
        Whether the last ``Dense`` is followed by the activation too.
    """
    layers = []
    n_dense = len(sizes) - 1
    for i in range(n_dense):
        activated = final_activation or i < n_dense - 1
        init = _INIT_FOR.get(activation, "glorot") if activated else "glorot"
        layers.append(Dense(sizes[i], sizes[i + 1], rng, init, dtype))
        if activated:
            layers.append(make_activation(activation))
    return Sequential(layers)


class GaussianEncoder:
    r"""The encoder :math:`q(z \mid x) = N(\mu(x), \operatorname{diag}\sigma^2(x))`:
    an MLP body, then two linear heads.

    .. math::
        h = \mathrm{body}(x), \qquad \mu = h W_\mu + b_\mu, \qquad
        \log\sigma^2 = h W_{\log\sigma^2} + b_{\log\sigma^2}

    Parameters
    ----------
    sizes : sequence of int
        ``[n_in, h_1, ..., h_k]``: the body's widths, every layer followed
        by the activation (``[n_in]`` alone: no body, :math:`h = x`).
    latent_dim : int
    activation : str
    rng : numpy.random.Generator
    dtype : numpy dtype

    Attributes
    ----------
    body : Sequential
    mu, logvar : Dense
        The two heads.
    """

    def __init__(self, sizes, latent_dim, activation, rng, dtype=np.float64):
        self.body = mlp(sizes, activation, rng, dtype, final_activation=True)
        self.mu = Dense(sizes[-1], latent_dim, rng, "glorot", dtype)
        self.logvar = Dense(sizes[-1], latent_dim, rng, "glorot", dtype)

    def named_layers(self, prefix=""):
        """Yield ``(name prefix, layer)``: the body's layers under
        ``prefix``, then the heads under ``prefix + "mu."`` and
        ``prefix + "logvar."``."""
        yield from self.body.named_layers(prefix)
        yield f"{prefix}mu.", self.mu
        yield f"{prefix}logvar.", self.logvar

    def forward(self, x):
        r""":math:`(\mu, \log\sigma^2)` for a batch of rows ``x``."""
        h = self.body.forward(x)
        return self.mu.forward(h), self.logvar.forward(h)

    def predict(self, x):
        r""":math:`(\mu, \log\sigma^2)` for inference: nothing is cached, so
        threads may share the encoder."""
        h = self.body.predict(x)
        return self.mu.predict(h), self.logvar.predict(h)

    def backward(self, grad_mu, grad_logvar, input_grad=True):
        r"""Both heads read :math:`h`, so their gradients add:

        .. math::
            \frac{\partial L}{\partial h} = \frac{\partial L}{\partial \mu} W_\mu^\top
                + \frac{\partial L}{\partial \log\sigma^2} W_{\log\sigma^2}^\top

        then the body's backward pass; returns :math:`\partial L/\partial x`,
        or ``None`` with ``input_grad=False``.
        """
        need_h = input_grad or bool(self.body.layers)
        grad_h = self.mu.backward(grad_mu, input_grad=need_h)
        grad_h_logvar = self.logvar.backward(grad_logvar, input_grad=need_h)
        if not need_h:
            return None
        return self.body.backward(grad_h + grad_h_logvar, input_grad=input_grad)


class Join:
    r"""The join of a label to an input: :math:`[a, e_y]`, the columns of
    ``a`` (data or codes), then the one-hot label's columns.

    .. math::
        \mathrm{join}(a, e_y) = [a_1, \dots, a_m, e_{y,1}, \dots, e_{y,C}],
        \qquad
        \frac{\partial L}{\partial a} = \Big[\frac{\partial L}{\partial [a, e_y]}\Big]_{\dots,\,1..m}

    Its backward pass is a split that keeps the gradient of ``a``'s columns
    and drops the label's (the label is data, not a parameter).  With no
    label (``None``) the join is the identity, so an unconditional model runs
    the same code.
    """

    params = grads = {}

    def __init__(self):
        self._width = None

    def forward(self, a, onehot=None):
        r""":math:`[a, e_y]` of shape (..., m + C) for ``a`` of shape (..., m)
        and ``onehot`` of shape (n, C), broadcast over leading axes of ``a``
        (the IWAE's :math:`k` codes per row); ``a`` itself for no label."""
        if onehot is None:
            self._width = None
            return a
        self._width = a.shape[-1]
        labels = np.broadcast_to(onehot, (*a.shape[:-1], onehot.shape[-1]))
        return np.concatenate([a, labels], axis=-1)

    def backward(self, dout):
        r""":math:`\partial L/\partial a`: the first :math:`m` columns of
        ``dout`` (shape (..., m + C)), or ``dout`` itself when no label was
        joined."""
        return dout if self._width is None else dout[..., :self._width]


def reparameterize(mu, logvar, eps):
    r"""Draw :math:`z \sim N(\mu, \operatorname{diag}\sigma^2)` as a
    differentiable function of :math:`(\mu, \log\sigma^2)` given the noise.

    .. math:: z = \mu + \sigma \odot \varepsilon, \qquad
              \sigma = \exp(\tfrac12 \log\sigma^2), \qquad
              \varepsilon \sim N(0, I)

    The noise is an argument, not drawn here, so that the caller can keep it
    for :func:`reparameterize_backward` and tests can fix it.
    """
    return mu + np.exp(0.5 * logvar) * eps


def reparameterize_backward(grad_z, logvar, eps):
    r"""Gradients through :math:`z = \mu + \exp(\tfrac12\log\sigma^2)\,\varepsilon`.

    .. math::
        \frac{\partial L}{\partial \mu} = \frac{\partial L}{\partial z},
        \qquad
        \frac{\partial L}{\partial \log\sigma^2}
            = \frac{\partial L}{\partial z} \odot \tfrac12 \sigma \odot \varepsilon

    Returns
    -------
    grad_mu, grad_logvar : ndarray
    """
    return grad_z, grad_z * (0.5 * np.exp(0.5 * logvar) * eps)

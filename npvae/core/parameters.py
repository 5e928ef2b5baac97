r"""All of a model's parameters as one vector :math:`\theta`, and their
gradients as one vector :math:`\nabla_\theta L`.

Each layer keeps its ``params`` and ``grads`` dicts and computes with them
unchanged; the arrays in them are views into the two vectors.  An optimizer
can then update all :math:`P` numbers with a dozen array operations instead
of a dozen per parameter array, and one dot product tells whether every
gradient entry is finite.
"""
import math

import numpy as np

__all__ = ["ParameterVector"]


class ParameterVector:
    r"""The parameters of named layers, tied to one vector.

    Parameters
    ----------
    named_layers : iterable of (str, layer)
        Name prefixes and layers with ``params``/``grads`` dicts of one
        floating dtype; a parameter is named ``prefix + key``.  Their
        current values are copied into the vector, then each dict entry is
        replaced by a view into it.

    Attributes
    ----------
    theta, grad : ndarray of shape (P,)
        :math:`\theta` and :math:`\nabla_\theta L`, in the order of
        ``named_layers``; ``grad`` starts at 0.
    params, grads : dict of str to ndarray
        Views of ``theta`` and ``grad`` by name, shaped like the layers'
        arrays: writing into them changes the layers.
    """

    def __init__(self, named_layers):
        entries = [(prefix + key, layer, key) for prefix, layer in named_layers
                   for key in layer.params]
        dtypes = {layer.params[key].dtype for _, layer, key in entries}
        if len(dtypes) != 1:
            raise TypeError(f"parameters must share one dtype, got {sorted(map(str, dtypes))}")
        size = sum(layer.params[key].size for _, layer, key in entries)
        self.theta = np.empty(size, dtype=dtypes.pop())
        self.grad = np.zeros_like(self.theta)
        self._shapes = {name: layer.params[key].shape for name, layer, key in entries}
        self.params, self.grads = self.views(self.theta), self.views(self.grad)
        for name, layer, key in entries:
            self.params[name][...] = layer.params[key]
            layer.params[key], layer.grads[key] = self.params[name], self.grads[name]

    def views(self, vector):
        """Views of a vector shaped like ``theta`` (say an Adam moment), by name."""
        views, start = {}, 0
        for name, shape in self._shapes.items():
            size = math.prod(shape)
            views[name] = vector[start:start + size].reshape(shape)
            start += size
        return views

    def is_tied(self):
        """Whether ``params`` are still views of ``theta``: a deep copy (or
        an unpickled copy) of a model copies each view on its own."""
        return all(np.shares_memory(p, self.theta) for p in self.params.values())

    def gradient_error(self):
        """``None`` when every gradient entry is finite, else a sentence
        naming the first parameter whose gradient is not."""
        # |g|^2 is finite exactly when every entry is (squares cannot
        # cancel), barring overflow, which the exact test below rules out.
        if math.isfinite(np.dot(self.grad, self.grad)):
            return None
        return next((f"the gradient of {name!r} is not finite"
                     for name, g in self.grads.items() if not np.isfinite(g).all()), None)

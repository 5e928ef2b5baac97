"""Layers beside their central-difference checks: the Gaussian encoder's
two heads, the bias gradient's column sums, ReLU at its kink."""
import numpy as np
import pytest

from npvae import layers
from npvae.core.gradcheck import numerical_gradient, relative_error
from npvae.core.layers import GaussianEncoder, column_sums

TOL = 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_sums_equal_the_textbook_sum(dtype):
    g = np.random.default_rng(4).standard_normal((33, 5)).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(column_sums(g), g.sum(axis=0), rtol=rtol)
    out = np.empty(5, dtype)
    assert column_sums(g, out=out) is out


@pytest.mark.parametrize("sizes", [[4, 5], [4]])
def test_gaussian_encoder_backward_by_central_differences(sizes):
    rng = np.random.default_rng(5)
    encoder = GaussianEncoder(sizes, 3, "tanh", rng)
    x = rng.standard_normal((6, 4))
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))

    def loss():
        mu, logvar = encoder.forward(x)
        return float(np.sum(a * mu + b * logvar))
    loss()
    grad_x = encoder.backward(a, b)
    assert relative_error(grad_x, numerical_gradient(loss, x)) <= TOL
    for layer in [*encoder.body.layers, encoder.mu, encoder.logvar]:
        for key, p in layer.params.items():
            assert relative_error(layer.grads[key], numerical_gradient(loss, p)) <= TOL
    loss()
    assert encoder.backward(a, b, input_grad=False) is None


def test_relu_gradient_at_exactly_zero_is_zero():
    """The subgradient at the kink is 0 (as PyTorch takes it): an input of
    exactly 0 passes no gradient, and LeakyReLU passes alpha there."""
    x = np.array([[-1.0, 0.0, 2.0]])
    relu = layers.ReLU()
    np.testing.assert_array_equal(relu.forward(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.backward(np.ones_like(x)), [[0.0, 0.0, 1.0]])
    leaky = layers.LeakyReLU(alpha=0.1)
    leaky.forward(x)
    np.testing.assert_array_equal(leaky.backward(np.ones_like(x)), [[0.1, 0.1, 1.0]])

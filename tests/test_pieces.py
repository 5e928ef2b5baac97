"""The pieces one training step calls, each against its textbook form or
central differences: a fused or in-place form must agree with the form
written as the derivation reads."""
import numpy as np
import pytest

from npvae import layers, losses
from npvae.core.gradcheck import numerical_gradient, relative_error
from npvae.core.layers import GaussianEncoder, column_sums
from npvae.core.likelihoods import Bernoulli, Gaussian, make_likelihood

TOL = 1e-7


def batch(seed=0, n=7, d=6):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), 3 * rng.standard_normal((n, d))


def test_bernoulli_piece_equals_the_textbook_functions():
    x, logits = batch()
    piece = Bernoulli()
    rows = piece.forward(x, logits)
    dout = np.linspace(-1, 1, len(x))        # one weight per row
    grad = piece.backward(dout)
    assert rows.shape == (len(x),)
    np.testing.assert_allclose(rows, losses.bernoulli_log_likelihood(x, logits), rtol=1e-14)
    np.testing.assert_allclose(grad, dout[:, None] * losses.bernoulli_log_likelihood_backward(
        x, logits), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(piece.log_prob(x, logits),
                               losses.bernoulli_log_likelihood(x, logits), rtol=1e-13)
    np.testing.assert_allclose(piece.mean(logits), 1 / (1 + np.exp(-logits)), rtol=1e-14)


@pytest.mark.parametrize("obs_var", [None, 0.3])
def test_gaussian_piece_equals_the_textbook_functions(obs_var):
    x, mean = batch(1)
    piece = Gaussian(obs_var=obs_var)
    if obs_var is None:
        piece.params["obs_logvar"][...] = -0.7
    logvar = -0.7 if obs_var is None else np.log(obs_var)
    rows = piece.forward(x, mean)
    grad = piece.backward(np.full(len(x), 0.5))
    np.testing.assert_allclose(rows, losses.gaussian_log_likelihood(x, mean, logvar), rtol=1e-14)
    g_mean, g_logvar = losses.gaussian_log_likelihood_backward(x, mean, logvar)
    np.testing.assert_allclose(grad, 0.5 * g_mean, rtol=1e-14)
    if obs_var is None:
        assert piece.grads["obs_logvar"] == pytest.approx(0.5 * g_logvar, rel=1e-14)
    else:
        assert piece.params == piece.grads == {}    # nothing to learn


def test_learned_noise_gradient_by_central_differences():
    x, mean = batch(2)
    piece = Gaussian()

    def total():
        return piece.forward(x, mean).sum()
    total()
    piece.backward(np.ones(len(x)))
    analytic = piece.grads["obs_logvar"].copy()
    numeric = numerical_gradient(total, piece.params["obs_logvar"])
    assert relative_error(analytic, numeric) <= TOL


@pytest.mark.parametrize("cls", [Bernoulli, Gaussian])
def test_likelihood_backward_by_central_differences(cls):
    x, out = batch(3)
    piece = cls()
    dout = np.linspace(-1, 1, len(x))
    piece.forward(x, out)
    analytic = piece.backward(dout)
    numeric = numerical_gradient(lambda: dout @ piece.forward(x, out), out)
    assert relative_error(analytic, numeric) <= TOL


def test_make_likelihood_names_the_choices():
    assert isinstance(make_likelihood("gaussian", np.float32, 0.5), Gaussian)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'; choose one of"):
        make_likelihood("poisson", np.float64)


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

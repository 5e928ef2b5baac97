"""The diagonal Gaussian log-density piece with mean and log-variance as
inputs (npvae.core.priors.DiagonalGaussian): forward against scipy,
backward by central differences in z, mu and log sigma^2, a planted bug
caught; both equal to the textbook functions of npvae.core.losses bit for
bit, in float32 and float64 (the two-layer models' training must not move)."""
import numpy as np
import pytest
from scipy.stats import norm

from npvae.core import losses
from npvae.core.gradcheck import numerical_gradient, relative_error
from npvae.core.priors import DiagonalGaussian


def inputs(seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal((2, 3, 4)) for _ in range(4))   # z, mu, logvar, dout-ish


def errors(piece):
    z, mu, logvar, _ = inputs()
    g = np.random.default_rng(1).standard_normal((2, 3))

    def f():
        return float(np.sum(g * piece.forward(z, mu, logvar)))
    piece.forward(z, mu, logvar)
    analytic = piece.backward(g)
    return [relative_error(a, numerical_gradient(f, v)) for a, v in zip(analytic, (z, mu, logvar))]


def test_forward_is_the_log_density_per_row():
    z, mu, logvar, _ = inputs()
    expected = norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(-1)
    np.testing.assert_allclose(DiagonalGaussian().forward(z, mu, logvar), expected, rtol=1e-13)


def test_backward_in_z_mu_and_logvar():
    assert max(errors(DiagonalGaussian())) <= 1e-7


def test_the_check_catches_a_missing_minus_one_in_the_logvar_gradient(monkeypatch):
    original = DiagonalGaussian.backward

    def no_minus_one(self, dout):
        grad_z, grad_mu, grad_logvar = original(self, dout)
        return grad_z, grad_mu, grad_logvar + 0.5 * dout[..., None]    # g/2 (r^2/s^2 - 1 + 1)
    monkeypatch.setattr(DiagonalGaussian, "backward", no_minus_one)
    err_z, err_mu, err_logvar = errors(DiagonalGaussian())
    assert err_logvar > 1e-3 and max(err_z, err_mu) <= 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_the_textbook_functions_bit_for_bit(dtype):
    z, mu, logvar, _ = (a.astype(dtype) for a in inputs())
    g = np.random.default_rng(1).standard_normal((2, 3)).astype(dtype)
    piece = DiagonalGaussian()
    log_p = piece.forward(z, mu, logvar)
    grad_z, grad_mu, grad_logvar = piece.backward(g)
    grad_mean, grad_lv = losses.gaussian_log_likelihood_backward(z, mu, logvar)
    expected = (losses.gaussian_log_likelihood(z, mu, logvar), -(grad_mean * g[..., None]),
                grad_mean * g[..., None], grad_lv * g[..., None])
    for got, want in zip((log_p, grad_z, grad_mu, grad_logvar), expected):
        assert got.dtype == dtype and got.tobytes() == want.tobytes()

"""The diagonal Gaussian log-density piece with mean and log-variance as
inputs (npvae.core.priors.DiagonalGaussian): forward against scipy,
backward by central differences in z, mu and log sigma^2, a planted bug
caught."""
import numpy as np
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
    def no_minus_one(x, mean, logvar):
        r = x - mean
        return r * np.exp(-logvar), 0.5 * r * r * np.exp(-logvar)
    monkeypatch.setattr(losses, "gaussian_log_likelihood_backward", no_minus_one)
    err_z, err_mu, err_logvar = errors(DiagonalGaussian())
    assert err_logvar > 1e-3 and max(err_z, err_mu) <= 1e-7

"""The likelihoods' log-densities against references that share no code with
npvae: ``scipy.stats`` for the Gaussian and the Bernoulli, and numerical
quadrature of the normalising constant for the continuous Bernoulli (scipy
has no continuous Bernoulli).  The tests in test_pieces.py compare the fused
forms with npvae's own textbook forms; these check the textbook forms
themselves, constants included (a Gaussian that drops log 2*pi, a Bernoulli
that overflows at large logits, a continuous Bernoulli whose series or
closed form is off each fail here)."""
import numpy as np
import pytest
from scipy import integrate, special, stats

from npvae.core.losses import (bernoulli_log_likelihood, continuous_bernoulli_log_likelihood,
                               gaussian_log_likelihood)

#: Logits from 0 through both sides of the continuous Bernoulli's switch
#: between its series (|eta| < 1) and closed form, to the largest whose
#: exp(-|eta|) is still a normal float64.
LOGITS = np.array([0.0, 1e-8, -1e-8, 0.3, -0.7, 0.999, -0.999, 1.0, 1.001, -1.001,
                   2.5, -4.0, 17.0, -35.0, 50.0, -300.0, 700.0, -700.0])


def test_gaussian_log_density_matches_scipy_norm():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7))
    mean = rng.normal(size=(5, 7))
    for logvar in (0.0, -3.0, 4.5, -20.0, 20.0):      # one isotropic variance
        expected = stats.norm.logpdf(x, loc=mean, scale=np.exp(logvar / 2)).sum(axis=1)
        np.testing.assert_allclose(gaussian_log_likelihood(x, mean, logvar), expected,
                                   rtol=1e-12, atol=1e-12)
    logvar = rng.uniform(-6, 6, size=(5, 7))          # one variance per entry
    expected = stats.norm.logpdf(x, loc=mean, scale=np.exp(logvar / 2)).sum(axis=1)
    np.testing.assert_allclose(gaussian_log_likelihood(x, mean, logvar), expected,
                               rtol=1e-12, atol=1e-12)


def test_gaussian_log_density_of_one_standard_normal_value():
    # log N(0 | 0, 1) = -log(2 pi) / 2, the constant a textbook slip drops.
    got = gaussian_log_likelihood(np.zeros((1, 1)), np.zeros((1, 1)), 0.0)
    np.testing.assert_allclose(got, [-0.5 * np.log(2 * np.pi)], rtol=1e-15)


def _scipy_bernoulli(x, logits):
    """Per-row log pmf by scipy.  p = sigmoid(l) rounds to 1 for large l,
    where scipy's log(1 - p) is -inf; there the pmf of 1 - x under
    sigmoid(-l) (the same number) is taken instead."""
    flip = logits > 0
    k = np.where(flip, 1 - x, x)
    p = special.expit(np.where(flip, -logits, logits))
    return stats.bernoulli.logpmf(k, p).sum(axis=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bernoulli_log_likelihood_matches_scipy_bernoulli(dtype):
    rng = np.random.default_rng(1)
    logits = np.tile(LOGITS, (4, 1))
    x = (rng.random(logits.shape) < 0.5).astype(float)
    x[0], x[1] = 0, 1                                 # each logit with both values
    expected = _scipy_bernoulli(x, logits)
    got = bernoulli_log_likelihood(x.astype(dtype), logits.astype(dtype))
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(got, expected, rtol=rtol)
    # Row by row, on a scale of nats a float64 sees: the largest logit
    # costs -700 nats for a wrong bit, and -0.0 for a right one (not -inf).
    one = np.array([[700.0, -700.0, 700.0, -700.0]])
    np.testing.assert_allclose(bernoulli_log_likelihood(np.array([[1.0, 0, 0, 1]]), one),
                               [-1400.0], rtol=1e-15)


def _quadrature_log_norm(eta):
    r""":math:`\log \int_0^1 e^{t\eta}\,dt` by adaptive quadrature, with
    :math:`e^{\max(\eta, 0)}` taken out so that nothing overflows, and
    break points where the integrand's mass sits (within a few
    :math:`1/|\eta|` of the end it rises towards)."""
    shift = max(eta, 0.0)
    scale = abs(eta)
    near = [k / scale for k in (1, 5, 20, 60)] if scale > 1 else []
    points = [1 - d if eta > 0 else d for d in near if d < 1]
    value, error = integrate.quad(lambda t: np.exp(t * eta - shift), 0, 1,
                                  points=points or None, epsabs=0, epsrel=1e-13, limit=200)
    assert error < 1e-11 * value
    return shift + np.log(value)


def test_continuous_bernoulli_log_density_matches_quadrature():
    rng = np.random.default_rng(2)
    x = rng.random((3, LOGITS.size))
    x[0, :2] = 0.0, 1.0                               # the ends of the support
    logits = np.tile(LOGITS, (3, 1))
    # log p(x | eta) = x eta - log int_0^1 exp(t eta) dt, per entry.
    log_norm = np.array([_quadrature_log_norm(e) for e in LOGITS])
    expected = (x * logits - log_norm).sum(axis=1)
    np.testing.assert_allclose(continuous_bernoulli_log_likelihood(x, logits), expected,
                               rtol=1e-11)
    # Entry by entry, so that a small error at one logit is not lost in a sum.
    for eta, c in zip(LOGITS, log_norm):
        for value in (0.0, 0.25, 1.0):
            got = continuous_bernoulli_log_likelihood(np.array([[value]]), np.array([[eta]]))
            np.testing.assert_allclose(got, [value * eta - c], rtol=1e-11, atol=1e-12,
                                       err_msg=f"eta={eta}, x={value}")


@pytest.mark.parametrize("eta", [0.0, 0.6, -2.0, 12.0, -80.0])
def test_continuous_bernoulli_density_integrates_to_one(eta):
    def density(t):
        return np.exp(continuous_bernoulli_log_likelihood(np.array([[t]]), np.array([[eta]]))[0])
    points = [1 - 1 / abs(eta), 1 - 10 / abs(eta)] if eta > 1 else (
        [1 / abs(eta), 10 / abs(eta)] if eta < -1 else None)
    points = [p for p in points if 0 < p < 1] if points else None
    total, _ = integrate.quad(density, 0, 1, points=points, epsabs=0, epsrel=1e-12, limit=200)
    assert total == pytest.approx(1.0, rel=1e-10)

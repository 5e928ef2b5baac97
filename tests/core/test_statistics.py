"""Statistical tests of what a finite-difference check cannot see.

A gradient check compares a backward pass with its own forward pass, so a
forward pass that is consistently wrong (the variance used as the standard
deviation, a missing normalising constant) passes it.  These tests compare
the forward passes with the distributions they claim to compute.  The
noise comes from fixed seeds, and each bound is five standard errors of
the estimate, so a correct implementation passes with a wide margin and
the test cannot flake; each test also shows that its bound rejects a
planted bug.
"""
import numpy as np
import pytest
from scipy import stats

from npvae import VAE, losses
from npvae.core.layers import reparameterize

N = 200_000
MU = np.array([0.5, -1.0, 2.0, 0.0])
LOGVAR = np.array([-1.0, 0.7, 1.5, -2.0])  # none is 0, where var = std


def variance_as_std(mu, logvar, eps):
    """The planted bug: z = mu + sigma^2 eps."""
    return mu + np.exp(logvar) * eps


def moments_agree(z, mu, logvar):
    """Whether the sample mean and variance of each column of ``z`` lie
    within 5 standard errors of ``mu`` and ``exp(logvar)``."""
    var = np.exp(logvar)
    n = z.shape[0]
    mean_ok = np.abs(z.mean(axis=0) - mu) <= 5 * np.sqrt(var / n)
    var_ok = np.abs(z.var(axis=0, ddof=1) - var) <= 5 * var * np.sqrt(2 / (n - 1))
    return bool(np.all(mean_ok & var_ok))


def test_reparameterize_has_mean_mu_and_variance_exp_logvar():
    eps = np.random.default_rng(0).standard_normal((N, MU.size))
    z = reparameterize(np.tile(MU, (N, 1)), np.tile(LOGVAR, (N, 1)), eps)
    assert moments_agree(z, MU, LOGVAR)
    # The same bound rejects the variance-as-std bug, which passes the
    # gradient check (test_gradients.test_unit_check_cannot_see_...).
    assert not moments_agree(variance_as_std(MU, LOGVAR, eps), MU, LOGVAR)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vae_reparameterize_method_draws_from_q(dtype):
    vae = VAE(latent_dim=MU.size, hidden_dims=(), dtype=dtype, random_state=0).initialize(3)
    z = vae.reparameterize(np.tile(MU, (N, 1)), np.tile(LOGVAR, (N, 1)), random_state=1)
    assert z.dtype == dtype
    assert moments_agree(z.astype(np.float64), MU, LOGVAR)


def monte_carlo_kl(mu, logvar, n, seed):
    r"""Mean and standard error of :math:`\log q(z) - \log p(z)`, z ~ q."""
    eps = np.random.default_rng(seed).standard_normal((n, mu.size))
    z = mu + np.exp(0.5 * logvar) * eps
    log_ratio = (stats.norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(axis=1)
                 - stats.norm.logpdf(z).sum(axis=1))
    return log_ratio.mean(), log_ratio.std(ddof=1) / np.sqrt(n)


@pytest.mark.parametrize("mu, logvar", [
    (MU, LOGVAR),
    (np.zeros(3), np.array([-3.0, 0.0, 2.0])),
    (np.array([3.0, -0.1]), np.array([0.1, -0.5])),
])
def test_closed_form_kl_matches_monte_carlo(mu, logvar):
    estimate, se = monte_carlo_kl(mu, logvar, N, seed=2)
    closed = losses.kl_standard_normal(mu[None], logvar[None])[0]
    assert abs(closed - estimate) <= 5 * se
    # A KL that forgot the "+1" (off by d/2 nats) is far outside the bound.
    forgot_one = -0.5 * np.sum(logvar - mu ** 2 - np.exp(logvar))
    assert abs(forgot_one - estimate) > 5 * se


def test_gaussian_log_likelihood_keeps_every_constant():
    """Constants have zero gradient: only a comparison of values sees them."""
    r = np.random.default_rng(0)
    x, mean = r.standard_normal((4, 6)), r.standard_normal((4, 6))
    for logvar in [np.array(0.3), r.standard_normal(6)]:
        expected = stats.norm.logpdf(x, mean, np.exp(0.5 * logvar)).sum(axis=1)
        np.testing.assert_allclose(losses.gaussian_log_likelihood(x, mean, logvar),
                                   expected, rtol=1e-12)


def test_row_normals_are_standard_normal_independent_and_tied_to_rows():
    from npvae.core.rng import row_normals
    X = np.random.default_rng(0).random((20_000, 30))
    Z = row_normals(X, 7, random_state=3)
    assert Z.shape == (20_000, 7)
    # Each column and all together: N(0, 1) by Kolmogorov-Smirnov.
    for column in Z.T:
        assert stats.kstest(column, "norm").pvalue > 1e-4
    # Uncorrelated columns: |r| within 5 standard errors (1/sqrt(n)).
    r = np.corrcoef(Z.T) - np.eye(7)
    assert np.abs(r).max() < 5 / np.sqrt(len(Z))
    # A planted bug, the same draws for every row, fails the first test.
    assert stats.kstest(np.repeat(Z[:1, 0], len(Z)), "norm").pvalue < 1e-4
    # Tied to the rows and the seed only.
    np.testing.assert_array_equal(row_normals(X[7:9], 7, random_state=3), Z[7:9])
    assert not np.allclose(row_normals(X[:5], 7, random_state=4), Z[:5])
    np.testing.assert_array_equal(row_normals(X[:5], 7, random_state=np.random.default_rng(3)),
                                  Z[:5])

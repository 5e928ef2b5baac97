"""Tests of npvae.evaluation against exact answers of a linear Gaussian model."""
import numpy as np
import pytest

from npvae import VAE, Autoencoder
from npvae.evaluation import active_units, importance_weighted_log_likelihood, kl_per_dimension

D, L = 6, 3


def exact_posterior_vae(seed=0, s2=0.3):
    r"""A linear Gaussian VAE whose encoder is the exact posterior.

    With x = W^T z + b + noise, noise ~ N(0, s2 I) and W's rows orthogonal,
    the posterior is diagonal: q(z_j|x) = N(w_j (x - b) / (|w_j|^2 + s2),
    s2 / (|w_j|^2 + s2)).  Every importance weight then equals p(x).
    """
    rng = np.random.default_rng(seed)
    W = np.linalg.qr(rng.standard_normal((D, L)))[0].T * np.array([[2.0], [1.0], [0.5]])
    b = rng.standard_normal(D)
    model = VAE(latent_dim=L, hidden_dims=(), likelihood="gaussian", obs_var=s2,
                dtype="float64", random_state=seed).initialize(D)
    p = model.params_
    norms = np.sum(W * W, axis=1) + s2
    p["decoder.0.W"][...] = W
    p["decoder.0.b"][...] = b
    p["mu.W"][...] = W.T / norms
    p["mu.b"][...] = -b @ (W.T / norms)
    p["logvar.W"][...] = 0
    p["logvar.b"][...] = np.log(s2 / norms)
    marginal_cov = W.T @ W + s2 * np.eye(D)
    return model, b, marginal_cov


def gaussian_logpdf(X, mean, cov):
    r = X - mean
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + logdet
                   + np.sum(r * np.linalg.solve(cov, r.T).T, axis=1))


@pytest.mark.parametrize("k, batch_rows", [(1, 8192), (7, 3), (50, 16), (200, 8192)])
def test_iwae_is_exact_when_the_posterior_is_exact(k, batch_rows):
    model, b, cov = exact_posterior_vae()
    X = np.random.default_rng(1).multivariate_normal(b, cov, size=40)
    estimate = importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows)
    np.testing.assert_allclose(estimate, gaussian_logpdf(X, b, cov), rtol=0, atol=1e-10)


def test_iwae_tightens_towards_the_exact_marginal():
    model, b, cov = exact_posterior_vae()
    # Widen the posterior: no longer exact, so the bound is loose at k = 1.
    model.params_["logvar.b"][...] += 1.0
    X = np.random.default_rng(2).multivariate_normal(b, cov, size=300)
    exact = gaussian_logpdf(X, b, cov).mean()
    gaps = [exact - importance_weighted_log_likelihood(model, X, k=k).mean()
            for k in (1, 10, 100, 1000)]
    assert gaps[0] > 0.2
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] > -0.01
    assert abs(gaps[3]) < 0.01


def test_iwae_with_one_sample_is_the_elbo_in_expectation():
    model, b, cov = exact_posterior_vae()
    model.params_["logvar.b"][...] += 1.0
    X = np.random.default_rng(3).multivariate_normal(b, cov, size=2000)
    iw1 = importance_weighted_log_likelihood(model, X, k=1)
    elbo = model.score_samples(X)
    se = np.sqrt(iw1.var() / len(X) + elbo.var() / len(X))
    assert abs(iw1.mean() - elbo.mean()) < 4 * se


def test_iwae_is_repeatable_and_finite_in_float32():
    model, b, cov = exact_posterior_vae()
    X = np.random.default_rng(4).multivariate_normal(b, cov, size=10)
    a = importance_weighted_log_likelihood(model, X, k=20, random_state=5)
    assert np.array_equal(a, importance_weighted_log_likelihood(model, X, k=20, random_state=5))
    vae32 = VAE(latent_dim=2, hidden_dims=(8,), dtype="float32", random_state=0)
    X01 = np.random.default_rng(0).random((20, 5))
    vae32.fit(X01)
    assert np.isfinite(importance_weighted_log_likelihood(vae32, X01, k=30)).all()


def test_kl_per_dimension_sums_to_the_kl_term():
    model, b, cov = exact_posterior_vae()
    X = np.random.default_rng(6).multivariate_normal(b, cov, size=50)
    per_dim = kl_per_dimension(model, X)
    assert per_dim.shape == (L,)
    assert np.all(per_dim > 0)
    np.testing.assert_allclose(per_dim.sum(), model.elbo_terms(X)[1].mean(), rtol=1e-12)
    # The strongest direction of W carries the most information.
    assert per_dim[0] > per_dim[1] > per_dim[2]


def test_active_units_counts_dimensions_whose_mean_varies():
    model, b, cov = exact_posterior_vae()
    X = np.random.default_rng(7).multivariate_normal(b, cov, size=200)
    assert active_units(model, X) == L
    model.params_["mu.W"][:, 1] = 0          # unit 1 ignores x: inactive
    assert active_units(model, X) == L - 1
    assert active_units(model, X, threshold=1e9) == 0


def test_evaluation_rejects_what_it_cannot_evaluate():
    model, b, cov = exact_posterior_vae()
    X = np.zeros((3, D))
    with pytest.raises(ValueError, match="k must be"):
        importance_weighted_log_likelihood(model, X, k=0)
    with pytest.raises(ValueError, match="batch_rows"):
        importance_weighted_log_likelihood(model, X, batch_rows=0)
    with pytest.raises(ValueError, match="features"):
        importance_weighted_log_likelihood(model, np.zeros((3, D + 1)))
    ae = Autoencoder(latent_dim=2, hidden_dims=(), epochs=1).fit(np.random.default_rng(0).random((8, 4)))
    with pytest.raises(TypeError, match="VAE"):
        kl_per_dimension(ae, np.zeros((2, 4)))


@pytest.mark.parametrize("threshold", [float("nan"), -1.0, "x", None])
def test_active_units_rejects_a_meaningless_threshold(threshold):
    model, b, cov = exact_posterior_vae()
    with pytest.raises(ValueError, match="threshold must be"):
        active_units(model, np.zeros((3, D)), threshold=threshold)

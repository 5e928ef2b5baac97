"""npvae.models.evaluation on a small nonlinear VAE trained on the digits: the
numbers the demos print hang together."""
import numpy as np
import pytest

from npvae import VAE
from npvae.models.evaluation import active_units, importance_weighted_log_likelihood, kl_per_dimension


@pytest.fixture(scope="module")
def trained(digits):
    X = digits[0][:500]
    vae = VAE(latent_dim=6, hidden_dims=(32,), epochs=20, batch_size=32,
              learning_rate=3e-3, dtype="float64", random_state=0).fit(X[:400])
    return vae, X[400:]


def test_iwae_rises_above_the_elbo_with_k(trained):
    vae, X = trained
    elbo = np.mean(vae.score_samples(X))
    iw = [np.mean(importance_weighted_log_likelihood(vae, X, k=k)) for k in (1, 10, 100)]
    # k = 1 is the ELBO in expectation; more samples tighten the bound.
    assert abs(iw[0] - elbo) < 0.5
    assert iw[0] < iw[1] < iw[2]
    assert iw[2] - elbo > 0.2


def test_kl_per_dimension_splits_the_elbos_kl_term(trained):
    vae, X = trained
    _, kl = vae.elbo_terms(X)
    per_dim = kl_per_dimension(vae, X)
    assert per_dim.shape == (6,) and np.all(per_dim >= 0)
    np.testing.assert_allclose(per_dim.sum(), kl.mean(), rtol=1e-10)


def test_active_units_follow_the_threshold(trained):
    vae, X = trained
    variances = vae.transform(X).var(axis=0)
    assert active_units(vae, X) == np.sum(variances > 0.01)
    assert active_units(vae, X, threshold=0.0) == 6
    assert active_units(vae, X, threshold=variances.max()) == 0

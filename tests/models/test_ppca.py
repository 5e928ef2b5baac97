r"""A linear Gaussian VAE trained on the digits recovers probabilistic PCA
(Tipping & Bishop 1999; Lucas et al. 2019).

PCA.score is the pPCA maximum log-likelihood per example.  The VAE's ELBO
bounds its own log p(x) from below, which cannot beat that maximum, so the
gap PCA.score - ELBO is >= 0 up to Monte Carlo noise; at the optimum the
posterior is exact and the gap closes.  The importance-weighted bound sits
between the two.
"""
import numpy as np
import pytest
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from npvae import VAE
from npvae.models.evaluation import importance_weighted_log_likelihood

K = 10


@pytest.fixture(scope="module")
def fitted(digits):
    X = digits[0]
    pca = PCA(n_components=K).fit(X)
    vae = VAE(latent_dim=K, hidden_dims=(), likelihood="gaussian", obs_var=None,
              epochs=300, batch_size=64, learning_rate=0.02, lr_schedule="cosine",
              dtype="float64", random_state=0).fit(X)
    return X, pca, vae


def test_elbo_reaches_the_ppca_log_likelihood(fitted):
    X, pca, vae = fitted
    # The mean over 20 noise draws: one draw's Monte Carlo error is ~0.03 nats.
    elbo = np.mean([np.mean(np.subtract(*vae.elbo_terms(X, random_state=s)))
                    for s in range(20)])
    gap = pca.score(X) - elbo
    assert -0.02 < gap < 0.1
    iwae = np.mean(importance_weighted_log_likelihood(vae, X, k=100))
    assert elbo - 0.01 < iwae < pca.score(X) + 0.01


def test_bounds_sit_below_the_models_exact_log_likelihood(fitted):
    r"""The VAE's own model is Gaussian, p(x) = N(b, W^T W + s2 I): its exact
    log-likelihood is at most the pPCA maximum (PCA.score) and at least
    the importance-weighted bound, which improves on the ELBO as k grows."""
    X, pca, vae = fitted
    W, b = vae.params_["decoder.0.W"], vae.params_["decoder.0.b"]
    cov = W.T @ W + np.exp(vae.obs_logvar_) * np.eye(X.shape[1])
    r = X - b
    _, logdet = np.linalg.slogdet(cov)
    exact = np.mean(-0.5 * (X.shape[1] * np.log(2 * np.pi) + logdet
                            + np.sum(r * np.linalg.solve(cov, r.T).T, axis=1)))
    # PCA's eigenvalues divide by n - 1, not n: its score sits 5e-6 nats
    # below the true maximum, far inside this tolerance.
    assert exact <= pca.score(X) + 1e-4
    bounds = [np.mean(importance_weighted_log_likelihood(vae, X, k=k)) for k in (1, 10, 100)]
    assert bounds[0] < bounds[1] < bounds[2] <= exact + 0.005
    assert exact - bounds[2] < 0.02


def test_decoder_columns_span_the_pca_subspace(fitted):
    _, pca, vae = fitted
    W = vae.params_["decoder.0.W"]  # row j is decoder column j
    assert np.degrees(subspace_angles(W.T, pca.components_.T).max()) <= 5.0


def test_learned_noise_variance_is_the_mean_discarded_eigenvalue(fitted):
    _, pca, vae = fitted
    assert abs(np.exp(vae.obs_logvar_) / pca.noise_variance_ - 1) <= 0.02

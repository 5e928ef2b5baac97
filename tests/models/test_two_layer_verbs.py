"""What takes a two-layer model (docs/math.md §9c): the importance-weighted
log-likelihood through the model's own log-weights, the same on any number
of threads; transform, decode, sample, scores; active units per layer;
checkpoints that resume bit for bit."""
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from npvae import VAE
from npvae.core.rng import row_normals
from npvae.models import evaluation
from npvae.models.base import BaseAutoencoder
from npvae.models.evaluation import (active_units, active_units_per_layer,
                                     importance_weighted_log_likelihood, own_weights_block)
from npvae.models.two_layer import TwoLayerIWAE, TwoLayerVAE

D, L1, L2 = 12, 4, 2
X = (np.random.default_rng(0).random((40, D)) > 0.5).astype(np.float64)


@pytest.fixture(scope="module", params=[TwoLayerVAE, TwoLayerIWAE])
def fitted(request):
    return request.param((L1, L2), hidden_dims=((8,), (5,)), k=2, epochs=3, batch_size=10,
                         learning_rate=1e-2, random_state=0).fit(X)


def test_the_estimate_is_the_log_mean_exp_of_the_models_log_weights(fitted):
    x, k, chunk = X[:5].astype(fitted.dtype), 7, 3
    got = own_weights_block(fitted, x, k, chunk, np.random.default_rng(4))
    rng = np.random.default_rng(4)
    eps = np.concatenate([rng.standard_normal((min(chunk, k - d), 5, L1 + L2), dtype=fitted.dtype)
                          for d in range(0, k, chunk)])
    log_w = fitted.importance_log_weights(x, eps)
    np.testing.assert_allclose(got, logsumexp(log_w, axis=0) - np.log(k), rtol=1e-12)


@pytest.mark.parametrize("kind", [TwoLayerVAE, TwoLayerIWAE])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_estimate_is_the_plain_formulas_bit_for_bit(monkeypatch, kind, dtype):
    # The evaluation scores the decoder's output in place, in pieces of
    # LIKELIHOOD_BLOCK_ENTRIES; the plain formula, the training pass's
    # log-weights over whole chunks, gives the same bits in the same blocks
    # and streams: one chunk per block or several (k > batch_rows, k not a
    # multiple of the chunk), pieces of one code up to the whole chunk, on
    # one thread or two.
    model = kind((L1, L2), hidden_dims=((8,), (5,)), k=2, epochs=2, batch_size=10,
                 learning_rate=1e-2, dtype=dtype, random_state=0).fit(X)
    cases = [(7, 3), (50, 100), (300, 8192)]          # (k, batch_rows)
    fast = {}
    for entries in (1, 3 * D, evaluation.LIKELIHOOD_BLOCK_ENTRIES):
        monkeypatch.setattr(evaluation, "LIKELIHOOD_BLOCK_ENTRIES", entries)
        for (k, batch_rows), n_jobs in itertools.product(cases, (1, 2)):
            got = importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows,
                                                     random_state=5, n_jobs=n_jobs)
            np.testing.assert_array_equal(got, fast.setdefault((k, batch_rows), got))
    monkeypatch.setattr(model, "importance_log_weights", lambda x, eps: model.forward_pass(
        x, eps, train=True)["log_w"].astype(np.float64), raising=False)
    for k, batch_rows in cases:
        plain = importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows,
                                                   random_state=5)
        np.testing.assert_array_equal(fast[k, batch_rows], plain)


def test_the_same_seed_gives_the_same_estimate_on_any_number_of_threads(fitted):
    runs = [importance_weighted_log_likelihood(fitted, X, k=50, batch_rows=100, random_state=3,
                                               n_jobs=n_jobs) for n_jobs in (1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = importance_weighted_log_likelihood(fitted, X, k=50, batch_rows=100, random_state=4)
    assert not np.array_equal(runs[0], other)
    # A tighter bound than the one-code ELBO, on average.
    assert runs[0].mean() > fitted.score(X)


def test_codes_decoding_and_sampling(fitted):
    Z = fitted.transform(X)
    assert Z.shape == (40, L2) and Z.dtype == np.float32
    mu1 = fitted.q_z1_.predict(X.astype(np.float32))[0]
    np.testing.assert_allclose(Z, fitted.q_z2_.predict(mu1)[0], rtol=1e-6)
    decoded = fitted.inverse_transform(Z)
    assert decoded.shape == (40, D) and 0 <= decoded.min() and decoded.max() <= 1
    np.testing.assert_array_equal(decoded, fitted.decode(Z))
    samples = fitted.sample(6, random_state=1)
    assert samples.shape == (6, D)
    np.testing.assert_array_equal(samples, fitted.sample(6, random_state=1))
    assert not np.array_equal(samples, fitted.sample(6, random_state=2))
    with pytest.raises(ValueError, match=r"Z must have shape \(n_samples, 2\)"):
        fitted.decode(np.zeros((3, L1)))
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        fitted.sample(0)


def test_scores_are_the_one_code_elbo_row_by_row(fitted):
    log_px, kl = fitted.elbo_terms(X)
    np.testing.assert_array_equal(fitted.score_samples(X), log_px - kl)
    assert fitted.score(X) == pytest.approx(float(np.mean(log_px - kl)))
    alone = fitted.elbo_terms(X[7:8])
    np.testing.assert_allclose([alone[0][0], alone[1][0]], [log_px[7], kl[7]], rtol=1e-5)
    # With one code's noise, row_normals', the ELBO is that code's log-weight.
    assert np.all(log_px <= 0) and np.isfinite(kl).all()
    x = fitted.check_data(X)
    eps = row_normals(x, fitted.noise_dim, 0, fitted.dtype)[None]
    np.testing.assert_allclose(fitted.score_samples(X), fitted.importance_log_weights(x, eps)[0],
                               rtol=1e-5)


def test_active_units_per_layer(fitted):
    counts = active_units_per_layer(fitted, X)
    assert len(counts) == 2 and 0 <= counts[0] <= L1 and 0 <= counts[1] <= L2
    mu1, mu2 = fitted.layer_means(X)
    assert counts == [int(np.sum(mu1.var(axis=0) > 0.01)), int(np.sum(mu2.var(axis=0) > 0.01))]
    assert active_units_per_layer(fitted, X, threshold=0) == [L1, L2]
    assert active_units(fitted, X, threshold=0) == L2            # the code transform returns
    vae = VAE(3, hidden_dims=(4,), epochs=1, random_state=0).fit(X)
    assert active_units_per_layer(vae, X, threshold=0) == [3]
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        active_units_per_layer(fitted, X, threshold=-1)


def test_a_checkpoint_resumes_bit_for_bit(fitted, tmp_path):
    model = clone(fitted).set_params(epochs=4).fit(X[:20])
    loaded = BaseAutoencoder.load(model.save(tmp_path / "m"))
    assert type(loaded) is type(model) and loaded.k == 2
    # JSON stores sizes as lists; they come back as the tuples they were built with.
    assert loaded.get_params() == model.get_params()
    assert loaded.latent_dims == (L1, L2) and loaded.hidden_dims == ((8,), (5,))
    np.testing.assert_array_equal(loaded.parameters_.theta, model.parameters_.theta)
    for m in (model, loaded):
        m.fit_epoch(X[:20])
    np.testing.assert_array_equal(loaded.parameters_.theta, model.parameters_.theta)
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))


@parametrize_with_checks([cls((4, 2), hidden_dims=((8,), (4,)), likelihood="gaussian", epochs=2,
                              random_state=0) for cls in (TwoLayerVAE, TwoLayerIWAE)])
def test_sklearn_estimator_checks(estimator, check):
    # The Gaussian likelihood: scikit-learn's checks feed data outside [0, 1].
    check(estimator)

"""Tests of npvae.models.evaluation against exact answers of a linear Gaussian model."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from npvae import VAE, Autoencoder
from npvae.models.evaluation import active_units, importance_weighted_log_likelihood, kl_per_dimension

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


def reference_iwae(model, X, k, batch_rows, random_state=0):
    """The estimate as npvae computed it before its inference fast path
    (fe30f97): the training forward, the likelihood's own log_prob, and
    the log-weight's terms summed elementwise; each block of rows draws
    from the child of SeedSequence(random_state) at its position."""
    X = model.check_data(X)
    mu_all, logvar_all = model.encode(X)
    n, latent = mu_all.shape
    rows = max(1, min(n, batch_rows // min(k, batch_rows)))
    chunk = max(1, min(k, batch_rows // rows))
    result = np.empty(n)
    children = np.random.SeedSequence(random_state).spawn(-(-n // rows))
    for start in range(0, n, rows):
        rng = np.random.default_rng(children[start // rows])
        x = X[start:start + rows]
        mu, logvar = mu_all[start:start + rows], logvar_all[start:start + rows]
        b = x.shape[0]
        sigma = np.exp(0.5 * logvar)
        running_max, running_sum = np.full(b, -np.inf), np.zeros(b)
        for done in range(0, k, chunk):
            c = min(chunk, k - done)
            eps = rng.standard_normal((c, b, latent), dtype=model.dtype)
            z = mu + sigma * eps
            out = model.decoder_.forward(z.reshape(c * b, latent)).reshape(c, b, -1)
            log_w = model.likelihood_.log_prob(x, out) \
                - 0.5 * np.sum(z * z - eps * eps - logvar, axis=-1)
            new_max = np.maximum(running_max, log_w.max(axis=0))
            running_sum = (running_sum * np.exp(running_max - new_max)
                           + np.exp(log_w - new_max).sum(axis=0))
            running_max = new_max
        result[start:start + b] = running_max + np.log(running_sum) - np.log(k)
    return result


def small_model(likelihood, activation, dtype="float64"):
    rng = np.random.default_rng(8)
    X = rng.random((30, 12))
    if likelihood == "bernoulli":
        X = (X < 0.4).astype(float)
    model = VAE(latent_dim=3, hidden_dims=(16, 8), activation=activation, likelihood=likelihood,
                epochs=3, batch_size=10, dtype=dtype, random_state=0).fit(X)
    return model, X


@pytest.mark.parametrize("likelihood, activation",
                         [("bernoulli", "relu"), ("bernoulli", "tanh"), ("gaussian", "softplus"),
                          ("gaussian", "leaky_relu")])
@pytest.mark.parametrize("k, batch_rows", [(1, 1024), (7, 3), (13, 40), (50, 16), (200, 1024),
                                           (600, 8192)])
def test_iwae_equals_the_reference_computation(likelihood, activation, k, batch_rows):
    model, X = small_model(likelihood, activation)
    np.testing.assert_allclose(
        importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows, random_state=3),
        reference_iwae(model, X, k, batch_rows, random_state=3), rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k, batch_rows", [(50, 16), (600, 8192)])
def test_iwae_scores_in_pieces_in_place_and_leaves_the_data(monkeypatch, dtype, k, batch_rows):
    # The decoder's output is scored in place, a piece of rows at a time:
    # pieces of one or a few rows give the same bits as one piece per
    # chunk, equal the reference, and neither X nor the model is written.
    from npvae.models import evaluation
    model, X = small_model("bernoulli", "relu", dtype=dtype)
    X = X.astype(dtype)
    before, params = X.copy(), {name: p.copy() for name, p in model.params_.items()}
    whole = importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows)
    monkeypatch.setattr(evaluation, "LIKELIHOOD_BLOCK_ENTRIES", 2 * X.shape[1])
    pieces = importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows)
    np.testing.assert_array_equal(pieces, whole)
    np.testing.assert_allclose(whole, reference_iwae(model, X, k, batch_rows),
                               rtol=1e-5 if dtype == "float32" else 1e-13)
    np.testing.assert_array_equal(X, before)
    for name, p in model.params_.items():
        np.testing.assert_array_equal(p, params[name])


def test_iwae_in_float32_is_the_float64_estimate_to_float32_rounding():
    model, X = small_model("bernoulli", "relu", dtype="float32")
    got = importance_weighted_log_likelihood(model, X, k=100, batch_rows=64)
    np.testing.assert_allclose(got, reference_iwae(model, X, 100, 64), rtol=1e-5)


def test_iwae_does_not_depend_on_the_block_when_k_fills_it():
    # One example per block: the samples are drawn in the same order
    # whatever the block's size, so the default block may change freely.
    model, X = small_model("bernoulli", "relu")
    a = importance_weighted_log_likelihood(model, X, k=300, batch_rows=300)
    for batch_rows in (7, 64, 100):
        np.testing.assert_allclose(
            importance_weighted_log_likelihood(model, X, k=300, batch_rows=batch_rows),
            a, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("n, k, batch_rows", [(30, 7, 3), (30, 50, 16), (30, 5, 1024),
                                              (1, 1, 1), (30, 13, 40)])
def test_iwae_reports_its_progress(n, k, batch_rows, n_jobs):
    model, X = small_model("bernoulli", "relu")
    calls = []
    importance_weighted_log_likelihood(model, X[:n], k=k, batch_rows=batch_rows, n_jobs=n_jobs,
                                       callback=lambda done, total: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {n * k}
    assert done[-1] == n * k
    assert all(0 < a < b for a, b in zip(done, done[1:]))
    # One call a block: the steps are the blocks' rows, none above batch_rows.
    assert np.diff([0] + done).max() <= batch_rows


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k, batch_rows", [(600, 256), (40, 256), (3, 16)])
def test_iwae_is_bit_for_bit_the_same_on_any_number_of_cores(dtype, k, batch_rows):
    # MNIST's sizes, so that BLAS would split its products over threads if let.
    model = VAE(latent_dim=20, hidden_dims=(400,), dtype=dtype, random_state=0).initialize(784)
    X = (np.random.default_rng(0).random((13, 784)) < 0.3).astype(dtype)
    one = importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows, n_jobs=1)
    for n_jobs in (None, 2, 3, -1):
        np.testing.assert_array_equal(
            importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows,
                                               n_jobs=n_jobs), one)
    assert not np.array_equal(
        importance_weighted_log_likelihood(model, X, k=k, batch_rows=batch_rows, n_jobs=2,
                                           random_state=1), one)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_iwae_does_not_depend_on_the_callers_blas_threads(n_jobs):
    # 300 rows of float64: OpenBLAS's encoder product rounds differently on two threads.
    model = VAE(latent_dim=20, hidden_dims=(400,), dtype="float64", random_state=0).initialize(784)
    X = (np.random.default_rng(0).random((300, 784)) < 0.3).astype(float)
    with threadpool_limits(limits=1, user_api="blas"):
        one = importance_weighted_log_likelihood(model, X, k=2, n_jobs=n_jobs)
    with threadpool_limits(limits=2, user_api="blas"):
        np.testing.assert_array_equal(
            importance_weighted_log_likelihood(model, X, k=2, n_jobs=n_jobs), one)


def test_each_block_of_rows_has_its_own_noise():
    model, X = small_model("bernoulli", "relu")
    # k = 300 > batch_rows / 2: one example a block, whose samples come
    # from the child of the seed at its position, whatever the other rows are.
    a = importance_weighted_log_likelihood(model, X, k=300, batch_rows=512, n_jobs=2)
    other = X.copy()
    other[1:] = 1 - other[1:]
    b = importance_weighted_log_likelihood(model, other, k=300, batch_rows=512, n_jobs=2)
    np.testing.assert_allclose(b[0], a[0], rtol=0, atol=1e-12)
    # The same rows in another order are other blocks: other noise.
    swapped = importance_weighted_log_likelihood(model, X[[1, 0]], k=300, batch_rows=512)
    assert swapped[1] != a[0] and swapped[0] != a[1]
    # Several examples a block: the first block is the first rows' own.
    rows = 512 // 30
    first = importance_weighted_log_likelihood(model, X, k=30, batch_rows=512)[:rows]
    np.testing.assert_allclose(
        importance_weighted_log_likelihood(model, X[:rows], k=30, batch_rows=512), first,
        rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_jobs, error", [(0, ValueError), (True, TypeError),
                                           (1.0, TypeError), ("all", TypeError)])
def test_iwae_refuses_a_meaningless_n_jobs(n_jobs, error):
    model, X = small_model("bernoulli", "relu")
    with pytest.raises(error, match="n_jobs"):
        importance_weighted_log_likelihood(model, X, k=2, n_jobs=n_jobs)


def test_iwae_refuses_a_callback_that_cannot_be_called():
    model, X = small_model("bernoulli", "relu")
    with pytest.raises(TypeError, match="callback must be callable"):
        importance_weighted_log_likelihood(model, X, k=2, callback=5)


@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu", "sigmoid", "softplus",
                                        "identity"])
def test_inference_forward_is_the_training_forward_and_leaves_its_input(activation):
    model, X = small_model("gaussian", activation)
    z = np.random.default_rng(9).standard_normal((25, 3))
    z_before = z.copy()
    decoder = model.decoder_
    expected = decoder.forward(z.copy())
    caches = {i: dict(vars(layer)) for i, layer in enumerate(decoder.layers)}
    got = decoder.predict(z)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(z, z_before)
    # Nothing a backward pass would read has been replaced.
    for i, layer in enumerate(decoder.layers):
        for key, value in caches[i].items():
            assert vars(layer)[key] is value, (i, key)


def test_the_estimate_uses_a_learned_mixture_prior():
    """A one-component mixture at N(0, I) gives the standard normal's
    estimate; moved away, it gives another."""
    rng = np.random.default_rng(0)
    X = rng.random((6, 5))
    kw = dict(latent_dim=2, hidden_dims=(4,), activation="tanh", dtype="float64", random_state=0)
    plain = VAE(**kw).initialize(5)
    mixed = VAE(prior="mixture", n_components=1, **kw).initialize(5)
    for name, p in plain.params_.items():
        mixed.params_[name][...] = p
    mixed.params_["prior.means"][...] = 0.0
    mixed.params_["prior.logvars"][...] = 0.0
    a = importance_weighted_log_likelihood(plain, X, k=50, random_state=1)
    b = importance_weighted_log_likelihood(mixed, X, k=50, random_state=1)
    np.testing.assert_allclose(b, a, rtol=1e-12)
    mixed.params_["prior.means"][...] = 1.5
    assert not np.allclose(importance_weighted_log_likelihood(mixed, X, k=50, random_state=1), a)
    with pytest.raises(ValueError, match="standard normal prior only"):
        kl_per_dimension(mixed, X)


def test_a_conditional_vae_is_evaluated_given_its_labels():
    # log p(x | y): the estimate needs the labels, and bounds the ELBO from above.
    from npvae import ConditionalVAE
    X = np.random.default_rng(0).random((8, 5))
    y = np.arange(8) % 2
    model = ConditionalVAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="ConditionalVAE requires y"):
        importance_weighted_log_likelihood(model, X, k=5)
    estimate = importance_weighted_log_likelihood(model, X, k=500, y=y)
    assert estimate.shape == (8,) and np.isfinite(estimate).all()
    assert estimate.mean() > model.score(X, y)
    flipped = importance_weighted_log_likelihood(model, X, k=500, y=1 - y)
    assert not np.allclose(flipped, estimate)      # the labels reach the decoder
    assert kl_per_dimension(model, X, y).shape == (2,)
    assert 0 <= active_units(model, X, y=y) <= 2
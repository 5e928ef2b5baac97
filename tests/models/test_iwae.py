"""npvae.IWAE: its gradient by central differences (and planted bugs the
check catches), the known answers a gradient check cannot give (k = 1 is
the VAE with a sampled KL; with the exact posterior of a linear Gaussian
model the bound is log p(x); the bound rises with k), the per-row gradient
it needs from the likelihood, scikit-learn's checks, checkpoints and the
demo."""
import math
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

import npvae
import npvae.models.iwae
from npvae import IWAE, VAE, losses
from npvae.models.evaluation import importance_weighted_log_likelihood
from npvae.core.priors import SampledKL, StandardNormal
from npvae.core.gradcheck import check_model, numerical_gradient, relative_error
from npvae.core.likelihoods import Gaussian
from npvae.app.checkpoints import load_checkpoint

TOL = 1e-7
BIG = 1e-3
ROOT = Path(__file__).resolve().parents[2]


def rng(seed=0):
    return np.random.default_rng(seed)


def data(likelihood, n=6, d=5, seed=0):
    r = rng(seed)
    return r.uniform(size=(n, d)) if likelihood == "bernoulli" else r.standard_normal((n, d))


def small_iwae(k=4, **kw):
    kw = {"latent_dim": 3, "hidden_dims": (5,), "activation": "tanh", "k": k,
          "dtype": "float64", "random_state": 0, **kw}
    return IWAE(**kw)


def noise(k, n=6, latent=3, seed=1):
    return rng(seed).standard_normal((k, n, latent))


def errors(report):
    return {name: err for name, *_, err in report.rows}


@pytest.fixture(scope="module")
def digits():
    X = load_digits().data / 16
    perm = rng(0).permutation(X.shape[0])
    return X[perm[:1500]], X[perm[1500:]]


# ------------------------------------------------------------ gradients
@pytest.mark.parametrize("likelihood, obs_var", [("bernoulli", None), ("gaussian", None),
                                                 ("gaussian", 0.5)])
@pytest.mark.parametrize("hidden", [(), (5,), (6, 4)])
@pytest.mark.parametrize("k, beta", [(1, 1.0), (4, 1.0), (4, 0.3)])
def test_every_parameter_by_central_differences(likelihood, obs_var, hidden, k, beta):
    model = small_iwae(k=k, hidden_dims=hidden, likelihood=likelihood, obs_var=obs_var,
                       beta=beta)
    report = check_model(model, data(likelihood), eps=noise(k), max_entries=1000)
    assert report.max_error <= TOL, str(report)
    names = set(errors(report))
    assert {"mu.W", "logvar.b", "decoder.0.W"} <= names
    assert ("obs_logvar" in names) == (likelihood == "gaussian" and obs_var is None)


def test_the_weights_are_far_from_uniform_where_the_gradient_is_checked():
    """The planted bugs below are caught only if the normalised weights
    differ from 1/k: here the largest of an example's four is 1.3 to 9.5
    times its smallest."""
    model = small_iwae().initialize(5)
    X = data("bernoulli")
    _, weights = npvae.models.iwae.log_mean_exp(model.log_weights(X, None, noise(4), 1.0))
    assert np.allclose(weights.sum(axis=0), 1)
    assert np.all(weights.max(axis=0) > 1.2 * weights.min(axis=0))


def test_loss_and_grads_reports_the_loss_of_loss():
    model = small_iwae().initialize(5)
    X, eps = data("bernoulli"), noise(4)
    loss, _ = model.loss_and_grads(X, eps)
    assert loss == pytest.approx(model.loss(X, eps), rel=1e-13)


@pytest.mark.parametrize("bug, broken, intact", [
    # The weights not normalised: the gradient of sum w_i, not of log mean w_i.
    ("unnormalised", ["mu.b", "logvar.b", "decoder.0.W"], []),
    # Each code weighted 1/k: the VAE's gradient of mean log w_i, not the IWAE's.
    ("uniform", ["mu.b", "logvar.b", "decoder.0.W"], []),
    # The log q term dropped: only log sigma^2 feels it.
    ("no_log_q", ["logvar.b", "logvar.W"], ["mu.b", "decoder.0.W"]),
    # The prior's pull on z dropped.
    ("no_prior", ["mu.b", "logvar.b"], ["decoder.0.W"]),
])
def test_planted_bug_in_the_backward_is_caught(monkeypatch, bug, broken, intact):
    log_mean_exp, sampled_kl_backward = npvae.models.iwae.log_mean_exp, SampledKL.backward
    if bug == "unnormalised":
        def planted(log_w):
            bound, w = log_mean_exp(log_w)
            return bound, w * np.exp(log_w - log_w.max(axis=0)).sum(axis=0)
        monkeypatch.setattr(npvae.models.iwae, "log_mean_exp", planted)
    elif bug == "uniform":
        monkeypatch.setattr(npvae.models.iwae, "log_mean_exp",
                            lambda log_w: (log_mean_exp(log_w)[0],
                                           np.full_like(log_w, 1 / log_w.shape[0])))
    elif bug == "no_log_q":
        def planted(self, dout):
            grad_mu, grad_logvar, grad_z = sampled_kl_backward(self, dout)
            return grad_mu, 0 * grad_logvar, grad_z
        monkeypatch.setattr(SampledKL, "backward", planted)
    else:
        def planted(self, dout):
            grad_mu, grad_logvar, grad_z = sampled_kl_backward(self, dout)
            return grad_mu, grad_logvar, np.zeros_like(grad_z)
        monkeypatch.setattr(SampledKL, "backward", planted)
    found = errors(check_model(small_iwae(), data("bernoulli"), eps=noise(4)))
    assert all(found[name] > BIG for name in broken), found
    assert all(found[name] <= TOL for name in intact), found


def test_log_mean_exp_is_stable_and_exact():
    log_w = np.array([[-1000.0, 0.0, 800.0], [-1001.0, math.log(3), 800.0]])
    bound, weights = npvae.models.iwae.log_mean_exp(log_w)
    expected = [-1000 + math.log((1 + math.exp(-1)) / 2), math.log(2), 800.0]
    np.testing.assert_allclose(bound, expected, rtol=1e-15)
    np.testing.assert_allclose(weights[:, 1], [0.25, 0.75], rtol=1e-15)
    np.testing.assert_allclose(weights[:, 2], [0.5, 0.5], rtol=1e-15)


def test_sampled_kl_is_log_q_minus_log_p_and_averages_to_the_closed_form():
    r = rng(3)
    mu, logvar = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    eps = r.standard_normal((200_000, 4, 3))
    z = mu + np.exp(0.5 * logvar) * eps
    by_scipy = (norm.logpdf(z[:2], mu, np.exp(0.5 * logvar)) - norm.logpdf(z[:2])).sum(-1)
    sampled_kl = SampledKL(StandardNormal(3))
    np.testing.assert_allclose(sampled_kl.forward(mu, logvar, z[:2], eps[:2]),
                               by_scipy, rtol=1e-12)
    np.testing.assert_allclose(sampled_kl.forward(mu, logvar, z[:2], eps[:2]),
                               0.5 * np.sum(z[:2] ** 2 - eps[:2] ** 2 - logvar, axis=-1),
                               rtol=1e-10)
    samples = sampled_kl.forward(mu, logvar, z, eps)
    stderr = samples.std(axis=0) / math.sqrt(len(samples))
    gap = samples.mean(axis=0) - losses.kl_standard_normal(mu, logvar)
    assert np.all(np.abs(gap) < 5 * stderr), (gap, stderr)


def test_gaussian_backward_with_one_gradient_per_row():
    """The IWAE's per-row weights g_n reach the learned noise variance as
    d/d log s2 of sum_n g_n log p_n, and the means row by row."""
    r = rng(4)
    x, mean = r.standard_normal((3, 4, 5)), r.standard_normal((3, 4, 5))
    g = r.standard_normal((3, 4))
    piece = Gaussian(np.float64)
    piece.params["obs_logvar"][...] = 0.3

    def f():
        return np.sum(g * piece.log_prob(x, mean))

    assert piece.forward(x, mean).shape == (3, 4)
    grad_mean = piece.backward(g)
    assert relative_error(piece.grads["obs_logvar"],
                          numerical_gradient(f, piece.params["obs_logvar"])) <= TOL
    assert relative_error(grad_mean, numerical_gradient(f, mean)) <= TOL


# ------------------------------------------------------------ known answers
def test_k1_is_the_vae_loss_with_the_kl_of_the_same_sample():
    r = rng(5)
    X, eps = r.uniform(size=(7, 6)), r.standard_normal((1, 7, 2))
    kw = dict(latent_dim=2, hidden_dims=(8, 4), activation="tanh", dtype="float64",
              random_state=3)
    iwae, vae = IWAE(k=1, **kw).initialize(6), VAE(**kw).initialize(6)
    for name, p in iwae.params_.items():
        assert np.array_equal(p, vae.params_[name]), name    # built alike
    mu, logvar = vae.encode(X)
    z = mu + np.exp(0.5 * logvar) * eps[0]
    sampled = (norm.logpdf(z, mu, np.exp(0.5 * logvar)) - norm.logpdf(z)).sum(axis=1)
    closed = losses.kl_standard_normal(mu, logvar)
    expected = vae.loss(X, eps[0]) - np.mean(closed) + np.mean(sampled)
    assert abs(iwae.loss(X, eps) - expected) <= 1e-12 * abs(expected)
    assert abs(iwae.loss_and_grads(X, eps)[0] - expected) <= 1e-12 * abs(expected)


def linear_gaussian_iwae(k, obs_var=0.5, seed=8):
    """A linear IWAE (probabilistic PCA, docs/math.md §7) whose encoder is
    set to the exact posterior, with the log-likelihood of X in closed form:
    p(x) = N(b, W W^T + s2 I).  The decoder's rows are orthogonal, so the
    posterior covariance s2 (W^T W + s2 I)^-1 is diagonal."""
    r = rng(seed)
    n_features, latent = 5, 2
    model = IWAE(latent_dim=latent, hidden_dims=(), likelihood="gaussian", obs_var=obs_var,
                 k=k, dtype="float64", random_state=0).initialize(n_features)
    q, _ = np.linalg.qr(r.standard_normal((n_features, n_features)))
    W = q[:, :latent] * [1.5, 0.7]                  # x = W z + b + noise
    b = r.standard_normal(n_features)
    m_diag = (W * W).sum(axis=0) + obs_var          # W^T W + s2 I, diagonal
    p = model.params_
    p["decoder.0.W"][...], p["decoder.0.b"][...] = W.T, b
    p["mu.W"][...], p["mu.b"][...] = W / m_diag, -(b @ W) / m_diag
    p["logvar.W"][...], p["logvar.b"][...] = 0.0, np.log(obs_var / m_diag)
    X = r.multivariate_normal(b, W @ W.T + obs_var * np.eye(n_features), size=40)
    exact = multivariate_normal(b, W @ W.T + obs_var * np.eye(n_features)).logpdf(X)
    return model, X, exact


def test_with_the_exact_posterior_every_weight_is_the_evidence():
    """q(z|x) = p(z|x) makes w = p(x, z) / q(z | x) = p(x) for every z: L_k
    is log p(x) exactly for any k and any noise, which checks the
    log-weight with all its constants."""
    for k in (1, 7):
        model, X, exact = linear_gaussian_iwae(k)
        eps = rng(9).standard_normal((k, len(X), 2))
        assert -model.loss(X, eps) == pytest.approx(exact.mean(), rel=1e-12)
        log_w = model.log_weights(X, None, eps, 1.0)
        np.testing.assert_allclose(log_w, np.broadcast_to(exact, log_w.shape), rtol=1e-12)


def test_with_a_poorer_posterior_the_bound_rises_to_the_evidence():
    """The posterior's variances halved: the bound is below log p(x) and
    closes the gap as k grows (measured, mean +- standard error over 20
    draws: 0.19 +- 0.02, 0.044 +- 0.010, 0.0055 +- 0.0034 nats at
    k = 1, 10, 100)."""
    model, X, exact = linear_gaussian_iwae(1)
    model.params_["logvar.b"] -= math.log(2)
    r = rng(10)
    gaps = []
    for k in (1, 10, 100):
        draws = [exact.mean() + model.loss(X, r.standard_normal((k, len(X), 2)))
                 for _ in range(20)]
        gaps.append(np.mean(draws))
        assert np.mean(draws) > -3 * np.std(draws) / math.sqrt(20)   # a bound: gap >= 0
    assert gaps[0] > 0.1 and gaps[0] > 3 * gaps[1] and gaps[1] > 3 * gaps[2], gaps


def test_scores_are_the_vaes_elbo():
    iwae = IWAE(latent_dim=2, hidden_dims=(8,), dtype="float64", random_state=0)
    vae = VAE(latent_dim=2, hidden_dims=(8,), dtype="float64", random_state=1)
    X = data("bernoulli", n=20, d=6)
    iwae.initialize(6)
    vae.initialize(6)
    for name, p in vae.params_.items():
        p[...] = iwae.params_[name]
    assert np.array_equal(iwae.score_samples(X), vae.score_samples(X))
    assert iwae.score(X) == vae.score(X)


def test_heldout_bound_rises_with_k(digits):
    """E[L_k] rises with k for a fixed model.  Measured after 10 epochs on
    the 297 test digits: -31.2, -27.8, -27.7 nats at k = 1, 10, 100 through
    loss; through importance_weighted_log_likelihood averaged over four
    seeds, per-example gains of 2.95 +- 0.25 and 0.104 +- 0.015 nats (mean
    +- standard error; one seed's noise alone leaves the second gain
    between 2.3 and 5.5 standard errors)."""
    X_train, X_test = digits
    model = IWAE(latent_dim=8, hidden_dims=(64,), activation="tanh", k=5, epochs=10,
                 batch_size=64, dtype="float64", random_state=0).fit(X_train)
    r = rng(6)
    by_loss = [-model.loss(X_test, r.standard_normal((k, len(X_test), 8))) for k in (1, 10, 100)]
    assert by_loss[0] < by_loss[1] < by_loss[2], by_loss
    per_example = [np.mean([importance_weighted_log_likelihood(model, X_test, k=k, random_state=s)
                            for s in range(4)], axis=0) for k in (1, 10, 100)]
    for low, high in zip(per_example, per_example[1:]):
        gain = high - low
        assert gain.mean() > 2.5 * gain.std() / math.sqrt(len(gain)), gain.mean()


def test_training_improves_the_bound_beyond_the_elbo(digits):
    """The reported loss (-L_5) is below recon + kl (the negative ELBO) once
    trained, and falls with training."""
    X_train, X_test = digits
    model = IWAE(latent_dim=8, hidden_dims=(64,), activation="tanh", k=5, epochs=8,
                 batch_size=64, random_state=0).fit(X_train)
    first, last = model.history_[0], model.history_[-1]
    assert set(last) == {"epoch", "loss", "recon", "kl"}
    assert last["loss"] < first["loss"] - 5
    assert last["loss"] < last["recon"] + last["kl"] - 0.3
    assert np.isfinite(model.score(X_test))


def test_kl_warmup_weighs_the_log_ratio_in_training():
    """Two epochs inside a warm-up against a hand loop of loss_and_grads
    with k codes per row and the warmed beta of each batch: the same
    parameters and losses."""
    r = rng(4)
    X = r.random((50, 9))
    kw = dict(latent_dim=2, hidden_dims=(5,), k=3, batch_size=16, dtype="float64",
              random_state=7, beta=1.0, kl_warmup=3, epochs=5)
    fitted = IWAE(**kw).initialize(9)
    fitted.fit_epoch(X)
    fitted.fit_epoch(X)
    by_hand = IWAE(**kw).initialize(9)
    for epoch in range(2):
        perm, total = by_hand.rng_.permutation(50), 0.0
        for j, i in enumerate(range(0, 50, 16)):
            xb = X[perm[i:i + 16]]
            eps = by_hand.rng_.standard_normal((3, len(xb), 2))
            warmed = min(1.0, (epoch + (j + 1) / 4) / 3)
            loss, grads = by_hand.set_params(beta=warmed).loss_and_grads(xb, eps)
            by_hand.optimizer_.step(by_hand.params_, grads)
            total += loss * len(xb)
        assert fitted.history_[epoch]["loss"] == pytest.approx(total / 50, rel=1e-12)
    for name, p in fitted.params_.items():
        np.testing.assert_array_equal(p, by_hand.params_[name], err_msg=name)


# ------------------------------------------------------------ contract
@pytest.mark.parametrize("params, error, message", [
    ({"k": 0}, ValueError, r"IWAE\.k == 0, must be >= 1"),
    ({"k": 2.5}, TypeError, r"IWAE\.k must be an instance of int"),
    ({"beta": -1}, ValueError, r"IWAE\.beta == -1, must be >= 0"),
])
def test_bad_hyper_parameters_are_refused(params, error, message):
    with pytest.raises(error, match=message):
        IWAE(**params).fit(data("bernoulli"))


@pytest.mark.parametrize("shape", [(6, 3), (0, 6, 3), (2, 5, 3), (2, 6, 2)])
def test_noise_of_the_wrong_shape_is_refused(shape):
    model = small_iwae().initialize(5)
    with pytest.raises(ValueError, match=r"eps must have shape \(k, 6, 3\)"):
        model.loss(data("bernoulli"), np.zeros(shape))
    with pytest.raises(ValueError, match=r"eps must have shape \(k, 6, 3\)"):
        model.loss_and_grads(data("bernoulli"), np.zeros(shape))


def test_a_diverging_step_is_refused_and_leaves_the_parameters():
    model = small_iwae().initialize(5)
    model.params_["decoder.2.b"][0] = np.inf       # an infinite logit: log p is NaN
    before = model.parameters_.theta.copy()
    with pytest.raises(FloatingPointError, match="the loss is nan"), \
            np.errstate(invalid="ignore"):
        model.train_step(data("bernoulli"), noise(4), optimizer=model.optimizer_)
    assert np.array_equal(model.parameters_.theta, before)


@parametrize_with_checks(
    [IWAE(likelihood="gaussian", hidden_dims=(8,), k=3, epochs=2, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_checkpoint_round_trip_and_resume_bit_for_bit(tmp_path):
    X = rng(0).random((40, 12)).astype(np.float32)
    model = IWAE(latent_dim=3, hidden_dims=(8,), k=3, epochs=2, batch_size=16,
                 random_state=0, likelihood="gaussian").fit(X)
    model.save(tmp_path / "ckpt")
    for loaded in (IWAE.load(tmp_path / "ckpt"), load_checkpoint(tmp_path / "ckpt.json")):
        assert type(loaded) is IWAE and loaded.get_params() == model.get_params()
        assert loaded.k == 3 and loaded.history_ == model.history_
        for name, p in model.params_.items():
            assert np.array_equal(loaded.params_[name], p), name
        assert np.array_equal(loaded.score_samples(X), model.score_samples(X))
    with pytest.raises(TypeError, match="holds a IWAE, not a Autoencoder"):
        npvae.Autoencoder.load(tmp_path / "ckpt")
    model.fit_epoch(X)
    loaded.fit_epoch(X)
    assert loaded.history_ == model.history_
    for name, p in model.params_.items():
        assert np.array_equal(loaded.params_[name], p), name


def test_the_demo_runs_fast_and_prints_sane_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["iwae.py", "--fast", "--out", str(tmp_path)])
    monkeypatch.syspath_prepend(str(ROOT / "demos"))
    runpy.run_path(str(ROOT / "demos" / "iwae.py"), run_name="__main__")
    out = capsys.readouterr().out
    numbers = {name: float(value) for name, value in
               re.findall(r"^(\w+) = (\S+)$", out, flags=re.M)}
    for name in ("vae", "iwae"):
        assert 0 <= numbers[f"{name}_active_units"] <= 16
        # The bound with 50 samples is above the ELBO, both below 0.
        assert numbers[f"{name}_elbo_nats"] < numbers[f"{name}_iw50_nats"] < 0
    assert 1000 < (tmp_path / "iwae.png").stat().st_size < 150_000


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_a_mixture_prior_gradient_checks_through_the_iwae(likelihood):
    model = IWAE(k=4, latent_dim=3, hidden_dims=(5,), activation="tanh", likelihood=likelihood,
                 prior="mixture", n_components=3, dtype="float64", random_state=0).initialize(5)
    report = check_model(model, data(likelihood), eps=noise(4), max_entries=1000)
    assert report.max_error <= 1e-7, report.errors
    assert {"prior.logits", "prior.means", "prior.logvars"} <= set(report.errors)


def test_a_one_component_mixture_at_the_standard_normal_trains_as_the_iwae():
    kw = dict(k=3, latent_dim=3, hidden_dims=(5,), activation="tanh", dtype="float64",
              random_state=0)
    plain = IWAE(**kw).initialize(5)
    mixed = IWAE(prior="mixture", n_components=1, **kw).initialize(5)
    for name, p in plain.params_.items():
        mixed.params_[name][...] = p
    mixed.params_["prior.means"][...] = 0.0
    loss_plain, grads_plain = plain.loss_and_grads(data("bernoulli"), noise(3))
    loss_mixed, grads_mixed = mixed.loss_and_grads(data("bernoulli"), noise(3))
    assert loss_mixed == pytest.approx(loss_plain, rel=1e-12)
    for name, g in grads_plain.items():
        np.testing.assert_allclose(grads_mixed[name], g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_planted_bug_in_the_mixtures_weighted_backward_is_caught(monkeypatch):
    from npvae.core.priors import GaussianMixture
    real = GaussianMixture.backward

    def unweighted(self, dout):      # every code weighted alike
        return real(self, np.full_like(dout, dout.mean()))
    monkeypatch.setattr(GaussianMixture, "backward", unweighted)
    model = IWAE(k=4, latent_dim=3, hidden_dims=(5,), activation="tanh", prior="mixture",
                 n_components=3, dtype="float64", random_state=0).initialize(5)
    errors = check_model(model, data("bernoulli"), eps=noise(4), max_entries=1000).errors
    assert errors["prior.means"] > 1e-3, errors


def test_the_iwae_trains_the_continuous_bernoulli_too():
    """Its backward takes the per-code weights as the Bernoulli's does."""
    X = rng(0).random((6, 5))
    model = IWAE(k=3, latent_dim=2, hidden_dims=(4,), activation="tanh",
                 likelihood="continuous_bernoulli", dtype="float64", random_state=0).initialize(5)
    assert check_model(model, X, eps=rng(1).standard_normal((3, 6, 2))).max_error <= 1e-7

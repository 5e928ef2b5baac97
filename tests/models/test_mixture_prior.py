"""The learned mixture prior, VAE(prior="mixture"): central-difference checks
of every parameter, planted bugs in its backward caught, known answers
(K = 1 at N(0, I) is the standard VAE with the sampled KL; the estimate is
unbiased), sampling from the mixture, clustering of the digits, checkpoints
and scikit-learn's estimator checks; and the standard-normal step still the
closed-form step, bit for bit."""
import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from npvae import VAE, losses
from npvae.app.datasets import load_dataset
from npvae.core.gradcheck import check_model
from npvae.core.layers import reparameterize, reparameterize_backward
from npvae.core.priors import GaussianMixture, SampledKL, StandardNormal

LOG_2PI = math.log(2 * math.pi)
TOL = 1e-7


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def mixture_vae(K=4, L=3, likelihood="bernoulli", seed=0, **kw):
    """A float64 tanh VAE with a mixture prior whose weights and variances
    are not at their initial values (equal, 1), so every term of the
    gradient counts."""
    model = VAE(latent_dim=L, hidden_dims=(8,), activation="tanh", likelihood=likelihood,
                prior="mixture", n_components=K, dtype="float64", random_state=seed, **kw)
    model.initialize(64)
    r = np.random.default_rng(seed + 100)
    model.params_["prior.logits"][...] = r.standard_normal(K)
    model.params_["prior.logvars"][...] = 0.5 * r.standard_normal((K, L))
    return model


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_every_parameter_passes_central_differences(digits, likelihood):
    model = mixture_vae(likelihood=likelihood)
    report = check_model(model, digits.X_train[:16].astype(np.float64))
    names = [name for name, *_ in report.rows]
    assert {"prior.logits", "prior.means", "prior.logvars"} <= set(names)
    assert report.max_error <= TOL, str(report)


def _unnormalised_responsibilities(original):
    def forward(self, z):
        log_pz = original(self, z)
        _, d, u = self._cache
        self._cache = np.exp(self._log_joint(z)[0]), d, u   # p(z, k), not p(k | z)
        return log_pz
    return forward


def _without_log_q(original):
    def backward(self, dout):
        grad_mu, _, grad_z = original(self, dout)
        return grad_mu, np.zeros_like(grad_mu), grad_z
    return backward


def _flipped_z(original):
    def backward(self, dout):
        return -original(self, dout)
    return backward


@pytest.mark.parametrize("bug", ["unnormalised responsibilities", "no pi in the logits' gradient",
                                 "log q's -1/2 forgotten", "z-gradient's sign"])
def test_a_planted_bug_in_the_backward_is_caught(digits, monkeypatch, bug):
    if bug == "unnormalised responsibilities":
        monkeypatch.setattr(GaussianMixture, "forward",
                            _unnormalised_responsibilities(GaussianMixture.forward))
    elif bug == "no pi in the logits' gradient":
        monkeypatch.setattr(GaussianMixture, "weights",
                            property(lambda self: np.zeros_like(self.params["logits"])))
    elif bug == "log q's -1/2 forgotten":
        monkeypatch.setattr(SampledKL, "backward", _without_log_q(SampledKL.backward))
    else:
        monkeypatch.setattr(GaussianMixture, "backward", _flipped_z(GaussianMixture.backward))
    report = check_model(mixture_vae(), digits.X_train[:16].astype(np.float64))
    assert report.max_error > 1e-3, str(report)


# ---------------------------------------------------------------- known answers
def test_one_component_at_the_standard_normal_is_the_vae_with_the_sampled_kl(digits):
    X = digits.X_train[:64].astype(np.float64)
    eps = np.random.default_rng(1).standard_normal((64, 3))
    plain = VAE(latent_dim=3, hidden_dims=(8,), activation="tanh", dtype="float64",
                beta=1.5, random_state=0).initialize(64)
    mix = VAE(latent_dim=3, hidden_dims=(8,), activation="tanh", dtype="float64",
              beta=1.5, prior="mixture", n_components=1, random_state=0).initialize(64)
    # The prior is drawn after the encoder and the decoder: they are the same.
    assert all(np.array_equal(p, mix.params_[k]) for k, p in plain.params_.items())
    mix.params_["prior.means"][...] = 0.0
    mix.params_["prior.logvars"][...] = 0.0
    mix.params_["prior.logits"][...] = 3.7          # one component: pi = 1 whatever its logit

    mu, logvar = plain.encode(X)
    z = mu + np.exp(0.5 * logvar) * eps
    recon = -plain.likelihood_.log_prob(X, plain.decoder_.forward(z))
    log_q = -0.5 * np.sum(LOG_2PI + logvar + eps ** 2, axis=1)
    log_p = -0.5 * np.sum(LOG_2PI + z ** 2, axis=1)
    expected = float(np.mean(recon + 1.5 * (log_q - log_p)))
    assert abs(mix.loss(X, eps) - expected) <= 1e-12
    assert abs(mix.loss_and_grads(X, eps)[0] - expected) <= 1e-12
    np.testing.assert_allclose(mix.prior_.forward(z), log_p, rtol=0, atol=1e-12)


def test_identical_components_give_their_density_whatever_the_weights():
    prior = GaussianMixture(3, 5, np.random.default_rng(0))
    prior.params["means"][...] = 0.0
    prior.params["logits"][...] = np.arange(5.0)
    z = np.random.default_rng(1).standard_normal((50, 3))
    np.testing.assert_allclose(prior.forward(z), StandardNormal(3).forward(z), rtol=0, atol=1e-12)


def test_the_sampled_kl_is_an_unbiased_estimate_of_the_closed_form():
    # K = 1 at N(0, I): E_q[log q - log p] is the closed-form KL.
    prior = GaussianMixture(2, 1, np.random.default_rng(0))
    prior.params["means"][...] = 0.0
    mu, logvar = np.array([[0.8, -1.5]]), np.array([[0.4, -1.0]])
    eps = np.random.default_rng(2).standard_normal((200_000, 2))
    mus, logvars = np.repeat(mu, len(eps), 0), np.repeat(logvar, len(eps), 0)
    kl = SampledKL(prior).forward(mus, logvars, reparameterize(mus, logvars, eps), eps)
    exact = losses.kl_standard_normal(mu, logvar)[0]
    assert abs(kl.mean() - exact) <= 5 * kl.std() / math.sqrt(len(kl))


def test_log_p_neither_overflows_nor_underflows():
    prior = GaussianMixture(2, 3, np.random.default_rng(0))
    far = np.array([[300.0, -300.0]])        # every component's density underflows to 0
    assert np.all(np.exp(prior._log_joint(far)[0]) == 0)
    log_p = prior.forward(far)[0]
    assert math.isfinite(log_p) and log_p < -1e4
    r = prior.responsibilities(far)
    assert np.isfinite(r).all() and abs(r.sum() - 1) < 1e-12


# ---------------------------------------------------------------- sampling
def test_sample_draws_components_by_their_weights_and_each_from_its_gaussian():
    prior = GaussianMixture(2, 3, np.random.default_rng(0))
    pi = np.array([0.2, 0.3, 0.5])
    prior.params["logits"][...] = np.log(pi) + 4.0      # a shift does not change pi
    prior.params["means"][...] = [[-20.0, 0.0], [0.0, 20.0], [20.0, 0.0]]
    prior.params["logvars"][...] = [[0.0, 0.0], [math.log(0.25), 0.0], [0.0, math.log(4.0)]]
    np.testing.assert_allclose(prior.weights, pi)
    n = 20_000
    z = prior.sample(n, np.random.default_rng(5))
    # Components 20 apart, standard deviations <= 2: nearest mean is the component.
    k = np.argmin(((z[:, None, :] - prior.params["means"]) ** 2).sum(-1), axis=1)
    freq = np.bincount(k, minlength=3) / n
    assert np.all(np.abs(freq - pi) <= 5 * np.sqrt(pi * (1 - pi) / n)), freq
    for j in range(3):
        zj = z[k == j]
        sd = np.exp(0.5 * prior.params["logvars"][j])
        assert np.all(np.abs(zj.mean(0) - prior.params["means"][j]) <= 5 * sd / math.sqrt(len(zj)))
        assert np.all(np.abs(zj.std(0) - sd) <= 5 * sd / math.sqrt(2 * len(zj)))


def test_vae_sample_decodes_draws_from_the_mixture(digits):
    model = VAE(latent_dim=3, hidden_dims=(8,), prior="mixture", n_components=4, epochs=1,
                random_state=0).fit(digits.X_train[:100])
    z = model.prior_.sample(7, np.random.default_rng(3))
    np.testing.assert_array_equal(model.sample(7, random_state=3), model.decode(z))
    assert not np.array_equal(z, StandardNormal(3, "float32").sample(7, np.random.default_rng(3)))


# ---------------------------------------------------------------- on the digits
def test_components_assigned_by_responsibility_match_the_classes_better_than_chance(digits):
    model = VAE(latent_dim=4, hidden_dims=(64,), prior="mixture", n_components=10, epochs=10,
                batch_size=64, learning_rate=3e-3, random_state=0).fit(digits.X_train)
    components = model.prior_.responsibilities(model.transform(digits.X_test)).argmax(axis=1)
    assert adjusted_rand_score(digits.y_test, components) > 0.1
    assert math.isfinite(model.score(digits.X_test))


# ---------------------------------------------------------------- the standard normal
def test_the_standard_normal_step_is_the_closed_form_step_bit_for_bit(digits):
    model = VAE(latent_dim=3, hidden_dims=(16,), likelihood="gaussian", random_state=0)
    model.initialize(64)
    x = digits.X_train[:32]
    eps = np.random.default_rng(0).standard_normal((32, 3), dtype=np.float32)
    loss = model.train_step(x, eps, beta=0.7)["loss"]
    grads = {k: g.copy() for k, g in model.parameters_.grads.items()}
    # The step as it was written before the priors, with losses' KL:
    n = len(x)
    mu, logvar = model.encoder_.forward(x)
    z = reparameterize(mu, logvar, eps)
    log_px = model.likelihood_.forward(x, model.decoder_.forward(z))
    kl = float(losses.kl_standard_normal(mu, logvar).sum()) / n
    grad_mu, grad_logvar = reparameterize_backward(
        model.decoder_.backward(model.likelihood_.backward(np.full(n, -1.0 / n, np.float32))),
        logvar, eps)
    kl_mu, kl_logvar = losses.kl_standard_normal_backward(mu, logvar)
    model.encoder_.backward(grad_mu + (0.7 / n) * kl_mu, grad_logvar + (0.7 / n) * kl_logvar,
                            input_grad=False)
    assert loss == -float(log_px.sum()) / n + 0.7 * kl
    assert all(np.array_equal(grads[k], g) for k, g in model.parameters_.grads.items())
    assert not any(k.startswith("prior.") for k in model.params_)


def test_the_default_prior_draws_nothing_at_initialisation():
    a = VAE(latent_dim=3, hidden_dims=(8,), random_state=0).initialize(10)
    b = VAE(latent_dim=3, hidden_dims=(8,), prior="mixture", random_state=0).initialize(10)
    assert a.rng_.bit_generator.state != b.rng_.bit_generator.state
    c = VAE(latent_dim=3, hidden_dims=(8,), n_components=3, random_state=0).initialize(10)
    assert a.rng_.bit_generator.state == c.rng_.bit_generator.state


# ---------------------------------------------------------------- estimator contract
def test_checkpoint_round_trip_and_resume_are_bit_exact(digits, tmp_path):
    X = digits.X_train[:200]
    model = VAE(latent_dim=3, hidden_dims=(16,), prior="mixture", n_components=5, epochs=2,
                batch_size=32, random_state=0).fit(X)
    loaded = VAE.load(model.save(tmp_path / "ckpt"))
    assert loaded.get_params() == model.get_params()
    assert {"prior.logits", "prior.means", "prior.logvars"} <= set(loaded.params_)
    assert all(np.array_equal(p, loaded.params_[k]) for k, p in model.params_.items())
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    model.fit_epoch(X)
    loaded.fit_epoch(X)
    assert all(np.array_equal(p, loaded.params_[k]) for k, p in model.params_.items())
    # The prior computes with the restored, live arrays.
    assert np.shares_memory(loaded.prior_.params["means"], loaded.parameters_.theta)


@pytest.mark.parametrize("params, error, message", [
    ({"prior": "gmm"}, ValueError, r"VAE\.prior must be one of .*got 'gmm'"),
    ({"prior": "mixture", "n_components": 0}, ValueError, r"VAE\.n_components == 0, must be >= 1"),
    ({"prior": "mixture", "n_components": 2.5}, TypeError, r"VAE\.n_components must be an instance of int"),
])
def test_bad_prior_settings_are_refused_by_name(digits, params, error, message):
    with pytest.raises(error, match=message):
        VAE(**params).fit(digits.X_train[:20])


@parametrize_with_checks([VAE(likelihood="gaussian", prior="mixture", n_components=3,
                              hidden_dims=(8,), epochs=2, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)

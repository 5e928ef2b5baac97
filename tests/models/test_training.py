"""Training on scikit-learn's bundled digits_split: learning, determinism,
callbacks and divergence."""
import copy
import math

import numpy as np
import pytest

from npvae import VAE, Autoencoder, losses
from npvae.core.optimizers import learning_rate_at


def vae(**kw):
    kw = {"latent_dim": 8, "hidden_dims": (128,), "batch_size": 64, "epochs": 30,
          "random_state": 0, **kw}
    return VAE(**kw)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_heldout_elbo_rises(digits_split, dtype):
    """Measured: about -68 nats untrained, -25 after 30 epochs, either dtype."""
    X_train, X_test = digits_split
    model = vae(dtype=dtype).initialize(X_train.shape[1])
    before = model.score(X_test)
    assert model.fit(X_train) is model
    after = model.score(X_test)
    assert after - before > 30
    assert after > -30
    assert all(p.dtype == dtype for p in model.params_.values())
    assert model.n_iter_ == 30 and [h["epoch"] for h in model.history_] == list(range(1, 31))
    losses_ = [h["loss"] for h in model.history_]
    assert losses_[-1] < losses_[0] - 10
    for h in model.history_:  # beta = 1: the loss is recon + kl
        assert h["loss"] == pytest.approx(h["recon"] + h["kl"], rel=1e-9)


@pytest.mark.parametrize("obs_var", [None, 0.1])
def test_gaussian_vae_trains(digits_split, obs_var):
    """Measured: -154 nats untrained (variance 1) -> -2.7 with the variance
    learned (from the data's 0.073 to 0.070), -909 -> -9 with it fixed at 0.1."""
    X_train, X_test = digits_split
    model = vae(likelihood="gaussian", obs_var=obs_var).initialize(64)
    before = model.score(X_test)
    after = model.fit(X_train).score(X_test)
    assert after - before > 100
    if obs_var is None:      # learned: from the data's variance, a little below it
        assert model.obs_logvar_ < math.log(X_train.var(axis=0).mean()) - 0.01
    else:
        assert model.obs_logvar_ == math.log(obs_var)


def test_learned_noise_variance_starts_at_the_data_variance(digits_split):
    X_train, _ = digits_split
    variance = X_train.var(axis=0).mean()
    for model in (vae(likelihood="gaussian", epochs=0).fit(X_train),
                  vae(likelihood="gaussian").initialize(64, X_train)):
        assert model.obs_logvar_ == pytest.approx(math.log(variance), rel=1e-6)
    assert vae(likelihood="gaussian").initialize(64).obs_logvar_ == 0.0   # no data: 1
    fixed = vae(likelihood="gaussian", obs_var=0.5).initialize(64, X_train)
    assert fixed.obs_logvar_ == math.log(0.5)
    constant = vae(likelihood="gaussian").initialize(64, np.full((5, 64), 0.3))
    assert constant.obs_logvar_ == 0.0
    # Bad X is refused before the model changes.
    fitted = vae(likelihood="gaussian", epochs=1).fit(X_train)
    before = copy.deepcopy(fitted.params_)
    with pytest.raises(ValueError, match="X has 63 features, but n_features is 64"):
        fitted.initialize(64, X_train[:, :63])
    with pytest.raises(ValueError, match="X has 64 features, but n_features is 7"):
        fitted.initialize(7, X_train)
    with pytest.raises(ValueError, match="NaN"):
        fitted.initialize(64, np.full((3, 64), np.nan))
    assert fitted.n_features_in_ == 64 and fitted.n_iter_ == 1
    assert all(np.array_equal(p, before[k]) for k, p in fitted.params_.items())
    # Tiny data: a start the dtype can hold, and training that runs.
    with np.errstate(over="ignore"):    # |g|^2 overflows; the exact test takes over
        tiny = vae(likelihood="gaussian", epochs=1, hidden_dims=(8,)).fit(X_train * 1e-18)
    assert tiny.obs_logvar_ >= -0.5 * math.log(float(np.finfo(np.float32).max)) - 1e-3
    assert np.isfinite(tiny.score(X_train * 1e-18))


def test_gaussian_vae_beats_a_model_that_explains_nothing(digits_split):
    """The isotropic Gaussian around the data's mean, at the data's mean
    variance, has a log-likelihood of -7.1 nats a training digit; a Gaussian
    VAE must score better on the test digits_split after 30 epochs (measured -2.7;
    with its variance started at 1 it was still at 0.49 after 30 epochs, and
    scored -41.7)."""
    X_train, X_test = digits_split
    v = X_train.var(axis=0).mean()
    explains_nothing = -0.5 * X_train.shape[1] * (np.log(2 * np.pi * v) + 1)
    assert vae(likelihood="gaussian").fit(X_train).score(X_test) > explains_nothing


@pytest.mark.parametrize("likelihood, obs_var", [("bernoulli", None), ("gaussian", None),
                                                 ("gaussian", 0.5)])
@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_float32_gradients_stay_float32(cls, likelihood, obs_var, digits_split):
    model = cls(latent_dim=3, hidden_dims=(4,), likelihood=likelihood, obs_var=obs_var,
                dtype="float32", random_state=0).initialize(64)
    loss, grads = model.loss_and_grads(digits_split[0][:8])
    assert isinstance(loss, float)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    model.fit_epoch(digits_split[0][:8])
    assert {p.dtype for p in model.params_.values()} == {np.dtype(np.float32)}


def test_autoencoder_reconstruction_improves(digits_split):
    X_train, X_test = digits_split
    model = Autoencoder(latent_dim=8, hidden_dims=(128,), batch_size=64, epochs=10,
                        random_state=0).initialize(64)
    before = model.score(X_test)
    after = model.fit(X_train).score(X_test)
    assert after - before > 10
    assert set(model.history_[0]) == {"epoch", "loss", "recon"}


def params_of(model):
    return {k: v.copy() for k, v in model.params_.items()}


def test_same_seed_is_bitwise_identical_and_different_seed_differs(digits_split):
    X = digits_split[0][:300]
    a, b, c = (vae(epochs=3, random_state=s).fit(X) for s in (7, 7, 8))
    assert a.params_.keys() == b.params_.keys()
    assert all(np.array_equal(a.params_[k], b.params_[k]) for k in a.params_)
    assert a.history_ == b.history_
    assert not any(np.array_equal(a.params_[k], c.params_[k]) for k in a.params_)
    assert a.history_ != c.history_
    np.testing.assert_array_equal(a.sample(4, random_state=1), b.sample(4, random_state=1))


def test_fit_epoch_continues_fit_bit_for_bit(digits_split):
    X = digits_split[0][:300]
    whole = vae(epochs=3, random_state=5).fit(X)
    steps = vae(epochs=3, random_state=5).initialize(X.shape[1])
    for _ in range(3):
        steps.fit_epoch(X)
    assert all(np.array_equal(whole.params_[k], steps.params_[k]) for k in whole.params_)
    assert whole.history_ == steps.history_ and steps.n_iter_ == 3


def test_refit_starts_afresh(digits_split):
    X = digits_split[0][:300]
    model = vae(epochs=2, random_state=5).fit(X)
    first = params_of(model)
    model.fit(X)
    assert all(np.array_equal(first[k], model.params_[k]) for k in first)
    assert model.n_iter_ == 2 and len(model.history_) == 2


def test_fit_epoch_callback_counts(digits_split):
    X = digits_split[0][:100]
    model = vae(batch_size=32).initialize(64)
    calls = []
    record = model.fit_epoch(X, callback=lambda *args: calls.append(args))
    assert [(i, n) for i, n, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert calls[-1][2] == pytest.approx(record["loss"], rel=1e-12)
    assert set(record) == {"loss", "recon", "kl"}
    assert model.history_ == [{"epoch": 1, **record}]


def test_batch_larger_than_data(digits_split):
    X = digits_split[0][:10]
    calls = []
    vae(batch_size=64).initialize(64).fit_epoch(X, callback=lambda *a: calls.append(a))
    assert [(i, n) for i, n, _ in calls] == [(1, 1)]


def test_cosine_schedule_is_applied(digits_split):
    X = digits_split[0][:128]
    model = vae(batch_size=32, epochs=2, lr_schedule="cosine", learning_rate=0.01).fit(X)
    # The last step of the last epoch ran at progress (1 + 3/4) / 2.
    assert model.optimizer_.learning_rate == pytest.approx(
        learning_rate_at(0.01, "cosine", (1 + 3 / 4) / 2))


def test_kl_warmup_weights_the_kl_below_beta(digits_split):
    X = digits_split[0][:256]
    h = vae(kl_warmup=4, epochs=1).fit(X).history_[0]
    assert h["loss"] < h["recon"] + h["kl"] - 0.1 * h["kl"]


def test_kl_warmup_rises_linearly_to_beta_over_its_epochs(digits_split, monkeypatch):
    model = vae(beta=2.0, kl_warmup=4, epochs=2, batch_size=64)
    assert [model.beta_at(p) for p in (0.0, 1.0, 3.0, 4.0, 9.0)] == [0.0, 0.5, 1.5, 2.0, 2.0]
    seen = []
    real_beta_at = VAE.beta_at
    monkeypatch.setattr(VAE, "beta_at",
                        lambda self, progress: seen.append(progress) or
                        real_beta_at(self, progress))
    model.fit(digits_split[0][:256])  # 4 batches an epoch: progress in quarter epochs
    assert seen == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert vae(beta=2.0).beta_at(0.0) == 2.0  # no warm-up: beta from the start


def all_finite(model):
    return all(np.isfinite(p).all() for p in model.params_.values())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_raises_and_leaves_finite_params(digits_split, dtype):
    model = vae(learning_rate=1e6, epochs=3, dtype=dtype)
    with pytest.raises(FloatingPointError,
                       match="training diverged at epoch 1.*smaller learning_rate") as err:
        model.fit(digits_split[0])
    assert all_finite(model)
    # float32's narrower range is the other way out (a two-layer relu IWAE overflowed it).
    assert str(err.value).endswith(", or dtype float64." if dtype == "float32" else "learning_rate.")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_infinite_gradient_with_finite_loss_is_not_applied(digits_split, monkeypatch):
    """An inf in one gradient, with the loss still finite: Adam's step
    inf/inf would have made NaN parameters (the bug this test caught)."""
    original = losses.kl_standard_normal_backward

    def planted(mu, logvar):
        grad_mu, grad_logvar = original(mu, logvar)
        grad_logvar = grad_logvar.copy()
        grad_logvar[0, 0] = np.inf
        return grad_mu, grad_logvar
    monkeypatch.setattr(losses, "kl_standard_normal_backward", planted)
    model = vae().initialize(64)
    before = params_of(model)
    with pytest.raises(FloatingPointError, match="first training step is not finite: the gradient of '.*' is not finite"):
        model.fit_epoch(digits_split[0])
    assert all(np.array_equal(before[k], model.params_[k]) for k in before)
    assert model.optimizer_.t == 0 and model.n_iter_ == 0 and model.history_ == []


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("planted_value, raises", [(np.nan, True), (-np.inf, True), (1e30, False)])
def test_finiteness_check_is_exact_despite_the_fast_norm(digits_split, monkeypatch, planted_value, raises):
    """The step's check is |g|^2 over the parameter vector: NaN and -inf
    must still stop the step, and a finite gradient whose square overflows
    float32 (1e30^2) must not."""
    original = losses.kl_standard_normal_backward

    def planted(mu, logvar):
        grad_mu, grad_logvar = original(mu, logvar)
        grad_mu = grad_mu.copy()
        grad_mu[0, 0] = planted_value
        return grad_mu, grad_logvar
    monkeypatch.setattr(losses, "kl_standard_normal_backward", planted)
    model = vae(dtype="float32").initialize(64)
    if raises:
        with pytest.raises(FloatingPointError, match="the gradient of '.*' is not finite"):
            model.fit_epoch(digits_split[0][:64])
        assert model.optimizer_.t == 0
    else:
        model.fit_epoch(digits_split[0][:64])
        assert model.optimizer_.t > 0 and all_finite(model)


@pytest.mark.parametrize("cls, kw", [(VAE, {"likelihood": "gaussian"}), (Autoencoder, {})])
def test_a_deep_copy_trains_on_exactly_like_the_original(digits_split, cls, kw):
    """Parameters are views of one vector; a copy must be tied together
    again, or Adam would update a vector the layers no longer read."""
    X = digits_split[0][:200]
    model = cls(latent_dim=2, hidden_dims=(8,), epochs=1, random_state=0, **kw).fit(X)
    twin = copy.deepcopy(model)
    model.fit_epoch(X)
    twin.fit_epoch(X)
    for name, p in model.params_.items():
        np.testing.assert_array_equal(twin.params_[name], p, err_msg=name)
    np.testing.assert_array_equal(twin.transform(X), model.transform(X))
    assert np.shares_memory(twin.params_[name], twin.parameters_.theta)


def test_a_shallow_copy_leaves_the_original_training(digits_split):
    """copy.copy shares the layers: re-tying them to a new vector would
    leave the original stepping a vector its layers no longer read."""
    X = digits_split[0][:200]
    model = VAE(latent_dim=2, hidden_dims=(8,), epochs=1, random_state=0).fit(X)
    reference = copy.deepcopy(model)
    copy.copy(model)
    before = model.transform(X[:5])
    model.fit_epoch(X)
    reference.fit_epoch(X)
    assert not np.array_equal(model.transform(X[:5]), before)
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))


def test_epochs_zero_only_initializes(digits_split):
    model = vae(epochs=0).fit(digits_split[0])
    assert model.n_iter_ == 0 and model.history_ == []
    assert math.isfinite(model.score(digits_split[1]))


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_evaluation_in_row_blocks_equals_one_block(digits_split, cls, monkeypatch):
    """Large inputs are evaluated in blocks of rows; the noise of the ELBO
    is drawn block after block from one generator, so the blocks must not
    change any result (beyond float32 rounding: BLAS kernels differ with
    the number of rows)."""
    import npvae.models.base
    model = cls(latent_dim=4, hidden_dims=(16,), epochs=1, random_state=0).fit(digits_split[0][:200])
    X = digits_split[1][:50]
    whole = {"transform": model.transform(X), "score_samples": model.score_samples(X),
             "decode": model.decode(model.transform(X))}
    monkeypatch.setattr(npvae.models.base, "EVAL_BLOCK_ROWS", 7)
    for name, value in whole.items():
        again = getattr(model, name)(model.transform(X) if name == "decode" else X)
        np.testing.assert_allclose(again, value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_sklearn_clone_and_pipeline(digits_split):
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    model = vae(epochs=2, latent_dim=3).fit(digits_split[0][:200])
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "params_")
    pipe = make_pipeline(MinMaxScaler(clip=True), vae(epochs=2, latent_dim=3))
    pipe.fit(digits_split[0][:200])
    assert pipe.transform(digits_split[1]).shape == (digits_split[1].shape[0], 3)
    assert np.isfinite(pipe.score(digits_split[1]))


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_adam_hyper_parameters_reach_the_optimizer(digits_split, cls):
    X = digits_split[0][:200]
    model = cls(latent_dim=2, hidden_dims=(8,), epochs=1, beta_1=0.5, beta_2=0.99, epsilon=1e-4,
                random_state=0).fit(X)
    opt = model.optimizer_
    assert (opt.beta1, opt.beta2, opt.eps) == (0.5, 0.99, 1e-4)
    default = cls(latent_dim=2, hidden_dims=(8,), epochs=1, random_state=0).fit(X)
    assert not np.array_equal(default.params_["decoder.0.W"], model.params_["decoder.0.W"])


@pytest.mark.parametrize("likelihood, expected", [
    ("bernoulli", lambda m: np.clip(m, 0.001, 0.999)), ("gaussian", lambda m: m)])
def test_output_bias_from_the_data_starts_the_decoder_at_the_mean_image(digits_split, likelihood,
                                                                         expected):
    X = digits_split[0]
    kw = dict(latent_dim=2, hidden_dims=(8,), activation="tanh", epochs=0, likelihood=likelihood,
              dtype="float64", random_state=0)
    model = VAE(output_bias_init="data", **kw).fit(X)
    # tanh(0) = 0: the code 0 decodes to the output bias alone.
    np.testing.assert_allclose(model.decode(np.zeros((1, 2)))[0], expected(X.mean(axis=0)),
                               rtol=1e-12, atol=1e-15)
    plain = VAE(**kw).fit(X)
    assert not plain.params_["decoder.2.b"].any()
    for name, p in plain.params_.items():       # only the output bias differs
        if name != "decoder.2.b":
            np.testing.assert_array_equal(p, model.params_[name])

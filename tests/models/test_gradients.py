"""Float64 finite-difference checks of every hand-written backward pass.

Each unit check builds a scalar ``f = sum(R * y)`` with a fixed random
weight ``R``, so that ``dL/dy = R`` and the analytic gradient is simply the
unit's backward applied to ``R``; the numerical one comes from central
differences (:mod:`npvae.core.gradcheck`).  Smooth functions must agree to a
relative error of 1e-7.  Kinked activations (ReLU, LeakyReLU) are checked
away from their kink: as a unit, at inputs with ``|x| >= 0.1``, far beyond
the step ``H``; inside a model, by recording the side of the kink of every
unit at every finite-difference evaluation and asserting that none crossed
(:func:`check_away_from_kinks`), rather than assuming it.
"""
import numpy as np
import pytest

from npvae import VAE, Autoencoder, layers, losses
from npvae.core.gradcheck import check_gradient, check_model, numerical_gradient, relative_error
from npvae.core.layers import reparameterize, reparameterize_backward

TOL = 1e-7
H = 3e-5  # the default step of npvae.core.gradcheck
SMOOTH = ["tanh", "softplus", "sigmoid", "identity"]


def rng(seed=0):
    return np.random.default_rng(seed)


def away_from_zero(r, shape, low=0.1, high=2.0):
    """Entries of random sign with ``low <= |x| <= high``: far from a kink at 0."""
    return r.choice([-1.0, 1.0], size=shape) * r.uniform(low, high, size=shape)


def layer_errors(layer, x, seed=1):
    """Relative errors of a layer's backward: input and each parameter."""
    R = rng(seed).standard_normal(layer.forward(x).shape)

    def f():
        return np.sum(R * layer.forward(x))

    layer.forward(x)
    grad_x = layer.backward(R)
    errors = {"input": relative_error(grad_x, numerical_gradient(f, x))}
    for name, p in layer.params.items():
        layer.forward(x)
        layer.backward(R)
        errors[name] = relative_error(layer.grads[name].copy(), numerical_gradient(f, p))
    return errors


# ---------------------------------------------------------------- layers
@pytest.mark.parametrize("init", ["glorot", "he"])
def test_dense_weights_bias_and_input(init):
    r = rng(0)
    dense = layers.Dense(4, 3, r, init)
    dense.params["b"][...] = r.standard_normal(3)
    errors = layer_errors(dense, r.standard_normal((5, 4)))
    assert set(errors) == {"input", "W", "b"}
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("name", SMOOTH)
def test_smooth_activations(name):
    x = 2 * rng(0).standard_normal((5, 4))
    assert layer_errors(layers.make_activation(name), x)["input"] <= TOL


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_kinked_activations_away_from_the_kink(name):
    x = away_from_zero(rng(0), (5, 4))
    assert np.abs(x).min() > 1000 * H
    assert layer_errors(layers.make_activation(name), x)["input"] <= TOL


def test_leaky_relu_slope_is_alpha_on_the_negative_side():
    layer = layers.LeakyReLU(alpha=0.2)
    x = np.array([[-2.0, 3.0]])
    np.testing.assert_array_equal(layer.forward(x), [[-0.4, 3.0]])
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), [[0.2, 1.0]])


@pytest.mark.parametrize("activation", SMOOTH)
def test_sequential_mlp_all_parameters_and_input(activation):
    net = layers.mlp([4, 5, 3, 2], activation, rng(0), final_activation=True)
    x = rng(1).standard_normal((6, 4))
    R = rng(2).standard_normal((6, 2))

    def f():
        return np.sum(R * net.forward(x))

    net.forward(x)
    err = check_gradient(f, x, net.backward(R))
    assert err <= TOL
    names = []
    for name, p, g in net.named_params():
        net.forward(x)
        net.backward(R, input_grad=False)
        assert check_gradient(f, p, g.copy()) <= TOL, name
        names.append(name)
    assert names == ["0.W", "0.b", "2.W", "2.b", "4.W", "4.b"]


def test_sequential_without_input_gradient_returns_none_but_fills_params():
    net = layers.mlp([3, 4, 2], "tanh", rng(0))
    net.forward(rng(1).standard_normal((2, 3)))
    assert net.backward(np.ones((2, 2)), input_grad=False) is None
    assert all(np.any(g != 0) for *_, g in net.named_params())


@pytest.mark.parametrize("logvar_shape", [(), (6,), (1, 6), (5, 1), (5, 6)])
def test_gaussian_wrt_mean_and_logvar(logvar_shape):
    """Scalar (isotropic), per-feature, per-example and per-entry log-variances."""
    r = rng(0)
    x, mean = r.standard_normal((5, 6)), r.standard_normal((5, 6))
    logvar = np.array(0.5 * r.standard_normal(logvar_shape))

    def f():
        return np.sum(losses.gaussian_log_likelihood(x, mean, logvar))

    grad_mean, grad_logvar = losses.gaussian_log_likelihood_backward(x, mean, logvar)
    assert grad_logvar.shape == logvar_shape
    assert check_gradient(f, mean, grad_mean) <= TOL
    assert check_gradient(f, logvar, grad_logvar) <= TOL


def test_kl_wrt_mu_and_logvar():
    r = rng(0)
    mu, logvar = r.standard_normal((5, 3)), r.standard_normal((5, 3))

    def f():
        return np.sum(losses.kl_standard_normal(mu, logvar))

    grad_mu, grad_logvar = losses.kl_standard_normal_backward(mu, logvar)
    assert check_gradient(f, mu, grad_mu) <= TOL
    assert check_gradient(f, logvar, grad_logvar) <= TOL


def reparam_errors(forward=reparameterize, backward=reparameterize_backward):
    r = rng(0)
    mu, logvar, eps = (r.standard_normal((5, 3)) for _ in range(3))
    R = r.standard_normal((5, 3))

    def f():
        return np.sum(R * forward(mu, logvar, eps))

    grad_mu, grad_logvar = backward(R, logvar, eps)
    return check_gradient(f, mu, grad_mu), check_gradient(f, logvar, grad_logvar)


def test_reparameterize_wrt_mu_and_logvar_with_fixed_eps():
    assert max(reparam_errors()) <= TOL


# ---------------------------------------------------------------- models
def vae_configs():
    for likelihood, obs_var in [("bernoulli", None), ("gaussian", None), ("gaussian", 0.3)]:
        for hidden in [(), (5,), (16, 8)]:
            for activation in ["tanh", "softplus", "sigmoid"]:
                yield likelihood, obs_var, hidden, activation


def data(likelihood, n=6, d=5, seed=0):
    r = rng(seed)
    return r.uniform(size=(n, d)) if likelihood == "bernoulli" else r.standard_normal((n, d))


@pytest.mark.parametrize("likelihood, obs_var, hidden, activation", list(vae_configs()))
def test_vae_smooth(likelihood, obs_var, hidden, activation):
    vae = VAE(latent_dim=3, hidden_dims=hidden, activation=activation, likelihood=likelihood,
              obs_var=obs_var, beta=1.0, dtype="float64", random_state=0)
    report = check_model(vae, data(likelihood), max_entries=1000)
    assert report.max_error <= TOL, str(report)
    names = {name for name, *_ in report.rows}
    assert ("obs_logvar" in names) == (likelihood == "gaussian" and obs_var is None)
    assert {"mu.W", "logvar.b", "decoder.0.W"} <= names


def test_vae_with_beta_not_one():
    vae = VAE(latent_dim=2, hidden_dims=(4,), activation="tanh", beta=3.5,
              dtype="float64", random_state=0)
    assert check_model(vae, data("bernoulli")).max_error <= TOL


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("hidden", [(), (5,), (16, 8)])
@pytest.mark.parametrize("activation", ["tanh", "softplus", "sigmoid"])
def test_autoencoder_smooth(likelihood, hidden, activation):
    ae = Autoencoder(latent_dim=3, hidden_dims=hidden, activation=activation,
                     likelihood=likelihood, dtype="float64", random_state=0)
    report = check_model(ae, data(likelihood), max_entries=1000)
    assert report.max_error <= TOL, str(report)


def check_away_from_kinks(model, X, eps=None):
    """``check_model`` that also records, at every loss evaluation, which side
    of its kink each ReLU/LeakyReLU unit is on; returns the report and
    whether any finite-difference evaluation crossed a kink.

    This is the exact condition for the check to be valid at a kinked
    network: the loss is then smooth on the whole segment [theta - h,
    theta + h] of every entry checked.
    """
    nets = (getattr(model.encoder_, "body", model.encoder_), model.decoder_)  # VAE or AE
    units = [layer for net in nets for layer in net.layers
             if isinstance(layer, (layers.ReLU, layers.LeakyReLU))]
    assert units

    def sides():
        return [(u._mask if isinstance(u, layers.ReLU) else u._slope).copy() for u in units]

    model.loss(X, eps)
    base = sides()
    crossed = []
    original = model.loss

    def recording_loss(X, eps=None):
        value = original(X, eps)
        crossed.append(any(not np.array_equal(a, b) for a, b in zip(sides(), base)))
        return value

    model.loss = recording_loss  # an instance attribute shadows the method
    try:
        report = check_model(model, X, eps=eps, max_entries=1000)
    finally:
        del model.loss
    assert len(crossed) == 2 * sum(n for _, _, n, _ in report.rows)
    return report, any(crossed)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("hidden", [(5,), (16, 8)])
def test_vae_kinked_away_from_kinks(activation, hidden):
    vae = VAE(latent_dim=3, hidden_dims=hidden, activation=activation, likelihood="gaussian",
              dtype="float64", random_state=0).initialize(5)
    X = data("gaussian")
    report, crossed = check_away_from_kinks(vae, X, rng(7).standard_normal((X.shape[0], 3)))
    assert not crossed
    assert report.max_error <= TOL, str(report)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_autoencoder_kinked_away_from_kinks(activation):
    ae = Autoencoder(latent_dim=3, hidden_dims=(6,), activation=activation,
                     likelihood="bernoulli", dtype="float64", random_state=0).initialize(5)
    report, crossed = check_away_from_kinks(ae, data("bernoulli"))
    assert not crossed
    assert report.max_error <= TOL, str(report)


def test_a_check_at_a_kink_is_detected_and_fails():
    """Put one first-layer pre-activation exactly on the ReLU's kink: the
    recorder sees the crossing, and the check fails there (the one-sided
    slopes 0 and 1 average to 1/2 in the central difference)."""
    vae = VAE(latent_dim=2, hidden_dims=(4,), activation="relu", likelihood="gaussian",
              dtype="float64", random_state=0).initialize(5)
    X = data("gaussian")
    first = vae.encoder_.body.layers[0].params
    first["b"][0] = -(X[0] @ first["W"][:, 0])
    report, crossed = check_away_from_kinks(vae, X, rng(7).standard_normal((X.shape[0], 2)))
    assert crossed
    assert report.errors["encoder.0.b"] > BIG


def test_check_model_uses_a_subset_for_large_parameters():
    vae = VAE(latent_dim=2, hidden_dims=(40,), activation="tanh", dtype="float64", random_state=0)
    report = check_model(vae, data("bernoulli"), max_entries=30)
    rows = {name: n for name, _, n, _ in report.rows}
    assert rows["encoder.0.W"] == 30 and rows["mu.b"] == 2
    assert report.max_error <= TOL
    assert "encoder.0.W" in str(report)


def test_check_model_refuses_float32():
    vae = VAE(latent_dim=2, hidden_dims=(4,), dtype="float32", random_state=0)
    with pytest.raises(ValueError, match="float64"):
        check_model(vae, data("bernoulli"))


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


def test_numerical_gradient_refuses_a_copy():
    """A non-contiguous view would be perturbed as a copy: f would not see it."""
    with pytest.raises(ValueError, match="contiguous"):
        numerical_gradient(lambda: 0.0, np.zeros((3, 4)).T)


def test_numerical_gradient_restores_x_and_matches_a_known_gradient():
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    before = x.copy()
    grad = numerical_gradient(lambda: np.sum(np.sin(x) * x), x)
    np.testing.assert_array_equal(x, before)
    assert relative_error(grad, np.cos(x) * x + np.sin(x)) <= 1e-9
    # For x^3 the central difference's error is exactly h^2 (one-sided: 3xh).
    cubic = numerical_gradient(lambda: np.sum(x ** 3), x, indices=[3, 0])
    np.testing.assert_allclose(cubic - [3 * 0.5 ** 2, 3 * 0.3 ** 2], H ** 2, rtol=0.1)


def test_relative_error_scale():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0
    assert relative_error([0.0], [0.0]) == 0
    assert relative_error([1.0], [0.0]) == 1
    assert relative_error([1e-12], [1.1e-12]) == pytest.approx(0.1 / 2.1)


# ------------------------------------------------- the checks catch planted bugs
BIG = 1e-3


def test_unit_check_catches_scaled_backward(monkeypatch):
    monkeypatch.setattr(layers.Tanh, "backward",
                        lambda self, g: 1.01 * g * (1 - self._y ** 2))
    assert layer_errors(layers.Tanh(), rng(0).standard_normal((5, 4)))["input"] > BIG


def test_unit_check_catches_wrong_dense_weight_gradient(monkeypatch):
    original = layers.Dense.backward

    def halved_bias(self, grad_out, input_grad=True):
        out = original(self, grad_out, input_grad)
        self.grads["b"] *= 0.5
        return out
    monkeypatch.setattr(layers.Dense, "backward", halved_bias)
    r = rng(0)
    errors = layer_errors(layers.Dense(4, 3, r), r.standard_normal((5, 4)))
    assert errors["b"] > BIG and errors["W"] <= TOL


def test_unit_check_catches_missing_half_in_reparameterize():
    def no_half(grad_z, logvar, eps):
        return grad_z, grad_z * np.exp(0.5 * logvar) * eps
    err_mu, err_logvar = reparam_errors(backward=no_half)
    assert err_mu <= TOL and err_logvar > BIG


def test_unit_check_catches_variance_used_as_std_in_forward_only():
    def variance_forward(mu, logvar, eps):
        return mu + np.exp(logvar) * eps
    assert reparam_errors(forward=variance_forward)[1] > BIG


def test_unit_check_cannot_see_a_consistent_variance_for_std_bug():
    """Forward and backward both using the variance are mutually consistent,
    so the gradient check passes: test_statistics catches this bug."""
    def variance_forward(mu, logvar, eps):
        return mu + np.exp(logvar) * eps

    def variance_backward(grad_z, logvar, eps):
        return grad_z, grad_z * np.exp(logvar) * eps
    assert max(reparam_errors(variance_forward, variance_backward)) <= TOL


def test_unit_check_catches_wrong_kl_gradient():
    r = rng(0)
    mu, logvar = r.standard_normal((5, 3)), r.standard_normal((5, 3))
    wrong = 0.5 * np.exp(logvar)  # forgot the -1/2
    err = check_gradient(lambda: np.sum(losses.kl_standard_normal(mu, logvar)), logvar, wrong)
    assert err > BIG


def small_vae(**kw):
    kw = {"latent_dim": 3, "hidden_dims": (5,), "activation": "tanh",
          "dtype": "float64", "random_state": 0, **kw}
    return VAE(**kw)


def test_check_model_catches_scaled_activation_backward(monkeypatch):
    monkeypatch.setattr(layers.Tanh, "backward",
                        lambda self, g: 1.01 * g * (1 - self._y ** 2))
    report = check_model(small_vae(), data("bernoulli"))
    assert report.max_error > BIG
    errors = report.errors
    assert errors["decoder.2.W"] <= TOL  # no tanh between it and the loss


def test_check_model_catches_dropped_kl(monkeypatch):
    monkeypatch.setattr(losses, "kl_standard_normal_backward",
                        lambda mu, logvar: (np.zeros_like(mu), np.zeros_like(logvar)))
    report = check_model(small_vae(), data("bernoulli"))
    errors = report.errors
    assert errors["mu.b"] > BIG and errors["logvar.b"] > BIG
    assert errors["decoder.0.W"] <= TOL


def test_check_model_catches_missing_half_in_reparameterize(monkeypatch):
    import npvae.models.vae
    monkeypatch.setattr(npvae.models.vae, "reparameterize_backward",
                        lambda g, logvar, eps: (g, g * np.exp(0.5 * logvar) * eps))
    report = check_model(small_vae(), data("bernoulli"))
    errors = report.errors
    assert errors["logvar.b"] > BIG and errors["mu.b"] <= TOL


def test_check_model_catches_variance_as_std_in_forward(monkeypatch):
    import npvae.models.vae
    monkeypatch.setattr(npvae.models.vae, "reparameterize",
                        lambda mu, logvar, eps: mu + np.exp(logvar) * eps)
    assert check_model(small_vae(), data("bernoulli")).max_error > BIG


def test_check_model_catches_wrong_obs_logvar_gradient(monkeypatch):
    original = losses.gaussian_log_likelihood_backward
    monkeypatch.setattr(losses, "gaussian_log_likelihood_backward",
                        lambda x, m, lv: (original(x, m, lv)[0], 2 * original(x, m, lv)[1]))
    report = check_model(small_vae(likelihood="gaussian"), data("gaussian"))
    errors = report.errors
    assert errors["obs_logvar"] > BIG and errors["decoder.0.b"] <= TOL


def test_check_model_catches_bug_in_autoencoder(monkeypatch):
    monkeypatch.setattr(layers.Softplus, "backward", lambda self, g: g * layers.sigmoid(-self._x))
    ae = Autoencoder(latent_dim=2, hidden_dims=(4,), activation="softplus",
                     dtype="float64", random_state=0)
    assert check_model(ae, data("bernoulli")).max_error > BIG

"""npvae.models.inference: the gradient of J(z) through the decoder is checked by
central differences (and the check is shown to catch planted bugs), and
fit_latent finds the closed-form MAP code of a linear Gaussian decoder."""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from npvae import VAE, Autoencoder, inference, layers
from npvae.core.gradcheck import check_gradient
from npvae.models.inference import fit_latent, log_joint, log_joint_grad

D, L = 7, 3


def _setup(cls=VAE, likelihood="bernoulli", seed=0, **kw):
    rng = np.random.default_rng(seed)
    model = cls(latent_dim=L, hidden_dims=(6,), activation="tanh", likelihood=likelihood,
                dtype="float64", random_state=seed, **kw).initialize(D)
    if likelihood == "gaussian":
        model.params_["obs_logvar"][...] = -0.7
    X = rng.random((5, D))
    Z = rng.standard_normal((5, L))
    mask = rng.random((5, D)) < 0.5
    return model, X, Z, mask


def _grad_error(model, X, Z, mask):
    _, grad = log_joint_grad(model, X, Z, mask)
    return check_gradient(lambda: log_joint(model, X, Z, mask).sum(), Z, grad)


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_gradient_through_the_decoder_matches_central_differences(cls, likelihood):
    model, X, Z, mask = _setup(cls, likelihood)
    assert _grad_error(model, X, Z, mask) < 1e-7


def test_a_learned_mixture_prior_enters_the_objective_and_its_gradient():
    model, X, Z, mask = _setup(prior="mixture", n_components=4)
    assert _grad_error(model, X, Z, mask) < 1e-7
    plain, *_ = _setup()
    decoded = log_joint(model, X, Z, mask) - model.prior_.forward(Z)
    np.testing.assert_allclose(decoded, log_joint(plain, X, Z, mask) - plain.prior_.forward(Z),
                               rtol=1e-12)
    assert not np.allclose(model.prior_.forward(Z), plain.prior_.forward(Z))


def test_gradient_check_catches_a_forgotten_prior_gradient(monkeypatch):
    model, X, Z, mask = _setup()
    real = inference._prior

    class NoGradient:     # the prior's value kept, its gradient forgotten
        def __init__(self, model):
            self.prior = real(model)

        def forward(self, z):
            return self.prior.forward(z)

        def backward(self, dout):
            return 0 * self.prior.backward(dout)
    monkeypatch.setattr(inference, "_prior", NoGradient)
    assert _grad_error(model, X, Z, mask) > 1e-2


def test_gradient_check_catches_a_wrong_likelihood_gradient(monkeypatch):
    model, X, Z, mask = _setup()
    real = type(model.likelihood_).backward
    # The mask forgotten: hidden pixels pull on z too.
    monkeypatch.setattr(type(model.likelihood_), "backward",
                        lambda self, dout: real(self, np.ones_like(dout)))
    assert _grad_error(model, X, Z, mask) > 1e-2


def test_gradient_check_catches_a_wrong_activation_backward(monkeypatch):
    model, X, Z, mask = _setup()
    # Planted bug: tanh' = 1 - y instead of 1 - y^2.
    monkeypatch.setattr(layers.Tanh, "backward", lambda self, g: g * (1 - self._y))
    assert _grad_error(model, X, Z, mask) > 1e-2


def test_log_joint_adds_the_masked_likelihood_and_the_prior():
    model, X, Z, mask = _setup(likelihood="gaussian")
    out = model.decode(Z)
    s2 = np.exp(-0.7)
    per_pixel = -0.5 * (np.log(2 * np.pi * s2) + (X - out) ** 2 / s2)
    prior = -0.5 * np.sum(np.log(2 * np.pi) + Z ** 2, axis=1)
    np.testing.assert_allclose(log_joint(model, X, Z, mask),
                               np.sum(per_pixel * mask, axis=1) + prior, rtol=1e-12)
    # Values at hidden pixels do not matter.
    X2 = np.where(mask, X, 0.123)
    np.testing.assert_array_equal(log_joint(model, X, Z, mask), log_joint(model, X2, Z, mask))


def test_fit_latent_finds_the_closed_form_map_code():
    r"""Linear Gaussian decoder o = zW + b: J is a concave quadratic whose
    maximiser solves (W M W^T / s2 + I) z = W M (x - b) / s2, M = diag(m)."""
    rng = np.random.default_rng(1)
    model = VAE(latent_dim=L, hidden_dims=(), likelihood="gaussian", obs_var=0.5,
                dtype="float64", random_state=0).initialize(D)
    W, b = model.params_["decoder.0.W"], model.params_["decoder.0.b"]
    b[...] = rng.standard_normal(D)
    X = rng.standard_normal((4, D))
    mask = np.array([1, 1, 0, 1, 0, 1, 1], dtype=bool)
    M = np.diag(mask.astype(float))
    A = W @ M @ W.T / 0.5 + np.eye(L)
    expected = np.linalg.solve(A, (W @ M @ (X - b).T) / 0.5).T
    Z = fit_latent(model, X, mask, steps=3000, learning_rate=0.02)
    np.testing.assert_allclose(Z, expected, atol=1e-4)
    assert np.all(log_joint(model, X, Z, mask) > log_joint(model, X, np.zeros_like(Z), mask))


def test_fit_latent_leaves_z0_and_the_model_alone():
    model, X, Z, mask = _setup()
    before = {k: v.copy() for k, v in model.params_.items()}
    z0 = Z.copy()
    out = fit_latent(model, X, mask, z0=z0, steps=5)
    np.testing.assert_array_equal(z0, Z)
    assert not np.array_equal(out, Z)
    for k, v in model.params_.items():
        np.testing.assert_array_equal(v, before[k])


def test_fit_latent_works_in_float32():
    model = VAE(latent_dim=2, hidden_dims=(8,), epochs=1, random_state=0)
    X = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    model.fit(X)
    Z = fit_latent(model, X, X > 0.3, steps=20)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"mask": np.ones((5, 3))}, ValueError, "does not match"),
    ({"mask": np.ones((5, 3)), "steps": 0}, ValueError, "does not match"),
    ({"mask": np.full((5, 7), 0.5)}, ValueError, "only 0/1"),
    ({"mask": np.array(["a"] * 7)}, TypeError, "boolean or 0/1"),
    ({"z0": np.zeros((5, 2))}, ValueError, "Z must have shape"),
    ({"steps": -1}, ValueError, "steps"),
    # With no steps to take, bad z0 and mask must still be refused, not returned.
    ({"z0": np.zeros((4, L)), "steps": 0}, ValueError, "as many rows"),
    ({"mask": np.full((5, 7), 0.5), "steps": 0}, ValueError, "only 0/1"),
])
def test_fit_latent_rejects_bad_input(kwargs, error, match):
    model, X, _, _ = _setup()
    with pytest.raises(error, match=match):
        fit_latent(model, X, **kwargs)


@pytest.mark.parametrize("call", [
    lambda m, X, Z: fit_latent(m, X), lambda m, X, Z: log_joint(m, X, Z),
    lambda m, X, Z: log_joint_grad(m, X, Z),
])
def test_unfitted_model_raises_not_fitted(call):
    with pytest.raises(NotFittedError):
        call(VAE(latent_dim=L), np.full((2, D), 0.5), np.zeros((2, L)))

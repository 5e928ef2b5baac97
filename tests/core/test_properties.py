"""Properties that must hold for every input (hypothesis, derandomized)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npvae import VAE, Autoencoder, losses
from npvae.core.rng import row_normals


def test_the_deterministic_profile_is_loaded():
    assert settings().derandomize and settings().deadline is None


def matrices(elements, max_rows=4, max_cols=5):
    shapes = st.tuples(st.integers(1, max_rows), st.integers(1, max_cols))
    return shapes.flatmap(lambda s: st.tuples(arrays(np.float64, s, elements=elements),
                                              arrays(np.float64, s, elements=elements)))


# Zero, or far enough from it that the KL (about mu^2/2 and logvar^2/4 near
# 0) is representable: below ~1e-8 it rounds to 0 next to 1 in float64.
small_or_zero = st.one_of(
    st.just(0.0),
    st.floats(1e-6, 20.0).flatmap(lambda v: st.sampled_from([v, -v])))


@given(matrices(st.floats(-20.0, 20.0)))
def test_kl_is_nonnegative(mu_logvar):
    mu, logvar = mu_logvar
    kl = losses.kl_standard_normal(mu, logvar)
    assert kl.shape == (mu.shape[0],)
    assert np.all(np.isfinite(kl)) and np.all(kl >= 0)


@given(matrices(small_or_zero))
def test_kl_is_zero_exactly_at_the_prior(mu_logvar):
    mu, logvar = mu_logvar
    kl = losses.kl_standard_normal(mu, logvar)
    at_prior = np.all(mu == 0, axis=1) & np.all(logvar == 0, axis=1)
    assert np.all(kl[at_prior] == 0)
    assert np.all(kl[~at_prior] > 0)


def test_kl_of_tiny_log_variances_is_not_negative():
    """1 + l - exp(l) cancels catastrophically for |l| ~ 1e-9 and came out
    as -5.6e-17 before the KL was written with expm1."""
    logvar = np.linspace(-1e-8, 1e-8, 1001)[:, None]
    kl = losses.kl_standard_normal(np.zeros_like(logvar), logvar)
    assert np.all(kl >= 0)
    # KL = (expm1(l) - l) / 2 = l^2/4 + O(l^3); the subtraction keeps ~5 digits at 1e-10.
    np.testing.assert_allclose(kl, logvar[:, 0] ** 2 / 4, rtol=1e-4, atol=0)


def bernoulli_reference(x, logits):
    r""":math:`\sum_d x \log\sigma(\ell) + (1 - x) \log(1 - \sigma(\ell))` in
    float64, with :math:`\log\sigma(\ell) = -\log(1 + e^{-\ell})` from
    ``np.logaddexp`` (exact for any finite logit)."""
    x, logits = x.astype(np.float64), logits.astype(np.float64)
    return np.sum(-x * np.logaddexp(0, -logits) - (1 - x) * np.logaddexp(0, logits), axis=-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_bernoulli_is_finite_and_correct_for_huge_logits(dtype, data):
    shape = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 6)))
    logits = data.draw(arrays(dtype, shape, elements=st.floats(-1e4, 1e4, width=32)))
    binary = data.draw(st.booleans())
    x_elements = st.sampled_from([0.0, 1.0]) if binary else st.floats(0, 1, width=32)
    x = data.draw(arrays(dtype, shape, elements=x_elements))
    value = losses.bernoulli_log_likelihood(x, logits)
    grad = losses.bernoulli_log_likelihood_backward(x, logits)
    assert value.dtype == dtype and grad.dtype == dtype
    assert np.all(np.isfinite(value)) and np.all(np.abs(grad) <= 1)
    # Rounding of x*l - softplus(l): a few ulps of the terms' magnitudes.
    scale = np.sum(np.abs(x.astype(np.float64) * logits) + np.abs(logits) + 1, axis=-1)
    tolerance = 8 * np.finfo(dtype).eps * scale
    assert np.all(np.abs(value - bernoulli_reference(x, logits)) <= tolerance)


model_shapes = st.fixed_dictionaries({
    "n": st.integers(1, 12), "d": st.integers(1, 7), "latent": st.integers(1, 4),
    "hidden": st.sampled_from([(), (3,), (5, 2)]),
    "batch_size": st.integers(1, 16), "dtype": st.sampled_from(["float32", "float64"]),
})


@settings(max_examples=25)
@given(model_shapes)
def test_vae_output_shapes(s):
    X = np.random.default_rng(0).uniform(size=(s["n"], s["d"]))
    vae = VAE(latent_dim=s["latent"], hidden_dims=s["hidden"], activation="tanh",
              epochs=1, batch_size=s["batch_size"], dtype=s["dtype"], random_state=0).fit(X)
    n, d, k, dtype = s["n"], s["d"], s["latent"], np.dtype(s["dtype"])
    mu, logvar = vae.encode(X)
    outputs = {"mu": (mu, (n, k)), "logvar": (logvar, (n, k)),
               "transform": (vae.transform(X), (n, k)),
               "decode": (vae.decode(mu), (n, d)),
               "inverse_transform": (vae.inverse_transform(mu), (n, d)),
               "sample": (vae.sample(3, random_state=1), (3, d)),
               "score_samples": (vae.score_samples(X), (n,))}
    for name, (value, shape) in outputs.items():
        assert value.shape == shape, name
        assert value.dtype == dtype, name
        assert np.all(np.isfinite(value)), name
    assert np.all((outputs["decode"][0] >= 0) & (outputs["decode"][0] <= 1))
    log_px, kl = vae.elbo_terms(X)
    assert log_px.shape == kl.shape == (n,)
    assert isinstance(vae.score(X), float)
    assert len(vae.history_) == 1 and vae.n_features_in_ == d


@settings(max_examples=25)
@given(model_shapes, st.sampled_from(["bernoulli", "gaussian"]))
def test_autoencoder_output_shapes(s, likelihood):
    X = np.random.default_rng(0).uniform(size=(s["n"], s["d"]))
    ae = Autoencoder(latent_dim=s["latent"], hidden_dims=s["hidden"], activation="tanh",
                     likelihood=likelihood, epochs=1, batch_size=s["batch_size"],
                     dtype=s["dtype"], random_state=0).fit(X)
    n, d, k = s["n"], s["d"], s["latent"]
    Z = ae.transform(X)
    assert Z.shape == (n, k) and Z.dtype == s["dtype"]
    assert ae.inverse_transform(Z).shape == (n, d)
    assert ae.score_samples(X).shape == (n,)
    assert np.all(np.isfinite(ae.score_samples(X)))


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_decode_is_the_mean_of_the_likelihood_that_is_trained(cls, likelihood):
    # Linear decoder: its output is Z W + b, the logits (Bernoulli) or the
    # mean (Gaussian); decode must return sigmoid(logits) or the mean itself.
    model = cls(latent_dim=3, hidden_dims=(), likelihood=likelihood, dtype="float64",
                random_state=0).initialize(6)
    Z = np.random.default_rng(1).normal(size=(5, 3))
    out = Z @ model.params_["decoder.0.W"] + model.params_["decoder.0.b"]
    expected = 1 / (1 + np.exp(-out)) if likelihood == "bernoulli" else out
    assert np.allclose(model.decode(Z), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_score_samples_is_the_elbo_that_training_minimises(likelihood):
    # With beta = 1 the mean training loss for the same eps is -ELBO, and the
    # KL term is the closed form at the encoder's (mu, logvar).
    model = VAE(latent_dim=2, hidden_dims=(5,), activation="tanh", likelihood=likelihood,
                dtype="float64", random_state=0).initialize(6)
    X = np.random.default_rng(2).random((7, 6))
    eps = row_normals(X, 2, random_state=3)      # the noise elbo_terms draws
    log_px, kl = model.elbo_terms(X, random_state=3)
    mu, logvar = model.encode(X)
    assert np.allclose(kl, losses.kl_standard_normal(mu, logvar), rtol=1e-12)
    assert np.isclose(-np.mean(log_px - kl), model.loss(X, eps), rtol=1e-12)
    scores = model.score_samples(X)
    assert np.allclose(scores, np.subtract(*model.elbo_terms(X)), rtol=1e-12)
    assert np.isclose(model.score(X), scores.mean(), rtol=1e-12)

"""The DReG and STL gradient estimators (docs/math.md §9b).

They are not gradients of the loss, so they are tested as estimators:
(a) over many noise draws their mean equals the standard estimator's,
within 4 measured standard errors; (b) the decoder's (and the prior's)
gradient is the standard one bit for bit; (c) at k = 1 DReG is STL.  The
wrong weight power (w~ instead of w~^2) is a planted bug that (a) catches.
Beyond that, each is the exact gradient of a surrogate with its
stop-gradients frozen, which central differences can check.
"""
import math

import numpy as np
import pytest

import npvae.models.iwae
from npvae import IWAE, VAE
from npvae.app.checkpoints import load_checkpoint
from npvae.core.gradcheck import numerical_gradient, relative_error
from npvae.core.layers import reparameterize
from conftest import paired_z_scores

N_ROWS, N_FEATURES, LATENT = 3, 6, 2
# (a): BATCHES batch means of REPLICAS draws per row each.
BATCHES, REPLICAS = 40, 250


def binary_data(seed=0):
    return (np.random.default_rng(seed).random((N_ROWS, N_FEATURES)) > 0.5).astype(float)


def tiny(cls=IWAE, **kw):
    kw = {"latent_dim": LATENT, "hidden_dims": (4,), "activation": "tanh",
          "dtype": "float64", "random_state": 0, **kw}
    if cls is IWAE:
        kw.setdefault("k", 5)
    return cls(**kw).initialize(N_FEATURES)


def noise(model, n, rng):
    shape = (n, LATENT)
    return rng.standard_normal((model.k, *shape) if isinstance(model, IWAE) else shape)


def batch_means(model, seed=2):
    r"""Gradients of ``model`` (a dict of arrays) for BATCHES draws of the
    noise, each the mean over REPLICAS copies of the rows: shape (BATCHES,
    ...) per parameter.  Each copy's codes are independent, so a batch's
    gradient is the mean of REPLICAS independent estimates, and the spread
    of the batch means gives the standard error of their grand mean."""
    rng = np.random.default_rng(seed)
    X = np.tile(binary_data(), (REPLICAS, 1))
    draws = [model.loss_and_grads(X, noise(model, X.shape[0], rng))[1]
             for _ in range(BATCHES)]
    return {name: np.stack([d[name] for d in draws]) for name in draws[0]}


def encoder_names(model):
    return [n for n in model.params_ if n.split(".")[0] in ("encoder", "mu", "logvar")]


CASES = {
    "iwae dreg k=5": (dict(k=5), "dreg"),
    "iwae dreg k=5 beta=0.5": (dict(k=5, beta=0.5), "dreg"),
    "iwae stl k=1": (dict(k=1), "stl"),
    "iwae dreg k=5 mixture": (dict(k=5, prior="mixture", n_components=2), "dreg"),
    "vae stl": (dict(cls=VAE), "stl"),
    "vae stl mixture": (dict(cls=VAE, prior="mixture", n_components=2), "stl"),
}


@pytest.fixture(scope="module")
def standard_means():
    return {case: batch_means(tiny(**kw)) for case, (kw, _) in CASES.items()}


@pytest.mark.parametrize("case", CASES)
def test_the_mean_over_noise_draws_is_the_standard_estimators(case, standard_means):
    kw, estimator = CASES[case]
    model = tiny(gradient_estimator=estimator, **kw)
    scores = paired_z_scores(batch_means(model), standard_means[case], encoder_names(model))
    assert max(abs(s) for s in scores.values()) < 4, scores


def test_the_wrong_weight_power_is_caught_by_the_means(standard_means, monkeypatch):
    # Planted bug: the path weighted by w~ (factor 1) instead of w~^2.
    monkeypatch.setattr(npvae.models.iwae, "dreg_factor", lambda w, beta: np.ones_like(w))
    model = tiny(k=5, gradient_estimator="dreg")
    scores = paired_z_scores(batch_means(model), standard_means["iwae dreg k=5"],
                      encoder_names(model))
    assert max(abs(s) for s in scores.values()) > 8, scores


def test_stl_of_the_iwae_is_biased_for_k_above_1(standard_means):
    # What the docstring says: STL keeps w~, so it is the planted bug above.
    model = tiny(k=5, gradient_estimator="stl")
    scores = paired_z_scores(batch_means(model), standard_means["iwae dreg k=5"],
                      encoder_names(model))
    assert max(abs(s) for s in scores.values()) > 8, scores


@pytest.mark.parametrize("kw", [dict(k=5), dict(k=5, prior="mixture", n_components=2),
                                dict(k=3, beta=0.5), dict(cls=VAE),
                                dict(cls=VAE, prior="mixture", n_components=2)])
def test_decoder_prior_and_loss_are_bitwise_the_standard_ones(kw):
    X = binary_data()
    reference = tiny(**kw)
    eps = noise(reference, N_ROWS, np.random.default_rng(3))
    loss, grads = reference.loss_and_grads(X, eps)
    estimators = ("dreg", "stl") if isinstance(reference, IWAE) else ("stl",)
    for estimator in estimators:
        model = tiny(gradient_estimator=estimator, **kw)
        other_loss, other = model.loss_and_grads(X, eps)
        assert other_loss == loss
        encoder = encoder_names(model)
        for name in grads:
            same = np.array_equal(grads[name], other[name])
            # The encoder's gradient does change (no vacuous check).
            assert same != (name in encoder), (estimator, name)


def test_at_k_1_dreg_is_stl_and_stl_is_the_vaes():
    X = binary_data()
    eps = np.random.default_rng(4).standard_normal((1, N_ROWS, LATENT))
    dreg = tiny(k=1, gradient_estimator="dreg").loss_and_grads(X, eps)
    stl = tiny(k=1, gradient_estimator="stl").loss_and_grads(X, eps)
    vae = tiny(VAE, gradient_estimator="stl").loss_and_grads(X, eps[0])
    assert dreg[0] == stl[0]
    for name in dreg[1]:
        assert np.array_equal(dreg[1][name], stl[1][name]), name
        assert relative_error(vae[1][name], stl[1][name]) < 1e-12, name


def surrogate(model, X, eps, frozen):
    r"""The loss whose gradient the estimator is, its stop-gradients frozen
    at ``frozen`` = (mu, logvar, c): :math:`-\frac1n \sum_{i,n} c_{in}
    [\log p(x_n \mid z_{in}) - \beta(\log q(z_{in}; \mu^0, \sigma^0) - \log
    p(z_{in}))]` with :math:`z = \mu + \sigma\varepsilon` live and
    :math:`\log q`'s parameters and the weights :math:`c` held fixed."""
    mu0, logvar0, c = frozen
    mu, logvar = model.encoder_.forward(X)
    z = reparameterize(mu, logvar, eps)                          # (k, n, L)
    out = model.decoder_.forward(z.reshape(-1, LATENT)).reshape(*z.shape[:2], -1)
    log_q = -0.5 * np.sum(math.log(2 * math.pi) + logvar0
                          + (z - mu0) ** 2 * np.exp(-logvar0), axis=-1)
    log_w = (model.likelihood_.log_prob(X, out)
             - model.beta * (log_q - model.prior_.forward(z)))
    return -float(np.sum(c * log_w)) / X.shape[0]


@pytest.mark.parametrize("estimator, beta", [("dreg", 1.0), ("dreg", 0.4), ("stl", 1.0)])
def test_the_encoders_gradient_is_the_frozen_surrogates(estimator, beta):
    X = binary_data()
    model = tiny(k=4, gradient_estimator=estimator, beta=beta)
    eps = noise(model, N_ROWS, np.random.default_rng(5))
    _, grads = model.loss_and_grads(X, eps)
    mu0, logvar0 = model.encoder_.forward(X)
    weights = npvae.models.iwae.log_mean_exp(model.log_weights(X, None, eps, beta))[1]
    c = weights * (npvae.models.iwae.dreg_factor(weights, beta) if estimator == "dreg" else 1)
    for name in encoder_names(model):
        numeric = numerical_gradient(
            lambda: surrogate(model, X, eps, (mu0, logvar0, c)), model.params_[name])
        assert relative_error(grads[name], numeric) < 1e-7, name


def test_bad_estimators_are_refused_at_fit_by_name():
    X = binary_data()
    with pytest.raises(ValueError, match="VAE.gradient_estimator='dreg'.*'stl'"):
        VAE(gradient_estimator="dreg").fit(X)
    for cls in (VAE, IWAE):
        with pytest.raises(ValueError, match=f"{cls.__name__}.gradient_estimator must be"):
            cls(gradient_estimator="reinforce").fit(X)


def test_the_estimator_round_trips_through_a_checkpoint(tmp_path):
    X = binary_data()
    model = IWAE(2, hidden_dims=(4,), k=3, gradient_estimator="dreg", epochs=1,
                 random_state=0).fit(X)
    loaded = load_checkpoint(model.save(tmp_path / "m"))
    assert loaded.gradient_estimator == "dreg"


def test_set_params_switches_the_estimator_of_a_fitted_model():
    X = binary_data()
    eps = noise(tiny(), N_ROWS, np.random.default_rng(6))
    for estimator in ("dreg", "stl"):
        switched = tiny().set_params(gradient_estimator=estimator).loss_and_grads(X, eps)[1]
        built = tiny(gradient_estimator=estimator).loss_and_grads(X, eps)[1]
        for name in built:
            assert np.array_equal(switched[name], built[name]), name


def test_the_surrogate_check_catches_the_wrong_weight_power(monkeypatch):
    # Planted bug: factor 1, so the path is weighted by w~ instead of w~^2.
    X = binary_data()
    model = tiny(k=4, gradient_estimator="dreg")
    eps = noise(model, N_ROWS, np.random.default_rng(5))
    mu0, logvar0 = model.encoder_.forward(X)
    weights = npvae.models.iwae.log_mean_exp(model.log_weights(X, None, eps, 1.0))[1]
    monkeypatch.setattr(npvae.models.iwae, "dreg_factor", lambda w, beta: np.ones_like(w))
    grads = model.loss_and_grads(X, eps)[1]
    numeric = numerical_gradient(
        lambda: surrogate(model, X, eps, (mu0, logvar0, weights ** 2)), model.params_["mu.b"])
    assert relative_error(grads["mu.b"], numeric) > 1e-2

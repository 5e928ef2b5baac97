"""STL and DReG for two stochastic layers (docs/math.md §9c), tested as
estimators, as tests/models/test_gradient_estimators.py does for one layer:
(a) their mean over many noise draws is the standard estimator's; (b) the
generative networks' gradients are the standard ones bit for bit; (c) at
k = 1 DReG is STL.  And each is the exact gradient of a surrogate with its
stop-gradients frozen (the recognition densities' parameters, the weights),
which central differences check; planted bugs are caught."""
import copy

import numpy as np
import pytest

import npvae.models.two_layer as two_layer
from npvae.core.gradcheck import numerical_gradient, relative_error
from npvae.core.losses import gaussian_log_likelihood
from npvae.models.base import Batch
from npvae.models.two_layer import TwoLayerIWAE, TwoLayerVAE
from conftest import paired_z_scores

N, D, L1, L2 = 3, 6, 3, 2
BATCHES, REPLICAS = 30, 150


def binary(seed=0):
    return (np.random.default_rng(seed).random((N, D)) > 0.5).astype(float)


def tiny(cls=TwoLayerIWAE, **kw):
    kw = {"hidden_dims": ((4,), (3,)), "dtype": "float64", "random_state": 0, **kw}
    return cls((L1, L2), **kw).initialize(D)


def noise(k, n=N, seed=1):
    return np.random.default_rng(seed).standard_normal((k, n, L1 + L2))


def encoder_names(model):
    return [name for name in model.params_ if name.startswith(("q_z1.", "q_z2."))]


def surrogate(model, X, eps, frozen, beta=1.0):
    r""":math:`-\frac1n\sum_{i,n} c_{in} \log w_{in}` with the codes live and
    :math:`\log q(z_1 \mid x)`'s parameters, ``q_z2_``'s weights (a frozen
    copy, fed the live :math:`z_1`) and the weights :math:`c` held fixed;
    :math:`\log w = \log p(x \mid z_1) + \beta(\log p(z_1, z_2) - \log q)`."""
    mu1_0, logvar1_0, q_z2_0, c = frozen
    k, n = eps.shape[:2]
    mu1, logvar1 = model.q_z1_.forward(X)
    z1 = mu1 + np.exp(0.5 * logvar1) * eps[..., :L1]
    flat = z1.reshape(k * n, L1)
    mu2, logvar2 = model.q_z2_.forward(flat)
    z2 = mu2 + np.exp(0.5 * logvar2) * eps[..., L1:].reshape(k * n, L2)
    mu_p, logvar_p = model.p_z1_.forward(z2)
    log_px = model.likelihood_.log_prob(X, model.decoder_.forward(flat).reshape(k, n, -1))
    log_p = (gaussian_log_likelihood(flat, mu_p, logvar_p)
             + gaussian_log_likelihood(z2, 0 * z2, 0 * z2)).reshape(k, n)
    log_q = (gaussian_log_likelihood(z1, mu1_0, logvar1_0)
             + gaussian_log_likelihood(z2, *q_z2_0.forward(flat)).reshape(k, n))
    return -float(np.sum(c * (log_px + beta * (log_p - log_q)))) / n


def frozen_at(model, X, eps, estimator, beta=1.0):
    log_w = model.forward_pass(X, eps, beta, train=False)["log_w"]
    weights = model.bound_and_weights(log_w)[1]
    c = weights * (two_layer.dreg_factor(weights, beta) if estimator == "dreg" else 1)
    return (*model.q_z1_.predict(X), copy.deepcopy(model.q_z2_), c)


CASES = [(TwoLayerVAE, 1, "stl"), (TwoLayerVAE, 3, "stl"), (TwoLayerIWAE, 4, "stl"),
         (TwoLayerIWAE, 4, "dreg")]


@pytest.mark.parametrize("cls, k, estimator, beta", [(*case, 1.0) for case in CASES]
                         + [(TwoLayerVAE, 3, "stl", 0.4), (TwoLayerIWAE, 4, "dreg", 0.4)])
def test_the_gradient_is_the_frozen_surrogates(cls, k, estimator, beta):
    X, eps = binary(), noise(k)
    model = tiny(cls, k=k, gradient_estimator=estimator)
    _, grads = model.loss_and_grads_of(Batch(X, None, eps), beta)
    frozen = frozen_at(model, X, eps, estimator, beta)
    # DReG's generative gradients keep the weights w~, not the surrogate's w~ f.
    names = encoder_names(model) if estimator == "dreg" else list(model.params_)
    for name in names:
        numeric = numerical_gradient(lambda: surrogate(model, X, eps, frozen, beta),
                                     model.params_[name])
        assert relative_error(grads[name], numeric) <= 1e-7, name


def surrogate_error(model, X, eps, frozen, name="q_z1.mu.b"):
    grads = model.loss_and_grads(X, eps)[1]
    numeric = numerical_gradient(lambda: surrogate(model, X, eps, frozen), model.params_[name])
    return relative_error(grads[name], numeric)


def test_the_surrogate_check_catches_the_wrong_weight_power(monkeypatch):
    X, eps, model = binary(), noise(4), tiny(k=4, gradient_estimator="dreg")
    frozen = frozen_at(model, X, eps, "dreg")       # w~^2, before the bug is planted
    assert surrogate_error(model, X, eps, frozen) <= 1e-7
    monkeypatch.setattr(two_layer, "dreg_factor", lambda w, beta: np.ones_like(w))
    assert surrogate_error(model, X, eps, frozen) > 1e-2


def test_the_surrogate_check_catches_a_missing_path_of_q_z2_through_z1():
    """Planted bug: log q(z2|z1)'s dependence on z1 through the frozen
    network dropped (only its path through z2 kept)."""
    X, eps = binary(), noise(3)
    model = tiny(TwoLayerVAE, k=3, gradient_estimator="stl")
    frozen = frozen_at(model, X, eps, "stl")
    assert surrogate_error(model, X, eps, frozen) <= 1e-7
    original = model.q_z2_.backward
    calls = []

    def first_pass_dropped(grad_mu, grad_logvar, input_grad=True):
        calls.append(1)         # path_terms' pass comes first in each step
        grad_x = original(grad_mu, grad_logvar, input_grad)
        return 0 * grad_x if len(calls) % 2 == 1 else grad_x
    model.q_z2_.backward = first_pass_dropped
    assert surrogate_error(model, X, eps, frozen) > 1e-3


@pytest.mark.parametrize("cls, k", [(TwoLayerVAE, 2), (TwoLayerIWAE, 4)])
def test_generative_gradients_and_loss_are_bitwise_the_standard_ones(cls, k):
    X, eps = binary(), noise(k)
    loss, grads = tiny(cls, k=k).loss_and_grads(X, eps)
    for estimator in cls.gradient_estimators[1:]:
        other_loss, other = tiny(cls, k=k, gradient_estimator=estimator).loss_and_grads(X, eps)
        assert other_loss == loss
        for name in grads:
            same = np.array_equal(grads[name], other[name])
            assert same != (name in encoder_names(tiny(cls))), (estimator, name)


def test_at_k_1_dreg_is_stl_and_the_iwaes_stl_is_the_vaes():
    X, eps = binary(), noise(1)
    dreg = tiny(k=1, gradient_estimator="dreg").loss_and_grads(X, eps)[1]
    stl = tiny(k=1, gradient_estimator="stl").loss_and_grads(X, eps)[1]
    vae = tiny(TwoLayerVAE, k=1, gradient_estimator="stl").loss_and_grads(X, eps)[1]
    for name in dreg:
        assert np.array_equal(dreg[name], stl[name]), name
        assert relative_error(vae[name], stl[name]) < 1e-12, name


def batch_means(model, seed=2):
    rng = np.random.default_rng(seed)
    X = np.tile(binary(), (REPLICAS, 1))
    draws = [model.loss_and_grads(X, rng.standard_normal((model.k, X.shape[0], L1 + L2)))[1]
             for _ in range(BATCHES)]
    return {name: np.stack([d[name] for d in draws]) for name in encoder_names(model)}


@pytest.fixture(scope="module")
def standard_means():
    return {k: batch_means(tiny(TwoLayerIWAE if k > 1 else TwoLayerVAE, k=k)) for k in (1, 4)}


@pytest.mark.parametrize("cls, k, estimator", [(TwoLayerVAE, 1, "stl"),
                                               (TwoLayerIWAE, 4, "dreg")])
def test_the_mean_over_noise_draws_is_the_standard_estimators(cls, k, estimator,
                                                                standard_means):
    scores = paired_z_scores(batch_means(tiny(cls, k=k, gradient_estimator=estimator)),
                      standard_means[k])
    assert max(abs(s) for s in scores.values()) < 4, scores


def test_the_means_catch_the_wrong_weight_power(standard_means, monkeypatch):
    monkeypatch.setattr(two_layer, "dreg_factor", lambda w, beta: np.ones_like(w))
    scores = paired_z_scores(batch_means(tiny(k=4, gradient_estimator="dreg")), standard_means[4])
    assert max(abs(s) for s in scores.values()) > 8, scores


def test_dreg_of_the_vae_is_refused_at_fit():
    with pytest.raises(ValueError, match=r"TwoLayerVAE.gradient_estimator='dreg' needs "
                                         r"importance weights.*'stl', or an importance-weighted "
                                         r"model \(IWAE, TwoLayerIWAE\)"):
        TwoLayerVAE((L1, L2), hidden_dims=((4,), (3,)), gradient_estimator="dreg").fit(binary())

"""Two stochastic layers (docs/math.md §9c): float64 central differences of
the whole model with fixed noise, each shown to catch planted bugs; the
log-weight against densities written out with scipy; bad input named at
fit."""
import numpy as np
import pytest
from scipy.stats import bernoulli, norm

import npvae.models.two_layer as two_layer
from npvae.core.gradcheck import check_model, numerical_gradient, relative_error
from npvae.core.layers import sigmoid
from npvae.core.priors import DiagonalGaussian
from npvae.models.base import Batch
from npvae.models.two_layer import TwoLayerIWAE, TwoLayerVAE

TOL, BIG = 1e-7, 1e-3
N, D, L1, L2 = 5, 6, 3, 2


def data(likelihood="bernoulli", n=N, d=D, seed=0):
    r = np.random.default_rng(seed)
    return r.uniform(size=(n, d)) if likelihood == "bernoulli" else r.standard_normal((n, d))


def small(cls=TwoLayerVAE, d=D, **kw):
    kw = {"hidden_dims": ((4,), (3,)), "dtype": "float64", "random_state": 0, **kw}
    return cls((L1, L2), **kw).initialize(d)


def noise(k, n=N, seed=1):
    return np.random.default_rng(seed).standard_normal((k, n, L1 + L2))


CASES = [(TwoLayerVAE, 1, "bernoulli", ((4,), (3,))), (TwoLayerVAE, 3, "gaussian", ((4,), (3,))),
         (TwoLayerIWAE, 4, "bernoulli", ((4, 5), (3,))), (TwoLayerIWAE, 4, "gaussian", ((), ())),
         (TwoLayerIWAE, 1, "bernoulli", ((4,), (3,)))]


@pytest.mark.parametrize("cls, k, likelihood, hidden", CASES)
def test_every_parameter_by_central_differences(cls, k, likelihood, hidden):
    model = small(cls, k=k, likelihood=likelihood, hidden_dims=hidden)
    report = check_model(model, data(likelihood), eps=noise(k), max_entries=1000)
    assert report.max_error <= TOL, str(report)
    names = set(report.errors)
    assert {"q_z1.mu.W", "q_z2.logvar.b", "p_z1.logvar.W", "decoder.0.W"} <= names
    assert ("obs_logvar" in names) == (likelihood == "gaussian")


def test_the_gradient_with_beta_not_one():
    """``forward_backward``'s beta weighs log q - log p(z1, z2) in the log-weight."""
    model, X, eps, beta = small(TwoLayerIWAE, k=3), data(), noise(3), 0.4
    # beta scales the density terms of the log-weight checked at beta = 1 against scipy.
    at_1, at_beta = (model.forward_pass(X, eps, b, train=False) for b in (1.0, beta))
    np.testing.assert_allclose(at_beta["log_w"],
                               at_1["log_px"] - beta * (at_1["log_px"] - at_1["log_w"]), rtol=1e-12)
    model.forward_backward(Batch(X, None, eps), beta)
    grads = {name: g.copy() for name, g in model.parameters_.grads.items()}

    def loss():
        return -float(model.bound_and_weights(model.forward_pass(X, eps, beta)["log_w"])[0].mean())
    for name in ("q_z1.logvar.b", "q_z2.mu.W", "p_z1.logvar.b", "decoder.0.b"):
        numeric = numerical_gradient(loss, model.params_[name])
        assert relative_error(grads[name], numeric) <= TOL, name


def test_the_log_weight_is_the_densities_written_out():
    """log w from scipy's densities at the codes drawn by hand; the VAE's
    loss is minus its mean, the IWAE's minus its log-mean-exp."""
    X = (data() > 0.5).astype(float)
    eps = noise(3)
    vae, iwae = small(k=3), small(TwoLayerIWAE, k=3)
    mu1, logvar1 = vae.q_z1_.forward(X)
    s1 = np.exp(0.5 * logvar1)
    z1 = mu1 + s1 * eps[..., :L1]
    mu2, logvar2 = vae.q_z2_.forward(z1.reshape(-1, L1))
    mu2, s2 = mu2.reshape(3, N, L2), np.exp(0.5 * logvar2).reshape(3, N, L2)
    z2 = mu2 + s2 * eps[..., L1:]
    mu_p, logvar_p = vae.p_z1_.forward(z2.reshape(-1, L2))
    mu_p, s_p = mu_p.reshape(3, N, L1), np.exp(0.5 * logvar_p).reshape(3, N, L1)
    probs = sigmoid(vae.decoder_.forward(z1.reshape(-1, L1))).reshape(3, N, D)
    log_w = (bernoulli.logpmf(X, probs).sum(-1) + norm.logpdf(z1, mu_p, s_p).sum(-1)
             + norm.logpdf(z2).sum(-1) - norm.logpdf(z1, mu1, s1).sum(-1)
             - norm.logpdf(z2, mu2, s2).sum(-1))
    np.testing.assert_allclose(vae.forward_pass(X, eps)["log_w"], log_w, rtol=1e-12)
    assert vae.loss(X, eps) == pytest.approx(-log_w.mean(), rel=1e-12)
    bound = np.log(np.mean(np.exp(log_w), axis=0))
    assert iwae.loss(X, eps) == pytest.approx(-bound.mean(), rel=1e-12)
    assert iwae.loss(X, eps) < vae.loss(X, eps)       # the tighter bound


def test_at_k_1_the_iwae_is_the_vae():
    X, eps = data(), noise(1)
    vae, iwae = small(k=1).loss_and_grads(X, eps), small(TwoLayerIWAE, k=1).loss_and_grads(X, eps)
    assert vae[0] == pytest.approx(iwae[0], rel=1e-14)
    for name in vae[1]:
        assert relative_error(vae[1][name], iwae[1][name]) < 1e-13, name


def test_the_papers_sizes_by_default():
    model = TwoLayerIWAE(dtype="float64").initialize(784)
    shapes = {name: p.shape for name, p in model.params_.items()}
    assert shapes["q_z1.0.W"] == (784, 100) and shapes["q_z1.mu.W"] == (100, 100)
    assert shapes["q_z2.0.W"] == (100, 50) and shapes["q_z2.logvar.W"] == (50, 50)
    assert shapes["p_z1.0.W"] == (50, 50) and shapes["p_z1.mu.W"] == (50, 100)
    assert shapes["decoder.0.W"] == (100, 100) and shapes["decoder.4.W"] == (100, 784)
    assert model.activation == "tanh" and model.k == 5 and TwoLayerVAE().k == 1


@pytest.mark.parametrize("hidden", [((100, 100), (50, 50)), ((), ()), ((7,), (3, 5))])
def test_the_memory_check_counts_every_parameter(hidden):
    # Four copies of each parameter (value, gradient, Adam's two moments).
    model = TwoLayerVAE(hidden_dims=hidden).initialize(784)
    needs = next(model.memory_needs(784, hidden, 20))[0]
    assert needs == 4 * model.parameters_.theta.size


def test_training_lowers_the_loss_and_repeats_bit_for_bit():
    X = (np.random.default_rng(0).random((60, 12)) > 0.5).astype(float)
    runs = [TwoLayerIWAE((4, 2), hidden_dims=((8,), (4,)), k=3, epochs=6, batch_size=20,
                         learning_rate=1e-2, random_state=0).fit(X) for _ in range(2)]
    history = [h["loss"] for h in runs[0].history_]
    assert history[-1] < history[0] - 0.5
    assert set(runs[0].history_[0]) == {"epoch", "loss", "recon", "kl"}
    np.testing.assert_array_equal(runs[0].parameters_.theta, runs[1].parameters_.theta)


# ------------------------------------------------- the checks catch planted bugs
def test_check_catches_z2s_noise_path_cut(monkeypatch):
    """Planted bug: no gradient through z2 = mu2 + sigma2 eps2 into q(z2|z1)."""
    original = two_layer.reparameterize_backward

    def cut(grad_z, logvar, eps):
        grad_mu, grad_logvar = original(grad_z, logvar, eps)
        if grad_z.shape[-1] == L2:
            return np.zeros_like(grad_mu), np.zeros_like(grad_logvar)
        return grad_mu, grad_logvar
    monkeypatch.setattr(two_layer, "reparameterize_backward", cut)
    for cls, k in ((TwoLayerVAE, 1), (TwoLayerIWAE, 3)):
        errors = check_model(small(cls, k=k), data(), eps=noise(k), max_entries=1000).errors
        assert errors["q_z2.mu.b"] > BIG and errors["q_z1.mu.b"] > BIG
        assert errors["decoder.2.W"] <= TOL and errors["p_z1.mu.b"] <= TOL


def test_check_catches_a_wrong_variance_gradient_of_p_z1_given_z2(monkeypatch):
    """Planted bug: p(z1|z2)'s log-variance gradient doubled."""
    original = DiagonalGaussian.backward

    def doubled(self, dout):
        grad_z, grad_mu, grad_logvar = original(self, dout)
        return grad_z, grad_mu, 2 * grad_logvar
    monkeypatch.setattr(DiagonalGaussian, "backward", doubled)
    for cls, k in ((TwoLayerVAE, 1), (TwoLayerIWAE, 3)):
        errors = check_model(small(cls, k=k), data(), eps=noise(k), max_entries=1000).errors
        assert errors["p_z1.logvar.b"] > BIG and errors["p_z1.logvar.W"] > BIG
        assert errors["p_z1.mu.b"] <= TOL and errors["decoder.2.W"] <= TOL


def test_check_catches_q_z2_fed_x_instead_of_z1():
    """Planted bug: q(z2|z1)'s network reads x (as wide as z1 here) in place
    of z1; the backward pass still sends its input gradient into z1."""
    X = data(d=L1)
    for cls, k in ((TwoLayerVAE, 1), (TwoLayerIWAE, 3)):
        model = small(cls, d=L1, k=k)
        assert check_model(model, X, eps=noise(k), max_entries=1000).max_error <= TOL
        for method in ("forward", "predict"):     # training's and loss()'s path
            original = getattr(model.q_z2_, method)
            setattr(model.q_z2_, method,
                    lambda z1, original=original: original(np.tile(X, (z1.shape[0] // N, 1))))
        errors = check_model(model, X, eps=noise(k), max_entries=1000).errors
        assert errors["q_z1.mu.b"] > BIG and errors["q_z1.logvar.b"] > BIG
        assert errors["q_z2.mu.b"] <= TOL and errors["decoder.2.W"] <= TOL


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("params, match", [
    (dict(latent_dims=(4,)), r"TwoLayerVAE.latent_dims must have 2 entries, one per "
                             r"stochastic layer \(z1, z2\), got 1.*use VAE or IWAE"),
    (dict(latent_dims=(4, 3, 2)), r"latent_dims must have 2 entries.*got 3"),
    (dict(latent_dims=4), r"TwoLayerVAE.latent_dims must be a pair of ints"),
    (dict(latent_dims=(4, 0)), r"each entry of TwoLayerVAE.latent_dims must be an integer >= 1"),
    (dict(hidden_dims=((8,),)), r"TwoLayerVAE.hidden_dims has 1 entries but latent_dims 2"),
    (dict(hidden_dims=(8, 4)), r"TwoLayerVAE.hidden_dims must be a pair of sequences of ints"),
    (dict(hidden_dims=((8,), (4, -1))), r"each width in TwoLayerVAE.hidden_dims must be"),
    (dict(gradient_estimator="dreg"), r"TwoLayerVAE.gradient_estimator='dreg' needs "
                                      r"importance weights"),
    (dict(gradient_estimator="reinforce"), r"TwoLayerVAE.gradient_estimator must be one of "
                                           r"\['standard', 'stl'\], got 'reinforce'"),
    (dict(k=0), r"TwoLayerVAE.k == 0, must be >= 1"),
])
def test_bad_hyper_parameters_are_named_at_fit(params, match):
    params = {"latent_dims": (4, 2), "hidden_dims": ((8,), (4,)), "epochs": 1, **params}
    with pytest.raises(ValueError, match=match):
        TwoLayerVAE(**params).fit(data())


def test_bad_noise_is_named():
    with pytest.raises(ValueError, match=r"eps must have shape \(k, 5, 5\)"):
        small().loss_and_grads(data(), noise(1)[..., :4])


def test_check_model_draws_noise_of_both_layers():
    report = check_model(small(TwoLayerIWAE, k=2), data())
    assert report.max_error <= TOL, str(report)

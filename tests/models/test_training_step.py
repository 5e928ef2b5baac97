"""One training step of the models against its definition: the loss it
reports is the loss it differentiates, an epoch is a loop of steps and Adam
updates, float32 tracks float64, and the parameter vector ties the layers."""
import copy

import numpy as np
import pytest

from npvae import VAE, Autoencoder
from npvae.models.base import FLAT
from npvae.core.optimizers import Adam

MODELS_FOR_LOSS = [
    (VAE, dict(beta=1.0)), (VAE, dict(beta=0.0)), (VAE, dict(beta=2.5)),
    (VAE, dict(beta=np.float16(2.0))), (VAE, dict(likelihood="gaussian", obs_var=0.5)),
    (VAE, dict(likelihood="gaussian", beta=0.5)), (Autoencoder, {}),
    (Autoencoder, dict(likelihood="gaussian")),
]


@pytest.mark.parametrize("cls, kw", MODELS_FOR_LOSS)
def test_loss_and_grads_reports_the_loss_it_differentiates(cls, kw):
    """The batch-sum path of the step and the per-example path agree."""
    rng = np.random.default_rng(1)
    X, eps = rng.random((37, 9)), rng.standard_normal((37, 2))
    model = cls(latent_dim=2, hidden_dims=(5,), dtype="float64", random_state=0, **kw)
    model.initialize(9)
    loss, _ = model.loss_and_grads(X, eps)
    assert type(loss) is float
    assert loss == pytest.approx(model.loss(X, eps), rel=1e-12)


@pytest.mark.parametrize("cls, kw", MODELS_FOR_LOSS)
def test_fit_epoch_records_the_batch_loss_and_its_terms(cls, kw):
    rng = np.random.default_rng(2)
    X = rng.random((40, 9))
    model = cls(latent_dim=2, hidden_dims=(5,), batch_size=64, dtype="float64", random_state=0,
                **kw).initialize(9)
    before = copy.deepcopy(model)
    record = model.fit_epoch(X)                  # one batch: all 40 rows, shuffled
    xb = X[before.rng_.permutation(40)]
    if cls is VAE:
        log_px, kl = before.elbo_rows(xb, None, before.rng_.standard_normal((40, 2)))
        beta = float(kw.get("beta", 1.0))
        expected = {"recon": -log_px.mean(), "kl": kl.mean()}
        expected["loss"] = expected["recon"] + beta * expected["kl"]
    else:
        recon = -before.score_samples(xb).mean()
        expected = {"recon": recon, "loss": recon}
    assert record == pytest.approx(expected, rel=1e-12)


def test_fit_epoch_equals_a_loop_of_loss_and_grads_and_adam():
    """The epoch (gathering batches into a reused buffer, a short last
    batch) does exactly what its definition says, bit for bit."""
    rng = np.random.default_rng(3)
    X = rng.random((50, 9))
    kw = dict(latent_dim=2, hidden_dims=(5,), batch_size=16, dtype="float64", random_state=7)
    fitted = VAE(**kw).initialize(9)
    fitted.fit_epoch(X)
    by_hand = VAE(**kw).initialize(9)
    perm = by_hand.rng_.permutation(50)
    for i in range(0, 50, 16):
        xb = X[perm[i:i + 16]]
        eps = by_hand.rng_.standard_normal((len(xb), 2))
        _, grads = by_hand.loss_and_grads(xb, eps)
        by_hand.optimizer_.step(by_hand.params_, grads)
    for name, p in fitted.params_.items():
        np.testing.assert_array_equal(p, by_hand.params_[name], err_msg=name)


def test_kl_warmup_weighs_the_gradient_as_it_weighs_the_reported_loss():
    """Two epochs inside a KL warm-up against a hand loop of loss_and_grads
    with the warmed beta of each batch: the same parameters and losses."""
    rng = np.random.default_rng(4)
    X = rng.random((50, 9))
    kw = dict(latent_dim=2, hidden_dims=(5,), batch_size=16, dtype="float64", random_state=7,
              beta=2.0, kl_warmup=3, epochs=5)
    fitted = VAE(**kw).initialize(9)
    fitted.fit_epoch(X)
    fitted.fit_epoch(X)
    by_hand = VAE(**kw).initialize(9)
    for epoch in range(2):
        perm, total = by_hand.rng_.permutation(50), 0.0
        for j, i in enumerate(range(0, 50, 16)):
            xb = X[perm[i:i + 16]]
            eps = by_hand.rng_.standard_normal((len(xb), 2))
            warmed = 2.0 * min(1.0, (epoch + (j + 1) / 4) / 3)
            loss, grads = by_hand.set_params(beta=warmed).loss_and_grads(xb, eps)
            by_hand.optimizer_.step(by_hand.params_, grads)
            total += loss * len(xb)
        assert fitted.history_[epoch]["loss"] == pytest.approx(total / 50, rel=1e-12)
    for name, p in fitted.params_.items():
        np.testing.assert_array_equal(p, by_hand.params_[name], err_msg=name)


def test_float32_gradients_match_float64_at_the_same_noise():
    rng = np.random.default_rng(0)
    X, eps = rng.random((64, 16)), rng.standard_normal((64, 3))
    models = {dt: VAE(latent_dim=3, hidden_dims=(20,), dtype=dt, random_state=0).initialize(16)
              for dt in ("float32", "float64")}
    loss32, g32 = models["float32"].loss_and_grads(X, eps)
    loss64, g64 = models["float64"].loss_and_grads(X, eps)
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    for name, g in g32.items():
        assert g.dtype == np.float32, name
        np.testing.assert_allclose(g, g64[name], rtol=1e-3, atol=1e-5 * np.abs(g64[name]).max(),
                                   err_msg=name)


def test_float32_training_stays_float32_and_tracks_float64():
    """float32 and float64 draw different noise, so only the losses compare."""
    X = np.random.default_rng(0).random((200, 16))
    fits = {dt: VAE(latent_dim=3, hidden_dims=(20,), epochs=3, batch_size=32,
                    dtype=dt, random_state=0).fit(X) for dt in ("float32", "float64")}
    f32, f64 = fits["float32"], fits["float64"]
    for name, p in f32.params_.items():
        assert p.dtype == np.float32, name
    assert f32.optimizer_.m[FLAT].dtype == f32.optimizer_.v[FLAT].dtype == np.float32
    x8, eps8 = X[:8].astype(np.float32), np.zeros((8, 3), np.float32)
    mu, logvar = f32.encoder_.forward(x8)
    out = f32.decoder_.forward(f32.reparameterize(mu, logvar, random_state=0))
    log_px, kl = f32.elbo_rows(x8, None, eps8)
    assert {a.dtype for a in (mu, logvar, out, log_px, kl)} == {np.dtype(np.float32)}
    for h32, h64 in zip(f32.history_, f64.history_):
        assert h32["loss"] == pytest.approx(h64["loss"], rel=0.05)


def adam_textbook(params, grads, m, v, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Adam in plain expressions, with the same folded scalars: the in-place
    passes through one scratch buffer must equal it bit for bit."""
    sqrt_c2 = np.sqrt(1.0 - b2 ** t)
    step, eps_hat = lr * sqrt_c2 / (1.0 - b1 ** t), eps * sqrt_c2
    for k, p in params.items():
        g = grads[k]
        m[k] = b1 * m[k] + (1.0 - b1) * g
        v[k] = b2 * v[k] + (1.0 - b2) * (g * g)
        p -= step * (m[k] / (np.sqrt(v[k]) + eps_hat))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_adam_equals_textbook_expressions_bit_for_bit_and_survives_replaced_moments(dtype):
    rng = np.random.default_rng(1)
    shapes = {"W": (5, 3), "b": (3,), "s": ()}           # a 0-d parameter too
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    ref = {k: p.copy() for k, p in params.items()}
    m = {k: np.zeros_like(p) for k, p in ref.items()}
    v = {k: np.zeros_like(p) for k, p in ref.items()}
    opt = Adam()
    for t in range(1, 5):
        grads = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        if t == 3:   # as a checkpoint restores them: new dicts of new arrays
            opt.m = {k: a.copy() for k, a in opt.m.items()}
            opt.v = {k: a.copy() for k, a in opt.v.items()}
        opt.step(params, grads)
        adam_textbook(ref, grads, m, v, t)
        for k in shapes:
            assert params[k].dtype == opt.m[k].dtype == dtype
            np.testing.assert_array_equal(params[k], ref[k], err_msg=f"{k} at step {t}")
            np.testing.assert_array_equal(opt.m[k], m[k])
            np.testing.assert_array_equal(opt.v[k], v[k])


def test_parameter_vector_leaves_views_the_layers_compute_with():
    from npvae.core.layers import Dense, ReLU
    from npvae.core.parameters import ParameterVector
    rng = np.random.default_rng(0)
    a, relu, b = Dense(3, 4, rng), ReLU(), Dense(4, 2, rng)
    before = {k: (a.params[k].copy(), b.params[k].copy()) for k in ("W", "b")}
    x = rng.standard_normal((5, 3))
    y0 = b.forward(relu.forward(a.forward(x)))
    vector = ParameterVector([("a.", a), ("r.", relu), ("b.", b)])
    theta, grad = vector.theta, vector.grad
    assert list(vector.params) == list(vector.grads) == ["a.W", "a.b", "b.W", "b.b"]
    assert vector.is_tied()
    assert theta.shape == grad.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    for k in ("W", "b"):
        np.testing.assert_array_equal(a.params[k], before[k][0])
        np.testing.assert_array_equal(b.params[k], before[k][1])
    np.testing.assert_array_equal(b.forward(relu.forward(a.forward(x))), y0)
    theta[:12] = 0.0                      # a.W through the vector ...
    assert not a.params["W"].any()
    b.backward(np.ones((5, 2)))           # ... and gradients into it
    np.testing.assert_array_equal(grad[-2:], [5.0, 5.0])
    with pytest.raises(TypeError, match="one dtype"):
        ParameterVector([("a.", Dense(2, 2, rng, dtype=np.float32)), ("b.", Dense(2, 2, rng))])

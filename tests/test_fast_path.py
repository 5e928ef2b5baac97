"""The training loop's fast forms against the readable reference math."""
import copy

import numpy as np
import pytest

from npvae import VAE, Autoencoder, losses
from npvae.core.fused import bernoulli_log_likelihood_fused
from npvae.models.base import FLAT
from npvae.core.optimizers import Adam
from npvae.core.layers import sigmoid

EXTREME = [-1e4, -800.0, -100.0, -30.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 30.0, 100.0, 800.0, 1e4]


def logits_and_x(dtype, seed=0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((7, len(EXTREME))) * 5).astype(dtype)
    logits[0] = EXTREME
    x = rng.random(logits.shape).astype(dtype)
    x[1] = rng.integers(0, 2, size=len(EXTREME))
    return x, logits


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_equals_the_where_form_bit_for_bit(dtype):
    _, logits = logits_and_x(dtype)
    e = np.exp(-np.abs(logits))
    where_form = np.where(logits >= 0, 1.0, e) / (1.0 + e)
    got = sigmoid(logits)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, where_form)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_fused_bernoulli_log_likelihood_equals_reference(dtype, rtol):
    x, logits = logits_and_x(dtype)
    got, none = bernoulli_log_likelihood_fused(x, logits, residual=False)
    assert none is None
    ref = losses.bernoulli_log_likelihood(x, logits)
    assert got.dtype == dtype and got.shape == (len(x),)
    assert np.isfinite(got).all()
    # The sums differ in order only: allow rounding relative to the terms' size.
    scale = np.sum(np.abs(x * logits) + np.abs(logits), axis=-1)
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * scale.max())
    np.testing.assert_allclose(got[2:], ref[2:], rtol=rtol * 10)


def test_fused_bernoulli_log_likelihood_broadcasts_like_reference():
    """Importance sampling scores (k, n, d) logits against (n, d) data."""
    x, logits = logits_and_x(np.float64)
    stacked = np.stack([logits, -logits, 0.5 * logits])
    got, residual = bernoulli_log_likelihood_fused(x, stacked)
    assert got.shape == (3, len(x)) and residual.shape == stacked.shape
    np.testing.assert_allclose(got, losses.bernoulli_log_likelihood(x, stacked), rtol=1e-12)
    np.testing.assert_array_equal(residual, losses.bernoulli_log_likelihood_backward(x, stacked))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_residual_equals_reference_gradient_bit_for_bit(dtype):
    """x - sigma(l) from the forward's exponentials is the reference
    gradient exactly, even where sigma underflows (l = -100, -800)."""
    x, logits = logits_and_x(dtype)
    logits[2, :2] = [0.0, -0.0]
    log_px, residual = bernoulli_log_likelihood_fused(x, logits)
    ref = losses.bernoulli_log_likelihood_backward(x, logits)
    assert residual.dtype == dtype and residual.shape == logits.shape
    np.testing.assert_array_equal(residual, ref)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_fused_value_sums_to_the_batch_sum_of_the_reference(dtype, tol):
    """A trained MNIST decoder's logits: each example's sums (x.l, relu(l))
    run to thousands of nats and cancel to about a hundred, so summing them
    separately loses float32's precision (2.5e-4 nats an example measured
    at n = 512); terms of one sign keep ~1e-6."""
    rng = np.random.default_rng(0)
    x = (rng.random((512, 784)) < 0.13).astype(dtype)
    logits = np.where(x == 1, rng.normal(4, 2, x.shape), rng.normal(-8, 3, x.shape)).astype(dtype)
    log_px, _ = bernoulli_log_likelihood_fused(x, logits)
    assert log_px.shape == (512,) and log_px.dtype == dtype
    ref = losses.bernoulli_log_likelihood(x.astype(np.float64), logits.astype(np.float64))
    assert abs(float(log_px.sum(dtype=np.float64)) - ref.sum()) / len(x) <= tol
    # x broadcasts against a stack of logits.
    stacked, _ = bernoulli_log_likelihood_fused(x[0], logits[:3])
    assert float(stacked.sum()) == pytest.approx(float(losses.bernoulli_log_likelihood(
        x[0].astype(np.float64), logits[:3].astype(np.float64)).sum()), rel=1e-6)


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_residual_keeps_tiny_gradients_relative(dtype):
    """Where x = 0 and l << 0 the gradient is -sigma(l), tiny but not 0:
    Adam divides by its scale, so its relative accuracy matters."""
    logits = np.array([[-10.0, -17.0, -30.0, -80.0]], dtype=dtype)
    _, residual = bernoulli_log_likelihood_fused(np.zeros_like(logits), logits)
    expected = -1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(residual, expected, rtol=4 * np.finfo(dtype).eps)


def test_fused_bernoulli_does_not_modify_its_inputs():
    x, logits = logits_and_x(np.float32)
    x0, l0 = x.copy(), logits.copy()
    bernoulli_log_likelihood_fused(x, logits, residual=False)
    bernoulli_log_likelihood_fused(x, logits)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(logits, l0)


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

"""The Bernoulli likelihood: its fused form against the textbook one (at
extreme logits, bit for bit for the gradient, in float32 and float64), and
the likelihood piece's per-row contract."""
import numpy as np
import pytest
from scipy import stats

from npvae import losses
from npvae.core.gradcheck import check_gradient
from npvae.core.fused import bernoulli_log_likelihood_fused
from npvae.core.layers import sigmoid
from npvae.core.likelihoods import Bernoulli

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


def test_bernoulli_piece_equals_the_textbook_functions():
    rng = np.random.default_rng(0)
    x, logits = rng.random((7, 6)), 3 * rng.standard_normal((7, 6))
    piece = Bernoulli()
    rows = piece.forward(x, logits)
    dout = np.linspace(-1, 1, len(x))        # one weight per row
    grad = piece.backward(dout)
    assert rows.shape == (len(x),)
    np.testing.assert_allclose(rows, losses.bernoulli_log_likelihood(x, logits), rtol=1e-14)
    np.testing.assert_allclose(grad, dout[:, None] * losses.bernoulli_log_likelihood_backward(
        x, logits), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(piece.log_prob(x, logits),
                               losses.bernoulli_log_likelihood(x, logits), rtol=1e-13)
    np.testing.assert_allclose(piece.mean(logits), 1 / (1 + np.exp(-logits)), rtol=1e-14)


def test_bernoulli_log_likelihood_is_the_bernoulli_log_pmf():
    r = np.random.default_rng(0)
    x = r.integers(0, 2, size=(4, 6)).astype(float)
    logits = 4 * r.standard_normal((4, 6))
    expected = stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).sum(axis=1)
    np.testing.assert_allclose(losses.bernoulli_log_likelihood(x, logits), expected, rtol=1e-12)


def test_bernoulli_wrt_logits():
    r = np.random.default_rng(0)
    x = r.uniform(size=(5, 6))
    x[0] = r.integers(0, 2, size=6)
    logits = 3 * r.standard_normal((5, 6))
    err = check_gradient(lambda: np.sum(losses.bernoulli_log_likelihood(x, logits)),
                         logits, losses.bernoulli_log_likelihood_backward(x, logits))
    assert err <= 1e-7


def test_bernoulli_saturated_logits_are_exact_not_minus_inf():
    x = np.array([[1.0, 0.0, 1.0, 0.0]], dtype=np.float32)
    logits = np.array([[-1e4, 1e4, 1e4, -1e4]], dtype=np.float32)
    # log sigmoid(-1e4) = -1e4 to float precision; log(sigmoid) would give -inf.
    assert losses.bernoulli_log_likelihood(x, logits)[0] == pytest.approx(-2e4, rel=1e-7)

"""Every fused form of the training step equals its textbook twin: one test
walks npvae.core.fused.TWINS, in float64, to 1e-12 relative."""
import numpy as np
import pytest

from npvae.core import fused

EXTREME = [-800.0, -30.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 30.0, 800.0]


def bernoulli_arguments(rng):
    logits = 5 * rng.standard_normal((6, len(EXTREME)))
    logits[0] = EXTREME
    x = rng.random(logits.shape)
    x[1] = rng.integers(0, 2, size=len(EXTREME))
    return (x, logits), {}


def adam_arguments(rng):
    theta, g = rng.standard_normal(7), rng.standard_normal(7)
    m, v = rng.standard_normal(7), rng.random(7)
    return (theta, g, m, v, 5), {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6}


def bernoulli_broadcast_arguments(rng):
    # Data of shape (b, d) against logits of shape (c, b, d), as the
    # importance-weighted estimate scores its samples.
    (x, logits), _ = bernoulli_arguments(rng)
    return (x, np.stack([logits, -logits, 0.5 * logits])), {}


# The arguments each pair is called with, by the fused form's name.
ARGUMENTS = {
    "bernoulli_log_likelihood_fused": bernoulli_arguments,
    "_bernoulli_scored_in_place": bernoulli_broadcast_arguments,
    "column_sums": lambda rng: ((rng.standard_normal((33, 5)),), {}),
    # Terms of one sign, as the likelihoods sum them; rows of a 3-D stack.
    "row_sums": lambda rng: ((-rng.random((4, 3, 50)),), {}),
    "_adam_step": adam_arguments,
}


def test_every_twin_has_arguments():
    assert sorted(ARGUMENTS) == sorted(f.__name__ for f, _ in fused.TWINS)


@pytest.mark.parametrize("fast, textbook", fused.TWINS, ids=[f.__name__ for f, _ in fused.TWINS])
def test_fused_form_equals_its_textbook_twin(fast, textbook):
    args, kwargs = ARGUMENTS[fast.__name__](np.random.default_rng(0))
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    got, expected = fast(*args, **kwargs), textbook(*copies, **kwargs)
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=0)
    # Neither read-only input was written.
    for a, c in zip(args, copies):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, c)


def test_the_walk_catches_a_planted_difference():
    # A fused form that drops a term: the check above must fail on it.
    fast, textbook = fused.TWINS[0]
    args, _ = bernoulli_arguments(np.random.default_rng(0))
    value, residual = fast(*args)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(value + 1e-9 * np.abs(value), textbook(*args)[0],
                                   rtol=1e-12, atol=0)
    np.testing.assert_allclose(value, textbook(*args)[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_scored_in_place_leaves_what_it_documents(dtype):
    # In place: the same bits as the scoring that allocates, log(1 + e^-|l|)
    # left in the logits, the data untouched.
    (x, logits), _ = bernoulli_broadcast_arguments(np.random.default_rng(1))
    x, logits = x.astype(dtype), logits.astype(dtype)
    x_before, work = x.copy(), logits.copy()
    value, residual = fused.bernoulli_log_likelihood_fused(x, work, residual=False,
                                                           overwrite_logits=True)
    assert residual is None and value.shape == logits.shape[:-1]
    np.testing.assert_array_equal(
        value, fused.bernoulli_log_likelihood_fused(x, logits, residual=False)[0])
    np.testing.assert_array_equal(work, np.log(1 + np.exp(-np.abs(logits))))
    np.testing.assert_array_equal(x, x_before)
    # Without overwrite_logits the logits are read only.
    kept = logits.copy()
    fused.bernoulli_log_likelihood_fused(x, kept, residual=False)
    np.testing.assert_array_equal(kept, logits)


def test_bernoulli_in_place_needs_no_residual():
    x, logits = np.ones((2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match="residual=False"):
        fused.bernoulli_log_likelihood_fused(x, logits, overwrite_logits=True)
    np.testing.assert_array_equal(logits, 0.0)

"""Optimizers against updates computed by hand, step by step."""
import math

import numpy as np
import pytest

from npvae.core.optimizers import SGD, Adam, adam_step_textbook, learning_rate_at

P0 = [1.0, -2.0, 0.5]
GRADS = [[0.3, -1.0, 2.0], [-0.1, 0.5, 2.0], [0.2, 0.0, -4.0]]


def run(optimizer, dtype=np.float64, steps=3):
    """Apply ``steps`` updates to a live array; return it and every state."""
    p = np.array(P0, dtype=dtype)
    params = {"w": p}
    states = []
    for g in GRADS[:steps]:
        optimizer.step(params, {"w": np.array(g, dtype=dtype)})
        assert params["w"] is p  # updated in place, never rebound
        states.append(p.copy())
    return p, states


def test_sgd_without_momentum():
    _, states = run(SGD(learning_rate=0.1))
    p = np.array(P0)
    for g, got in zip(GRADS, states):
        p = p - 0.1 * np.array(g)
        np.testing.assert_allclose(got, p, rtol=1e-15, atol=1e-15)


def test_sgd_with_momentum():
    _, states = run(SGD(learning_rate=0.1, momentum=0.9))
    g1, g2, g3 = (np.array(g) for g in GRADS)
    v1 = g1
    v2 = 0.9 * v1 + g2
    v3 = 0.9 * v2 + g3
    expected = [np.array(P0) - 0.1 * v1]
    expected.append(expected[-1] - 0.1 * v2)
    expected.append(expected[-1] - 0.1 * v3)
    np.testing.assert_allclose(states, expected, rtol=1e-14, atol=1e-15)


def adam_by_hand(lr, b1, b2, eps, steps=3):
    p, m, v = np.array(P0), np.zeros(3), np.zeros(3)
    out = []
    for t, g in enumerate(GRADS[:steps], start=1):
        g = np.array(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_adam_matches_hand_computation(eps):
    """A large eps makes its place (after the square root) matter."""
    opt = Adam(learning_rate=0.01, beta1=0.8, beta2=0.95, eps=eps)
    _, states = run(opt)
    np.testing.assert_allclose(states, adam_by_hand(0.01, 0.8, 0.95, eps), rtol=1e-13)
    assert opt.t == 3 and set(opt.m) == set(opt.v) == {"w"}


@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_textbook_adam_in_the_package_matches_the_hand_computation(eps):
    p, m, v = np.array(P0), np.zeros(3), np.zeros(3)
    expected = adam_by_hand(0.01, 0.8, 0.95, eps)
    for t, g in enumerate(GRADS, start=1):
        p, m, v = adam_step_textbook(p, np.array(g), m, v, t, 0.01, 0.8, 0.95, eps)
        np.testing.assert_allclose(p, expected[t - 1], rtol=1e-15)


def test_in_place_adam_on_one_vector_equals_the_textbook_step():
    """What training runs (Adam.step, in place, bias corrections folded into
    two scalars) against the textbook form, over many steps in float64."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(1000)
    ref, m, v = theta.copy(), np.zeros(1000), np.zeros(1000)
    opt = Adam(learning_rate=0.01, beta1=0.8, beta2=0.95, eps=1e-3)
    for t in range(1, 31):
        g = rng.standard_normal(1000) * 10.0 ** rng.integers(-4, 3)
        opt.step({"theta": theta}, {"theta": g})
        ref, m, v = adam_step_textbook(ref, g, m, v, t, 0.01, 0.8, 0.95, 1e-3)
        np.testing.assert_allclose(theta, ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(opt.m["theta"], m, rtol=1e-13)
        np.testing.assert_allclose(opt.v["theta"], v, rtol=1e-13)


def test_adam_first_step_is_learning_rate_times_sign():
    """Bias correction: after one step m_hat = g and sqrt(v_hat) = |g|."""
    p, _ = run(Adam(learning_rate=0.01), steps=1)
    np.testing.assert_allclose(np.array(P0) - p, 0.01 * np.sign(GRADS[0]), rtol=1e-6)


def test_adam_eps_inside_the_square_root_would_differ():
    """The test above can tell where eps goes: the other place differs."""
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 0.5
    p, m, v = np.array(P0), np.zeros(3), np.zeros(3)
    g = np.array(GRADS[0])
    m, v = (1 - b1) * g, (1 - b2) * g * g
    inside = p - lr * (m / (1 - b1)) / np.sqrt(v / (1 - b2) + eps)
    assert not np.allclose(inside, adam_by_hand(lr, b1, b2, eps, steps=1)[0], rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: Adam(learning_rate=0.01),
                                  lambda: SGD(learning_rate=0.1),
                                  lambda: SGD(learning_rate=0.1, momentum=0.9)])
def test_float32_stays_float32(make):
    opt = make()
    p32, states32 = run(opt, dtype=np.float32)
    assert p32.dtype == np.float32
    for state in (getattr(opt, "m", {}), getattr(opt, "v", {}), getattr(opt, "velocity", {})):
        assert all(s.dtype == np.float32 for s in state.values())
    _, states64 = run(make(), dtype=np.float64)
    np.testing.assert_allclose(states32, states64, rtol=1e-5, atol=1e-6)


def test_adam_updates_every_parameter_of_the_dict():
    params = {"a": np.ones(2), "b": np.ones((2, 2))}
    Adam(learning_rate=0.1).step(params, {"a": np.ones(2), "b": -np.ones((2, 2))})
    np.testing.assert_allclose(params["a"], 0.9)
    np.testing.assert_allclose(params["b"], 1.1)


@pytest.mark.parametrize("bad", [0, -1e-3, float("nan"), float("inf"), True, "0.1"])
@pytest.mark.parametrize("cls", [SGD, Adam])
def test_invalid_learning_rate(cls, bad):
    with pytest.raises(ValueError, match="learning_rate must be a positive finite number"):
        cls(learning_rate=bad)


@pytest.mark.parametrize("kwargs, match", [
    ({"beta1": 1.0}, "beta1"), ({"beta2": -0.1}, "beta2"), ({"eps": 0.0}, "eps"),
])
def test_invalid_adam_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam(**kwargs)


def test_invalid_momentum():
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.0)


def test_constant_schedule():
    for p in (0.0, 0.3, 1.0, 2.0):
        assert learning_rate_at(0.01, "constant", p) == 0.01


def test_cosine_schedule():
    assert learning_rate_at(0.01, "cosine", 0.0) == pytest.approx(0.01)
    assert learning_rate_at(0.01, "cosine", 0.5) == pytest.approx(0.005)
    assert learning_rate_at(0.01, "cosine", 0.25) == pytest.approx(
        0.01 * (1 + math.cos(math.pi / 4)) / 2)
    assert learning_rate_at(0.01, "cosine", 1.0) == pytest.approx(0.0, abs=1e-18)
    assert learning_rate_at(0.01, "cosine", 1.5) == pytest.approx(0.0, abs=1e-18)
    rates = [learning_rate_at(1.0, "cosine", p) for p in np.linspace(0, 1, 11)]
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_unknown_schedule():
    with pytest.raises(ValueError, match="lr_schedule must be 'constant' or 'cosine'"):
        learning_rate_at(0.01, "step", 0.5)

"""The likelihood pieces (npvae.core.likelihoods) against the textbook
functions of npvae.core.losses and central differences, with one weight per
row as their contract says (the Bernoulli's own file: test_bernoulli.py)."""
import numpy as np
import pytest

from npvae import losses
from npvae.core.gradcheck import numerical_gradient, relative_error
from npvae.core.likelihoods import Bernoulli, Gaussian, make_likelihood

TOL = 1e-7


def batch(seed=0, n=7, d=6):
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), 3 * rng.standard_normal((n, d))


@pytest.mark.parametrize("obs_var", [None, 0.3])
def test_gaussian_piece_equals_the_textbook_functions(obs_var):
    x, mean = batch(1)
    piece = Gaussian(obs_var=obs_var)
    if obs_var is None:
        piece.params["obs_logvar"][...] = -0.7
    logvar = -0.7 if obs_var is None else np.log(obs_var)
    rows = piece.forward(x, mean)
    grad = piece.backward(np.full(len(x), 0.5))
    np.testing.assert_allclose(rows, losses.gaussian_log_likelihood(x, mean, logvar), rtol=1e-14)
    g_mean, g_logvar = losses.gaussian_log_likelihood_backward(x, mean, logvar)
    np.testing.assert_allclose(grad, 0.5 * g_mean, rtol=1e-14)
    if obs_var is None:
        assert piece.grads["obs_logvar"] == pytest.approx(0.5 * g_logvar, rel=1e-14)
    else:
        assert piece.params == piece.grads == {}    # nothing to learn


def test_learned_noise_gradient_by_central_differences():
    x, mean = batch(2)
    piece = Gaussian()

    def total():
        return piece.forward(x, mean).sum()
    total()
    piece.backward(np.ones(len(x)))
    analytic = piece.grads["obs_logvar"].copy()
    numeric = numerical_gradient(total, piece.params["obs_logvar"])
    assert relative_error(analytic, numeric) <= TOL


@pytest.mark.parametrize("cls", [Bernoulli, Gaussian])
def test_likelihood_backward_by_central_differences(cls):
    x, out = batch(3)
    piece = cls()
    dout = np.linspace(-1, 1, len(x))
    piece.forward(x, out)
    analytic = piece.backward(dout)
    numeric = numerical_gradient(lambda: dout @ piece.forward(x, out), out)
    assert relative_error(analytic, numeric) <= TOL


def test_make_likelihood_names_the_choices():
    assert isinstance(make_likelihood("gaussian", np.float32, 0.5), Gaussian)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'; choose one of"):
        make_likelihood("poisson", np.float64)




@pytest.mark.parametrize("name", ["bernoulli", "gaussian", "continuous_bernoulli"])
def test_log_prob_may_overwrite_only_what_the_caller_gives_up(name):
    # overwrite=True: the same values; only the Bernoulli works in its
    # logits (leaving log(1 + e^-|l|)), the others leave them; x is never written.
    x, out = batch(4)
    piece = make_likelihood(name, np.float64)
    x_before, kept = x.copy(), out.copy()
    expected = piece.log_prob(x, out)
    np.testing.assert_array_equal(out, kept)
    np.testing.assert_array_equal(piece.log_prob(x, out, overwrite=True), expected)
    np.testing.assert_array_equal(x, x_before)
    if name == "bernoulli":
        np.testing.assert_array_equal(out, np.log(1 + np.exp(-np.abs(kept))))
    else:
        np.testing.assert_array_equal(out, kept)

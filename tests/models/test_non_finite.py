"""No silent NaN or inf from the API: a clear error naming what is not
finite, and for a first step that is not finite, an error that blames the
data or the hyper-parameters rather than the learning rate."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from npvae import VAE, Autoencoder

X = load_digits().data[:200] / 16


@pytest.fixture(scope="module")
def gaussian():
    return VAE(likelihood="gaussian", hidden_dims=(16,), epochs=2, random_state=0).fit(X)


def test_score_of_inputs_far_outside_the_data_is_an_error_not_nan(gaussian):
    assert np.isfinite(gaussian.score(X))
    with pytest.raises(ValueError, match=r"log p\(x\|z\) is not finite .*overflowed"):
        gaussian.score(X * 1e10)


def test_autoencoder_score_samples_is_never_silently_nan():
    ae = Autoencoder(likelihood="gaussian", hidden_dims=(16,), epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="not finite"):
        ae.score_samples(X * 1e30)


def test_decode_of_huge_codes_is_an_error_not_inf(gaussian):
    with pytest.raises(ValueError, match=r"decode\(Z\) is not finite"):
        gaussian.decode(np.full((2, 2), 3e38))


@pytest.mark.parametrize("mu, logvar, match", [
    (np.zeros((2, 2)), np.full((2, 2), 1e4), r"reparameterize\(mu, logvar\) is not finite"),
    (np.zeros((2, 2)), np.zeros((3, 2)), "mu and logvar must have the same shape"),
    (np.full((2, 2), np.nan), np.zeros((2, 2)), "contains NaN or infinity"),
    (np.zeros((2, 3)), np.zeros((2, 3)), r"must have shape \(n_samples, 2\)"),
])
def test_reparameterize_checks_its_inputs(gaussian, mu, logvar, match):
    with pytest.raises(ValueError, match=match):
        gaussian.reparameterize(mu, logvar, random_state=0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_score_after_a_caught_divergence_is_an_error_not_nan():
    model = VAE(learning_rate=10, epochs=5, random_state=0)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(X)
    with pytest.raises(ValueError, match="not finite"):
        model.score(X)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("kwargs, data, match", [
    ({"likelihood": "gaussian", "obs_var": 1e-45}, X, r"the loss is inf \(recon inf"),
    ({"likelihood": "gaussian"}, X * 1e30, r"largest \|x\| in the batch 1e\+30"),
    ({"beta": 1e308}, X, "the gradient of"),
])
def test_a_first_step_that_is_not_finite_blames_the_data_or_settings(kwargs, data, match):
    with pytest.raises(FloatingPointError, match="first training step is not finite") as err:
        VAE(epochs=1, random_state=0, **kwargs).fit(data)
    assert "learning_rate" not in str(err.value)
    assert err.match(match)

"""A ``MinMaxScaler`` in front of a Bernoulli VAE, exactly as the README
says: a default scaler serves ``fit`` and ``transform`` (a classifier on the
codes), ``score`` on unseen rows needs ``MinMaxScaler(clip=True)``, and the
error a default scaler leads to names that fix."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from npvae import VAE


@pytest.fixture(scope="module")
def raw_digits():
    from sklearn.datasets import load_digits
    return load_digits(return_X_y=True)           # pixels 0 to 16


def small_vae():
    return VAE(latent_dim=4, hidden_dims=(32,), epochs=5, batch_size=64, random_state=0)


def test_a_default_scaler_serves_a_classifier_on_the_codes(raw_digits):
    X, y = raw_digits
    pipe = make_pipeline(MinMaxScaler(), small_vae(), LogisticRegression(max_iter=500))
    accuracy = pipe.fit(X[:1500], y[:1500]).score(X[1500:], y[1500:])
    assert accuracy > 0.3          # ten classes: chance is 0.1


def test_scoring_unseen_rows_needs_a_clipping_scaler(raw_digits):
    X, _ = raw_digits
    default = make_pipeline(MinMaxScaler(), small_vae()).fit(X[:1500])
    assert MinMaxScaler().fit(X[:1500]).transform(X[1500:]).max() > 1   # why it fails
    with pytest.raises(ValueError, match=r"needs X in \[0, 1\].*MinMaxScaler\(clip=True\)"):
        default.score(X[1500:])
    clipped = make_pipeline(MinMaxScaler(clip=True), small_vae()).fit(X[:1500])
    assert np.isfinite(clipped.score(X[1500:]))
    # The same model as the default pipeline's: only the scaling of unseen rows differs.
    np.testing.assert_array_equal(clipped.transform(X[:1500]), default.transform(X[:1500]))


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli"])
def test_the_error_outside_the_unit_interval_names_the_clipping_scaler(likelihood, digits):
    vae = VAE(likelihood=likelihood, latent_dim=2, hidden_dims=(8,), epochs=1,
              random_state=0).fit(digits[0][:200])
    with pytest.raises(ValueError, match=r"got values in \[0, 1\.5\].*MinMaxScaler\(clip=True\)"):
        vae.score(digits[0][:10] * 1.5)

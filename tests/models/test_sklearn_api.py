"""VAE and Autoencoder as scikit-learn citizens: parameters, clone,
pipelines, grid search and fitted attributes (scikit-learn's own estimator
checks: tests/models/test_sklearn_checks.py; NotFittedError: tests/models/test_bad_input.py)."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from npvae import VAE, Autoencoder

MODELS = (VAE, Autoencoder)


@pytest.fixture(scope="module")
def digits(digits):
    """The first 600 of the shared digits (conftest.py), in [0, 1]."""
    X, y = digits
    return X[:600], y[:600]


@pytest.mark.parametrize("cls", MODELS)
def test_get_set_params_and_clone(cls):
    model = cls(latent_dim=3, hidden_dims=(16, 8), epochs=1, random_state=4)
    params = model.get_params()
    assert params["latent_dim"] == 3 and params["hidden_dims"] == (16, 8)
    assert model.set_params(latent_dim=5, learning_rate=0.01) is model
    assert model.latent_dim == 5 and model.learning_rate == 0.01
    model.fit(np.random.default_rng(0).random((20, 6)))
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    assert not hasattr(twin, "params_")  # a clone is unfitted
    with pytest.raises(ValueError, match="Invalid parameter"):
        model.set_params(no_such_thing=1)


@pytest.mark.parametrize("cls", MODELS)
def test_fitted_attributes_end_in_underscore(cls):
    model = cls(latent_dim=2, hidden_dims=(8,), epochs=1, random_state=0)
    before = set(vars(model))
    model.fit(np.random.default_rng(0).random((20, 6)))
    public_new = {k for k in set(vars(model)) - before if not k.startswith("_")}
    assert public_new >= {"params_", "n_features_in_", "n_iter_", "history_",
                          "optimizer_", "rng_"}
    assert all(k.endswith("_") for k in public_new), public_new
    assert set(vars(model)) & set(model.get_params()) == before  # hyper-params untouched


@pytest.mark.parametrize("cls", MODELS)
def test_pipeline_scaler_model_classifier(cls, digits):
    X, y = digits
    pipe = make_pipeline(MinMaxScaler(clip=True), cls(latent_dim=8, hidden_dims=(64,), epochs=30,
                                             batch_size=32, learning_rate=3e-3,
                                             random_state=0),
                         LogisticRegression(max_iter=1000))
    # clip=True: a pixel blank in every training image would otherwise scale
    # past 1 on new data, which the Bernoulli likelihood refuses.
    pipe.fit(X[:400], y[:400])
    # Ten classes: chance is 10 %; codes that kept the digits' identity do far better.
    assert pipe.score(X[400:], y[400:]) > 0.7
    codes = pipe[:-1].transform(X[400:])
    assert codes.shape == (200, 8)


def test_grid_search_over_latent_dim_uses_the_elbo(digits):
    X = digits[0]
    search = GridSearchCV(VAE(hidden_dims=(32,), epochs=30, batch_size=32, learning_rate=3e-3,
                              random_state=0),
                          {"latent_dim": [1, 6]}, cv=2).fit(X)
    scores = search.cv_results_["mean_test_score"]
    # score is the held-out ELBO in nats: finite, negative for Bernoulli pixels,
    # and one latent dimension cannot hold a digit as well as six.
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)
    assert search.best_params_ == {"latent_dim": 6}
    assert scores[1] > scores[0] + 0.5
    assert search.best_estimator_.n_features_in_ == 64


def test_grid_search_over_a_default_minmax_scaler_and_a_bernoulli_vae(digits):
    """Test folds scaled by the training folds' range fall outside [0, 1]:
    transform must take them (only the likelihood needs [0, 1])."""
    X, y = digits
    pipe = make_pipeline(MinMaxScaler(), VAE(hidden_dims=(16,), epochs=3, random_state=0),
                         LogisticRegression(max_iter=300))
    search = GridSearchCV(pipe, {"vae__latent_dim": [2, 4]}, cv=3, error_score="raise")
    search.fit(X, y)
    assert search.best_score_ > 0.3
    outside = MinMaxScaler().fit(X[:100]).transform(X[100:])
    assert outside.min() < 0 or outside.max() > 1
    vae = search.best_estimator_[1]
    assert np.isfinite(vae.transform(outside)).all()
    with pytest.raises(ValueError, match=r"Bernoulli likelihood needs X in \[0, 1\]"):
        vae.score(outside)


@pytest.mark.parametrize("cls", MODELS)
def test_a_rows_score_does_not_depend_on_the_other_rows(digits, cls):
    X = digits[0][:50]
    model = cls(latent_dim=2, hidden_dims=(8,), epochs=2, random_state=0).fit(X)
    together = model.score_samples(X)
    alone = np.array([model.score_samples(X[i:i + 1])[0] for i in range(5)])
    # Equal up to float32 rounding: BLAS rounds a product of 1 row and of
    # 50 differently (a different noise would differ by nats).
    np.testing.assert_allclose(alone, together[:5], rtol=1e-6)
    np.testing.assert_allclose(model.score_samples(X[::-1])[::-1], together, rtol=1e-6)

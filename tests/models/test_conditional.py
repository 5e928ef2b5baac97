"""The conditional VAE (npvae.models.conditional): the join and its split checked
by central differences, every parameter checked through train_step, a
planted bug in the split caught, the known answer on the digits (a
classifier of real digits recognises each class in the model's samples),
the label handling, scikit-learn's checks and checkpoints."""
import copy
import pickle

import numpy as np
import pytest
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from npvae import ConditionalVAE, VAE
from npvae.app.checkpoints import load_checkpoint
from npvae.core.layers import Join
from npvae.app.datasets import load_dataset
from npvae.core.gradcheck import check_gradient, check_model
from conftest import metadata_of, rewrite_checkpoint

TOL = 1e-7
BIG = 1e-2
RNG = np.random.default_rng(0)
X = RNG.random((40, 12))
Y = np.array(["cat", "dog", "emu"] * 13 + ["cat"])   # any labels scikit-learn accepts


class WithLabels:
    """What npvae.core.gradcheck.check_model needs, ``loss(X, eps)`` and
    ``loss_and_grads(X, eps)``, for a conditional VAE with fixed labels."""

    def __init__(self, model, y):
        self.model, self.y = model, y
        self.params_, self.dtype, self.latent_dim = model.params_, model.dtype, model.latent_dim

    def loss(self, X, eps):
        return self.model.loss(X, eps, y=self.y)

    def loss_and_grads(self, X, eps):
        return self.model.loss_and_grads(X, eps, y=self.y)


def small_cvae(**kw):
    kw = {"latent_dim": 2, "hidden_dims": (6,), "activation": "tanh",
          "dtype": "float64", "random_state": 0, **kw}
    return ConditionalVAE(**kw)


def checked(model, x=X[:16], y=Y[:16]):
    model.initialize(x.shape[1], classes=np.unique(Y))
    if model.likelihood == "gaussian":      # a learned noise variance away from its start
        model.params_["obs_logvar"][...] = -0.7
    # Every entry, the label's rows of the first layers' weights among them.
    return check_model(WithLabels(model, y), x, max_entries=100)


# ------------------------------------------------------------ gradients
def test_join_backward_is_the_split_of_the_columns():
    a, e = RNG.standard_normal((5, 3)), np.eye(4)[[0, 3, 1, 1, 2]]
    R = RNG.standard_normal((5, 7))
    join = Join()
    joined = join.forward(a, e)
    np.testing.assert_array_equal(joined, np.concatenate([a, e], axis=1))
    grad_a = join.backward(R)
    assert check_gradient(lambda: np.sum(R * Join().forward(a, e)), a, grad_a) <= TOL
    # The IWAE's k codes per row share the row's label.
    codes, R3 = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 5, 7))
    join = Join()
    np.testing.assert_array_equal(join.forward(codes, e)[1], np.concatenate([codes[1], e], 1))
    assert check_gradient(lambda: np.sum(R3 * Join().forward(codes, e)), codes,
                          join.backward(R3)) <= TOL
    # No label: the identity, both ways.
    assert Join().forward(a) is a and Join().backward(R) is R


@pytest.mark.parametrize("kw", [
    {},
    {"likelihood": "gaussian"},                          # learned obs_logvar too
    {"hidden_dims": ()},                                 # linear: the join feeds the heads
    {"hidden_dims": (5, 4), "beta": 0.5},
    {"prior": "mixture", "n_components": 3},             # the KL's gradient through z
])
def test_every_parameter_passes_the_central_difference_check(kw):
    report = checked(small_cvae(**kw))
    assert all(n == np.prod(shape) for _, shape, n, _ in report.rows)
    assert report.max_error <= TOL, str(report)


def test_first_layers_take_the_label_columns():
    model = small_cvae(hidden_dims=(6,)).initialize(12, classes=["a", "b"])
    # One-hot even for two classes: two columns, not one.
    assert model.params_["encoder.0.W"].shape == (12 + 2, 6)
    assert model.params_["decoder.0.W"].shape == (2 + 2, 6)
    linear = small_cvae(hidden_dims=()).initialize(12, classes=[1, 2, 3])
    assert linear.params_["mu.W"].shape == (12 + 3, 2)
    assert linear.params_["decoder.0.W"].shape == (2 + 3, 12)


def test_check_catches_a_split_that_takes_the_wrong_columns(monkeypatch):
    # The label's columns passed on as dL/dz: a plausible slip.
    monkeypatch.setattr(Join, "backward", lambda self, g: g[..., -self._width:])
    errors = checked(small_cvae()).errors
    assert errors["mu.b"] > BIG and errors["logvar.b"] > BIG
    assert errors["decoder.0.W"] <= TOL      # the decoder's own gradients are untouched


def test_train_step_loss_is_the_row_by_row_loss():
    model = small_cvae(beta=0.3).initialize(12, classes=np.unique(Y))
    eps = RNG.standard_normal((40, 2))
    loss, _ = model.loss_and_grads(X, eps, y=Y)
    assert loss == pytest.approx(model.loss(X, eps, y=Y), rel=1e-12)
    log_px, kl = model.elbo_rows(X, model.onehot(Y, 40), eps)
    assert loss == pytest.approx(np.mean(-log_px + 0.3 * kl), rel=1e-12)


# ------------------------------------------------------------ known answer
@pytest.fixture(scope="module")
def digits_dataset():
    """The digits in [0, 1] with npvae.app.datasets' fixed train/test split."""
    return load_dataset("digits")


def test_samples_of_each_class_are_recognised_as_that_class(digits_dataset):
    """A classifier of real digits labels the model's samples of each class
    as that class at least 90 % of the time (about 1.5 s)."""
    digits = digits_dataset
    clf = LogisticRegression(max_iter=2000).fit(digits.X_train, digits.y_train)
    assert clf.score(digits.X_test, digits.y_test) > 0.95
    model = ConditionalVAE(latent_dim=4, hidden_dims=(64,), epochs=60, learning_rate=3e-3,
                           batch_size=64, random_state=0).fit(digits.X_train, digits.y_train)
    for c in model.classes_:
        samples = model.sample(200, c, random_state=int(c))
        assert np.mean(clf.predict(samples) == c) >= 0.9, c
    # The label does the work: the same codes decoded as another class
    # are recognised as that class.
    codes = model.transform(digits.X_test[:100], digits.y_test[:100])
    other = (digits.y_test[:100] + 1) % 10
    assert np.mean(clf.predict(model.decode(codes, other)) == other) >= 0.9
    # and the conditional bound beats a VAE's unconditional one of the same size.
    vae = VAE(latent_dim=4, hidden_dims=(64,), epochs=60, learning_rate=3e-3,
              batch_size=64, random_state=0).fit(digits.X_train)
    assert model.score(digits.X_test, digits.y_test) > vae.score(digits.X_test)


# ------------------------------------------------------------ labels
@pytest.fixture(scope="module")
def fitted():
    return ConditionalVAE(latent_dim=2, hidden_dims=(8,), epochs=2, batch_size=16,
                          random_state=0).fit(X, Y)


def test_classes_are_the_labels_seen(fitted):
    assert fitted.classes_.tolist() == ["cat", "dog", "emu"]
    assert fitted.onehot(["emu", "cat"], 2).tolist() == [[0, 0, 1], [1, 0, 0]]
    model = ConditionalVAE(hidden_dims=(4,), epochs=1).fit(X, np.where(Y == "cat", 7, -1))
    assert model.classes_.tolist() == [-1, 7] and model.encode(X, 7)[0].shape == (40, 2)


@pytest.mark.parametrize("call", [
    lambda m: m.transform(X[:2], ["cat", "cow"]),
    lambda m: m.encode(X[:2], ["cow", "cow"]),
    lambda m: m.decode(np.zeros((2, 2)), "cow"),
    lambda m: m.sample(2, ["cat", "cow"]),
    lambda m: m.score(X[:2], ["cow", "dog"]),
    lambda m: m.fit_epoch(X[:2], ["cow", "dog"]),
])
def test_an_unknown_label_is_a_clear_error_naming_it(fitted, call):
    with pytest.raises(ValueError, match=r"not fitted on: 'cow'; its classes_ are \['cat'"):
        call(fitted)


@pytest.mark.parametrize("call", [
    lambda m: m.fit(X),
    lambda m: m.transform(X),
    lambda m: m.decode(np.zeros((2, 2))),
    lambda m: m.sample(3),
    lambda m: m.score_samples(X),
])
def test_missing_labels_are_a_clear_error(fitted, call):
    with pytest.raises(ValueError, match="requires y to be passed"):
        call(copy.deepcopy(fitted))


def test_label_counts_and_types_are_checked(fitted):
    with pytest.raises(ValueError, match="y has 3 labels, but there are 2 rows"):
        fitted.sample(2, ["cat", "dog", "emu"])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        ConditionalVAE().fit(X, Y[:5])
    with pytest.raises(ValueError, match="Unknown label type"):
        ConditionalVAE().fit(X, RNG.random(40))            # continuous: not classes
    with pytest.raises(ValueError, match="needs classes"):
        ConditionalVAE().initialize(12)
    with pytest.raises(ValueError, match="distinct"):
        ConditionalVAE().initialize(12, classes=[1, 1, 2])


def test_no_silent_inf_or_nan():
    model = ConditionalVAE(likelihood="gaussian", hidden_dims=(8,), epochs=2,
                           random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match=r"decode\(Z, y\) is not finite"):
        model.decode(np.full((2, 2), 3e38), "cat")
    with pytest.raises(ValueError, match=r"log p\(x\|z,y\) is not finite"):
        model.score(X * 1e10, Y)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_step_that_is_not_finite_is_refused_naming_its_terms():
    with pytest.raises(FloatingPointError, match=r"first training step .* \(recon inf"):
        ConditionalVAE(likelihood="gaussian", obs_var=1e-45, epochs=1).fit(X, Y)
    model = ConditionalVAE(learning_rate=10, epochs=5, random_state=0)
    with pytest.raises(FloatingPointError, match="diverged at epoch"):
        model.fit(X, Y)


def test_sample_takes_one_label_or_one_per_sample(fitted):
    one = fitted.sample(3, "dog", random_state=1)
    each = fitted.sample(3, ["dog", "dog", "dog"], random_state=1)
    assert np.array_equal(one, each)
    mixed = fitted.sample(3, ["dog", "emu", "dog"], random_state=1)
    assert np.array_equal(mixed[[0, 2]], one[[0, 2]]) and not np.allclose(mixed[1], one[1])
    assert np.array_equal(fitted.decode(fitted.transform(X, Y), Y),
                          fitted.inverse_transform(fitted.transform(X, Y), Y))


# ------------------------------------------------------------ scikit-learn
def test_fit_transform_is_fit_then_transform():
    kw = dict(latent_dim=2, hidden_dims=(8,), epochs=2, random_state=0)
    assert np.array_equal(ConditionalVAE(**kw).fit_transform(X, Y),
                          ConditionalVAE(**kw).fit(X, Y).transform(X, Y))


def test_model_selection_scores_with_the_labels(digits_dataset):
    digits = digits_dataset
    # GridSearchCV passes each held-out fold's labels to score(X, y).
    search = GridSearchCV(ConditionalVAE(hidden_dims=(16,), epochs=3, random_state=0),
                          {"latent_dim": [1, 3]}, cv=2).fit(digits.X_train, digits.y_train)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.sample(2, 5).shape == (2, 64)


def test_a_column_of_labels_warns_once():
    with pytest.warns(DataConversionWarning) as record:
        ConditionalVAE(hidden_dims=(4,), epochs=3).fit(X, Y[:, None])
    assert len(record) == 1


def test_what_the_x_only_checks_ask_holds_with_labels(fitted):
    # scikit-learn's order, subset, idempotence, dtype and pickle checks call
    # transform(X) and score_samples(X) without y; the same properties, with y:
    perm = RNG.permutation(40)
    for method in (fitted.transform, fitted.score_samples):
        full = method(X, Y)
        assert np.allclose(method(X[perm], Y[perm]), full[perm], rtol=1e-6, atol=1e-6)
        assert np.allclose(method(X[:7], Y[:7]), full[:7], rtol=1e-6, atol=1e-6)
        assert full.dtype == np.float32
    twice = copy.deepcopy(fitted)
    assert np.array_equal(twice.fit(X, Y).transform(X, Y), fitted.transform(X, Y))
    copied = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(copied.score_samples(X, Y), fitted.score_samples(X, Y))


# The checks below call transform(X), score_samples(X) or fit_transform
# without passing y to the method; a conditional model has no answer
# without the labels, and says so ("requires y to be passed").  The test
# above checks what they check, with the labels.
NEEDS_Y_AT_TRANSFORM = "calls transform or score_samples without y, which a conditional model needs"
EXPECTED_FAILURES = {name: NEEDS_Y_AT_TRANSFORM for name in (
    "check_estimators_dtypes", "check_dtype_object", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_transformer_data_not_an_array",
    "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_dict_unchanged", "check_fit_idempotent")}


@parametrize_with_checks(
    [ConditionalVAE(likelihood="gaussian", hidden_dims=(8,), epochs=2, random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("y, kw", [
    (Y, {}),
    (np.where(Y == "cat", 3, 11).astype(np.int64), {"likelihood": "gaussian",
                                                     "dtype": "float64"}),
])
def test_checkpoint_round_trip_is_bit_exact_with_its_classes(tmp_path, y, kw):
    model = ConditionalVAE(latent_dim=2, hidden_dims=(8,), epochs=2, batch_size=16,
                           random_state=0, **kw).fit(X, y)
    path = model.save(tmp_path / "ckpt")
    assert metadata_of(path)["init_args"] == {"classes": model.classes_.tolist()}
    loaded = ConditionalVAE.load(path)
    assert loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.classes_, model.classes_)
    assert loaded.classes_.dtype.kind == model.classes_.dtype.kind
    assert all(np.array_equal(loaded.params_[k], v) for k, v in model.params_.items())
    assert np.array_equal(loaded.score_samples(X, y), model.score_samples(X, y))
    # Same Adam moments and random generator: one more epoch stays identical.
    model.fit_epoch(X, y)
    loaded.fit_epoch(X, y)
    assert all(np.array_equal(loaded.params_[k], v) for k, v in model.params_.items())
    assert loaded.history_ == model.history_


def test_a_checkpoint_with_bad_classes_is_refused(tmp_path, fitted):
    path = fitted.save(tmp_path / "ckpt")
    rewrite_checkpoint(path, meta=lambda m: m.update(init_args={"classes": ["cat", "cat", "dog"]}))
    with pytest.raises(ValueError, match="'init_args' do not build a ConditionalVAE: "
                                         "classes must be distinct"):
        load_checkpoint(path)
    rewrite_checkpoint(path, meta=lambda m: m.update(init_args=["cat"]))
    with pytest.raises(ValueError, match="'init_args' must be an object"):
        load_checkpoint(path)

"""Bad input gets a clear ValueError/TypeError naming the problem, never a
deep traceback or a silent NaN; unfitted use gets sklearn's NotFittedError."""
import re

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from npvae import VAE, Autoencoder, ConditionalVAE, IWAE

D = 5
X = np.random.default_rng(0).uniform(size=(20, D))


@pytest.fixture(scope="module", params=[VAE, Autoencoder])
def fitted(request):
    return request.param(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X)


def with_nan():
    bad = X.copy()
    bad[3, 1] = np.nan
    return bad


def with_inf():
    bad = X.copy()
    bad[0, 0] = -np.inf
    return bad


BAD_X = [   # scikit-learn's check_array words these
    (X[0], ValueError, r"Expected 2D array, got 1D array instead"),
    # A 3-D X is a stack of images (tests/models/test_image_stacks.py); 4-D is not.
    (X[None, None], ValueError, r"X must be 2-D \(n_samples, n_features\) or a stack of images "
                                r"\(n_samples, height, width\), got shape \(1, 1, 20, 5\)"),
    (np.empty((3, 0, 4)), ValueError, r"Found array with 0 feature\(s\) \(shape=\(3, 0\)\)"),
    (np.empty((0, D)), ValueError, r"Found array with 0 sample\(s\) \(shape=\(0, 5\)\)"),
    (np.empty((3, 0)), ValueError, r"Found array with 0 feature\(s\) \(shape=\(3, 0\)\)"),
    (with_nan(), ValueError, "Input X contains NaN"),
    (with_inf(), ValueError, "Input X contains infinity"),
    (np.full((3, D), "a"), ValueError, "not compatible with arrays of bytes/strings"),
    (np.array([[0.5, "a"]], dtype=object), ValueError, "could not convert string to float: 'a'"),
    (X + 0j, ValueError, "Complex data not supported"),
]


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
@pytest.mark.parametrize("bad, error, match", BAD_X)
def test_fit_rejects_bad_X(cls, bad, error, match):
    with pytest.raises(error, match=match):
        cls(epochs=1).fit(bad)


@pytest.mark.parametrize("bad, error, match", BAD_X + [
    (X[:, :3], ValueError, "X has 3 features, but (VAE|Autoencoder) is expecting 5 features"),
])
@pytest.mark.parametrize("method", ["transform", "score", "score_samples", "fit_epoch"])
def test_fitted_methods_reject_bad_X(fitted, method, bad, error, match):
    with pytest.raises(error, match=match):
        getattr(fitted, method)(bad)


@pytest.mark.parametrize("method", ["encode", "elbo_terms"])
def test_vae_only_methods_reject_bad_X(method):
    vae = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 4 features"):
        getattr(vae, method)(X[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        getattr(vae, method)(with_nan())


def test_finite_values_too_large_for_float32_are_named_as_such():
    huge = X * 1e39
    with pytest.raises(ValueError, match=r"X has values too large for float32 .*dtype='float64'"):
        VAE(likelihood="gaussian", epochs=1).fit(huge)
    model = VAE(likelihood="gaussian", dtype="float64", hidden_dims=(4,), epochs=1,
                random_state=0).fit(X)
    assert np.isfinite(model.transform(huge)).all()


@pytest.mark.parametrize("method", ["fit", "score"])
def test_bernoulli_needs_unit_interval_but_gaussian_does_not(method):
    outside = X * 3 - 1
    bernoulli = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0)
    gaussian = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, likelihood="gaussian",
                   random_state=0)
    if method == "score":
        bernoulli.fit(X)
    with pytest.raises(ValueError, match=r"Bernoulli likelihood needs X in \[0, 1\].*"
                                         r"likelihood='gaussian'"):
        getattr(bernoulli, method)(outside)
    gaussian.fit(outside)
    assert np.isfinite(gaussian.score(outside))


@pytest.mark.parametrize("Z, error, match", [
    (np.zeros((3, 3)), ValueError, r"Z must have shape \(n_samples, 2\), got \(3, 3\)"),
    (np.zeros(2), ValueError, r"Z must have shape \(n_samples, 2\), got \(2,\)"),
    (np.full((2, 2), np.nan), ValueError, "Z contains NaN or infinity"),
    (np.full((2, 2), "z"), TypeError, "Z must be numeric"),
    (np.zeros((0, 2)), ValueError, "Z is empty"),
])
def test_decode_rejects_bad_codes(fitted, Z, error, match):
    with pytest.raises(error, match=match):
        fitted.decode(Z)
    with pytest.raises(error, match=match):
        fitted.inverse_transform(Z)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_sample_rejects_bad_counts(n):
    vae = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        vae.sample(n)


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
@pytest.mark.parametrize("kwargs, error, match", [   # scikit-learn's check_scalar words most
    ({"latent_dim": 0}, ValueError, r"\.latent_dim == 0, must be >= 1"),
    ({"latent_dim": 2.0}, TypeError, r"\.latent_dim must be an instance of int, not float"),
    ({"hidden_dims": (8, 0)}, ValueError, "each entry of hidden_dims must be an integer >= 1, got 0"),
    ({"hidden_dims": (8, 2.5)}, ValueError, "each entry of hidden_dims must be an integer >= 1, got 2.5"),
    ({"hidden_dims": "wide"}, ValueError, r"\.hidden_dims must be an int or a sequence of ints, got 'wide'"),
    ({"hidden_dims": ""}, ValueError, r"\.hidden_dims must be an int or a sequence of ints, got ''"),
    ({"hidden_dims": None}, ValueError, r"\.hidden_dims must be an int or a sequence of ints, got None"),
    ({"batch_size": 0}, ValueError, r"\.batch_size == 0, must be >= 1"),
    ({"epochs": -1}, ValueError, r"\.epochs == -1, must be >= 0"),
    ({"learning_rate": 0.0}, ValueError, r"\.learning_rate == 0.0, must be > 0"),
    ({"learning_rate": -1e-3}, ValueError, r"\.learning_rate == -0.001, must be > 0"),
    ({"learning_rate": float("nan")}, ValueError, r"\.learning_rate must be a finite number, got nan"),
    ({"likelihood": "poisson"}, ValueError, r"\.likelihood must be one of .*bernoulli.*got 'poisson'"),
    ({"activation": "gelu"}, ValueError, r"\.activation must be one of .*relu.*got 'gelu'"),
    ({"dtype": "float16"}, ValueError, r"\.dtype must be one of .*float32.*got 'float16'"),
    ({"lr_schedule": "step"}, ValueError, r"\.lr_schedule must be one of .*got 'step'"),
    ({"likelihood": "gaussian", "obs_var": 0.0}, ValueError, r"\.obs_var == 0.0, must be > 0"),
    ({"likelihood": "gaussian", "obs_var": -1}, ValueError, r"\.obs_var == -1, must be > 0"),
])
def test_invalid_hyperparameters(cls, kwargs, error, match):
    match = cls.__name__ + match if match.startswith("\\.") else match   # names its class
    with pytest.raises(error, match=match):
        cls(**kwargs).fit(X)
    with pytest.raises(error, match=match):
        cls(**kwargs).initialize(D)


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": -0.5}, r"VAE\.beta == -0.5, must be >= 0"),
    ({"beta": float("inf")}, r"VAE\.beta must be a finite number, got inf"),
    ({"kl_warmup": -1}, r"VAE\.kl_warmup == -1, must be >= 0"),
])
def test_invalid_vae_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAE(**kwargs).fit(X)


@pytest.mark.parametrize("call", [
    lambda m: m.transform(X), lambda m: m.score(X), lambda m: m.score_samples(X),
    lambda m: m.decode(np.zeros((1, 2))), lambda m: m.inverse_transform(np.zeros((1, 2))),
    lambda m: m.fit_epoch(X), lambda m: m.loss(X, np.zeros((20, 2))),
])
@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_unfitted_use_raises_not_fitted(cls, call):
    with pytest.raises(NotFittedError, match="not fitted"):
        call(cls(latent_dim=2))


@pytest.mark.parametrize("call", [
    lambda m: m.encode(X), lambda m: m.sample(3), lambda m: m.elbo_terms(X),
    lambda m: m.reparameterize(np.zeros((1, 2)), np.zeros((1, 2))),
])
def test_unfitted_vae_only_methods_raise_not_fitted(call):
    with pytest.raises(NotFittedError, match="not fitted"):
        call(VAE(latent_dim=2))


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_loss_and_grads_before_initialize(cls):
    with pytest.raises(AttributeError, match=r"call initialize\(n_features\) or fit first"):
        cls(latent_dim=2).loss_and_grads(X)


def test_loss_rejects_noise_of_the_wrong_shape():
    vae = VAE(latent_dim=2, hidden_dims=(4,), random_state=0).initialize(D)
    with pytest.raises(ValueError, match=r"eps must have shape \(20, 2\), got \(20, 3\)"):
        vae.loss(X, np.zeros((20, 3)))
    with pytest.raises(ValueError, match=r"eps must have shape"):
        vae.loss_and_grads(X, np.zeros((19, 2)))
    for call in (vae.loss, vae.loss_and_grads):
        with pytest.raises(ValueError, match="eps contains NaN or infinity"):
            call(X, np.full((20, 2), np.nan))


def test_sparse_input_is_refused_with_advice():
    from scipy import sparse
    with pytest.raises(TypeError, match=r"Sparse data was passed for X.*toarray\(\)"):
        VAE(epochs=1).fit(sparse.csr_matrix(X))


def test_valid_odd_but_legal_input_is_accepted():
    """Lists, ints and booleans are numeric; hidden_dims may be an int."""
    model = VAE(latent_dim=1, hidden_dims=3, epochs=1, batch_size=7, random_state=0)
    model.fit((X > 0.5).tolist())
    assert model.transform(X > 0.5).shape == (20, 1)
    assert model.transform((X > 0.5).astype(int)).shape == (20, 1)


def test_obs_logvar_exists_only_for_gaussian():
    with pytest.raises(NotFittedError):
        VAE(likelihood="gaussian").obs_logvar_
    vae = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X)
    with pytest.raises(AttributeError, match="obs_logvar_ exists only for likelihood='gaussian'"):
        vae.obs_logvar_


def test_object_arrays_of_numbers_are_converted_not_refused():
    as_objects = X.astype(object)
    a = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(as_objects)
    b = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X)
    assert np.array_equal(a.transform(as_objects), b.transform(X))


def test_a_learning_rate_that_would_overflow_the_dtype_is_refused():
    with pytest.raises(ValueError, match="learning_rate 1e.40 is too large for float32"):
        VAE(learning_rate=1e40, epochs=1).fit(X)
    # float64 has the range for it: accepted, and whether or not training then
    # stops at a non-finite loss, the parameters stay finite.
    model = VAE(learning_rate=1e40, dtype="float64", hidden_dims=(4,), epochs=2, random_state=0)
    try:
        model.fit(X)
    except FloatingPointError as err:
        assert "diverged" in str(err)
    assert all(np.isfinite(p).all() for p in model.params_.values())


@pytest.mark.parametrize("seed, error, hint", [
    ("abc", TypeError, ""), (1.5, TypeError, ""), (True, TypeError, ""),
    (np.random.RandomState(0), TypeError, "legacy RandomState.*default_rng"),
    (-1, ValueError, ""), ([1, -2], ValueError, ""),
])
def test_random_state_that_cannot_seed_a_generator_is_named(seed, error, hint):
    with pytest.raises(error, match=f"random_state must be None, an integer >= 0 .*got .*{hint}"):
        VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=seed).fit(X)


def test_bad_hyper_parameters_leave_a_fitted_model_as_it_was(fitted):
    before = {k: p.copy() for k, p in fitted.params_.items()}
    for bad in ({"random_state": "x"}, {"latent_dim": 0}):
        old = fitted.get_params()
        fitted.set_params(**bad)
        with pytest.raises((TypeError, ValueError)):
            fitted.initialize(7)
        fitted.set_params(**old)
        assert fitted.n_features_in_ == D
        assert all(np.array_equal(p, before[k]) for k, p in fitted.params_.items())


def test_random_state_arguments_of_the_verbs_are_checked_too(fitted):
    from npvae.app.datasets import binarize, train_val_split
    from npvae.models.evaluation import importance_weighted_log_likelihood
    calls = [lambda: train_val_split(X, random_state="x"),
             lambda: binarize(X, "x")]
    if isinstance(fitted, VAE):
        calls += [lambda: fitted.sample(2, random_state="x"),
                  lambda: fitted.elbo_terms(X, random_state="x"),
                  lambda: importance_weighted_log_likelihood(fitted, X, k=2, random_state="x")]
    for call in calls:
        with pytest.raises(TypeError, match=r"(random_state|rng) must be None, an integer"):
            call()


@pytest.mark.parametrize("seed, same_as", [
    (np.random.SeedSequence(3), 3), (np.random.PCG64(3), 3), (np.int64(3), 3),
    ([1, 2, 3], [1, 2, 3]), (np.array([4, 5]), [4, 5]),
])
def test_every_seed_numpy_takes_works(seed, same_as):
    a = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=seed).fit(X)
    b = VAE(latent_dim=2, hidden_dims=(4,), epochs=1,
            random_state=np.random.default_rng(same_as)).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


# ------------------------------------------------------------ issue #21
FAMILY = [VAE, Autoencoder, ConditionalVAE, IWAE]


def _fitted(cls):
    y = np.arange(len(X)) % 2 if cls.needs_labels else None
    return cls(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X, y), y


@pytest.mark.parametrize("cls", FAMILY)
def test_transform_and_encode_refuse_non_finite_codes(cls):
    model, y = _fitted(cls)
    labels = () if y is None else (y[:2],)
    huge = np.full((2, D), 3e38)   # finite in float32; the first layer overflows
    verbs = [model.transform] + ([model.encode] if hasattr(model, "encode") else [])
    for verb in verbs:
        with pytest.raises(ValueError, match="is not finite for some rows"):
            verb(huge, *labels)
    model.params_["encoder.0.W"][...] = 1e38   # weights that overflow on ordinary data
    for verb in verbs:
        with pytest.raises(ValueError, match="is not finite for some rows"):
            verb(X[:2], *labels)


@pytest.mark.parametrize("make, name", [
    (lambda: VAE(2, hidden_dims=(10**9,)), r"hidden_dims=\(1000000000,\)"),
    (lambda: VAE(10**9), "latent_dim=1000000000"),
    (lambda: Autoencoder(10**9), "latent_dim=1000000000"),
    (lambda: VAE(2, prior="mixture", n_components=10**9), "n_components=1000000000"),
    (lambda: IWAE(2, k=10**6, batch_size=20), "k=1000000"),
])
def test_sizes_that_cannot_fit_in_memory_are_refused_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=name + ".* GiB of memory, more than"):
        make().fit(X)


@pytest.mark.parametrize("cls", [VAE, ConditionalVAE])
def test_sample_refuses_a_count_that_cannot_fit_before_drawing(cls):
    model, y = _fitted(cls)
    with pytest.raises(ValueError, match="n_samples=1000000000000 .* GiB of memory"):
        model.sample(10**12, *(() if y is None else (0,)))


def test_a_bool_latent_dim_is_named():
    with pytest.raises(TypeError, match="latent_dim"):
        VAE(latent_dim=True).fit(X)


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_obs_var_without_the_gaussian_likelihood_is_refused(cls):
    with pytest.raises(ValueError, match="obs_var is the noise variance of "
                                         "likelihood='gaussian'"):
        cls(obs_var=0.5, epochs=1).fit(X)


def test_a_conditional_vae_needs_at_least_one_class():
    with pytest.raises(ValueError, match="classes is empty"):
        ConditionalVAE(2, hidden_dims=(4,)).initialize(D, classes=[])


# Each verb that reads what fit learned.
VERBS = {"transform": lambda m: m.transform(X), "score": lambda m: m.score(X),
         "decode": lambda m: m.decode(np.zeros((2, m.latent_dim))),
         "sample": lambda m: m.sample(2, random_state=0),
         "fit_epoch": lambda m: m.fit_epoch(X), "loss_and_grads": lambda m: m.loss_and_grads(X),
         "save": lambda m: m.save(m.tmp / "m")}


@pytest.mark.parametrize("name, new, shown", [
    ("latent_dim", 3, "3"), ("hidden_dims", (6, 6), r"\(6, 6\)"),
    ("activation", "tanh", "'tanh'"), ("likelihood", "gaussian", "'gaussian'"),
    ("dtype", "float64", "'float64'"), ("prior", "mixture", "'mixture'"),
])
def test_an_architecture_set_after_fit_is_named_until_fit_again(tmp_path, name, new, shown):
    # Before: transform, score and sample failed deep inside NumPy ("matmul: Input operand 1
    # has a mismatch"), or used the fitted networks while get_params and save said otherwise.
    model = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X)
    model.tmp, old, theta = tmp_path, model.get_params()[name], model.parameters_.theta.copy()
    model.set_params(**{name: new})
    for verb, call in VERBS.items():
        with pytest.raises(ValueError, match=rf"VAE.{name} is {shown}, but the model was "
                                             + re.escape(f"fitted with {name}={old!r}; call fit "
                                                         "again")):
            call(model)
    assert not list(tmp_path.iterdir())                      # nothing saved
    np.testing.assert_array_equal(model.parameters_.theta, theta)   # nor trained
    model.set_params(**{name: old})
    assert model.transform(X).shape == (len(X), 2)           # set back, it is the fitted model
    model.set_params(**{name: new}).fit(X)                   # fitted again, it is the new one
    for call in VERBS.values():
        call(model)


def test_an_architecture_set_after_fit_is_named_for_each_kind_of_model(tmp_path):
    from npvae import TwoLayerVAE
    for model, name, new in (
            (Autoencoder(latent_dim=2, hidden_dims=(4,), epochs=1), "latent_dim", 3),
            (IWAE(latent_dim=2, hidden_dims=(4,), epochs=1, k=2), "hidden_dims", (3,)),
            (TwoLayerVAE((4, 2), hidden_dims=((4,), (3,)), epochs=1), "latent_dims", (5, 2)),
            (TwoLayerVAE((4, 2), hidden_dims=((4,), (3,)), epochs=1), "hidden_dims",
             ((4,), (4,)))):
        model.fit(X).set_params(**{name: new})
        model.tmp = tmp_path
        for verb, call in VERBS.items():
            if verb == "sample" and not model.has_prior:
                continue
            with pytest.raises(ValueError, match=rf"{type(model).__name__}.{name} is .*call "
                                                 "fit again"):
                call(model)


def test_an_architecture_set_after_fit_is_named_for_a_conditional_vae():
    y = np.arange(len(X)) % 3
    model = ConditionalVAE(latent_dim=2, hidden_dims=(4,), epochs=1).fit(X, y)
    model.set_params(latent_dim=3)
    for call in (lambda: model.transform(X, y), lambda: model.sample(3, 1),
                 lambda: model.fit_epoch(X, y)):
        with pytest.raises(ValueError, match="ConditionalVAE.latent_dim is 3, .*call fit again"):
            call()


@pytest.mark.parametrize("fitted, same", [(4, (4,)), ((4,), 4), ([4], np.array([4]))])
def test_an_architecture_set_again_in_another_spelling_is_the_fitted_one(tmp_path, fitted, same):
    # Before: hidden_dims=4 builds the network that (4,) builds, yet set after fit in
    # the other spelling it was refused as a change ("call fit again").
    model = VAE(latent_dim=2, hidden_dims=fitted, epochs=1, random_state=0).fit(X)
    model.tmp, theta = tmp_path, model.parameters_.theta.copy()
    model.set_params(hidden_dims=same)
    for call in VERBS.values():
        call(model)
    assert model.n_iter_ == 2 and not np.array_equal(model.parameters_.theta, theta)


def test_n_components_set_after_fit_is_refused_only_for_a_mixture_prior(tmp_path):
    # Before: a standard normal prior has no components, yet a VAE fitted with one
    # refused every verb after set_params(n_components=3) ("call fit again").
    model = VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X)
    model.tmp = tmp_path
    model.set_params(n_components=3)
    for call in VERBS.values():
        call(model)
    mixture = VAE(latent_dim=2, hidden_dims=(4,), prior="mixture", n_components=2,
                  epochs=1).fit(X).set_params(n_components=3)
    with pytest.raises(ValueError, match="VAE.n_components is 3, but the model was fitted "
                                         "with n_components=2; call fit again"):
        mixture.transform(X)
    with pytest.raises(ValueError, match="VAE.prior is 'standard_normal', but the model was "
                                         "fitted with prior='mixture'"):
        mixture.set_params(prior="standard_normal").transform(X)


def test_obs_logvar_after_set_params_names_the_change():
    # Before: obs_logvar_ answered log(0.5) for set_params(obs_var=0.5) on a model that
    # learned its noise variance, which its likelihood still uses.
    model = VAE(latent_dim=2, hidden_dims=(4,), likelihood="gaussian", epochs=1).fit(X)
    learned = model.obs_logvar_
    for change in ({"obs_var": 0.5}, {"likelihood": "bernoulli"}):
        model.set_params(**change)
        with pytest.raises(ValueError, match=f"VAE.{next(iter(change))} is .*call fit again"):
            model.obs_logvar_
        model.set_params(obs_var=None, likelihood="gaussian")
        assert model.obs_logvar_ == learned

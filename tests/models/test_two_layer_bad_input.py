"""A hostile user of the two-layer estimators (issue #20, "Bad input"):
layer sizes given as unordered or one-shot collections, and hyper-parameters
changed by ``set_params`` after ``fit`` and used without a new ``fit``
(``fit_epoch``, ``loss_and_grads``, as ``npvae gradcheck`` does): each a
ValueError or TypeError naming the parameter, never an error from deep
inside nor a silent change of what is computed."""
import numpy as np
import pytest

from npvae.models.two_layer import TwoLayerIWAE, TwoLayerVAE

X = (np.random.default_rng(0).random((12, 6)) > 0.5).astype(float)


def small(cls=TwoLayerIWAE, **kw):
    kw = {"latent_dims": (3, 2), "hidden_dims": ((4,), (3,)), "epochs": 1, "batch_size": 4,
          "random_state": 0, **kw}
    return cls(**kw)


@pytest.mark.parametrize("params, fragment", [
    # A set or a dict has no order: which width is z1's would be chance.
    ({"latent_dims": {3, 2}}, "TwoLayerIWAE.latent_dims must be a pair of ints"),
    ({"latent_dims": {3: 1, 2: 1}}, "TwoLayerIWAE.latent_dims must be a pair of ints"),
    # A generator is used up by the first look at it.
    ({"latent_dims": (w for w in (3, 2))}, "TwoLayerIWAE.latent_dims must be a pair of ints"),
    ({"latent_dims": np.array(3)}, "TwoLayerIWAE.latent_dims must be a pair of ints"),
    ({"hidden_dims": {(4,), (3,)}}, "TwoLayerIWAE.hidden_dims must be a pair of sequences"),
    ({"hidden_dims": ({4, 5}, (3,))}, "TwoLayerIWAE.hidden_dims must be a pair of sequences"),
])
def test_unordered_or_one_shot_layer_sizes_are_named(params, fragment):
    with pytest.raises(ValueError, match=fragment):
        small(**params).fit(X)


def test_lists_tuples_and_numpy_arrays_of_sizes_still_fit():
    a = small(latent_dims=[3, 2], hidden_dims=[[4], [3]]).fit(X)
    b = small(latent_dims=np.array([3, 2]), hidden_dims=(np.array([4]), (np.int64(3),))).fit(X)
    np.testing.assert_array_equal(a.parameters_.theta, b.parameters_.theta)


@pytest.mark.parametrize("cls, estimator, fragment", [
    (TwoLayerIWAE, "dreG", r"TwoLayerIWAE.gradient_estimator must be one of \['dreg', "),
    (TwoLayerVAE, "stl ", r"TwoLayerVAE.gradient_estimator must be one of \['standard', "),
    (TwoLayerVAE, "dreg", "TwoLayerVAE.gradient_estimator='dreg' needs importance weights"),
])
def test_a_gradient_estimator_set_after_fit_is_checked_at_the_next_step(cls, estimator,
                                                                        fragment):
    # Before: any name but "standard" silently trained STL (and DReG on the VAE).
    model = small(cls).fit(X)
    theta = model.parameters_.theta.copy()
    model.set_params(gradient_estimator=estimator)
    with pytest.raises(ValueError, match=fragment):
        model.fit_epoch(X)
    with pytest.raises(ValueError, match=fragment):
        model.loss_and_grads(X, np.zeros((2, len(X), 5)))
    np.testing.assert_array_equal(model.parameters_.theta, theta)


def test_a_valid_gradient_estimator_set_after_fit_switches_the_gradient():
    model = small(TwoLayerIWAE, k=3).fit(X)
    eps = np.random.default_rng(1).standard_normal((3, len(X), 5))
    _, standard = model.loss_and_grads(X, eps)
    _, dreg = model.set_params(gradient_estimator="dreg").loss_and_grads(X, eps)
    assert not np.array_equal(standard["q_z1.mu.W"], dreg["q_z1.mu.W"])
    np.testing.assert_array_equal(standard["decoder.0.W"], dreg["decoder.0.W"])


@pytest.mark.parametrize("k, error, fragment", [
    (0, ValueError, r"TwoLayerIWAE.k == 0, must be >= 1"),
    (2.0, TypeError, r"TwoLayerIWAE.k must be an instance of int"),
    (True, TypeError, r"TwoLayerIWAE.k must be a finite int, got True"),
])
def test_k_set_after_fit_is_checked_at_the_next_epoch(k, error, fragment):
    # Before: k=0 failed deep inside as "cannot reshape array of size 0".
    model = small().fit(X)
    with pytest.raises(error, match=fragment):
        model.set_params(k=k).fit_epoch(X)
    with pytest.raises(error, match=fragment):
        model.loss_and_grads(X)


@pytest.mark.parametrize("eps", [np.full((2, 12, 5), "a"), np.zeros((2, 12, 5), complex)])
def test_eps_that_is_not_real_numbers_is_named(eps):
    model = small().fit(X)
    with pytest.raises(TypeError, match="eps must be an array of real numbers"):
        model.loss(X, eps)
    with pytest.raises(TypeError, match="eps must be an array of real numbers"):
        model.loss_and_grads(X, eps)


@pytest.mark.parametrize("drop, extra", [("param/p_z1.mu.b", {}),
                                         (None, {"param/q_z1.1.W": np.zeros((4, 4), "f4")})])
def test_a_checkpoint_whose_arrays_miss_its_layers_is_named(tmp_path, drop, extra):
    # Before: a KeyError 'latent_dim' (the message named the one-layer size).
    small().fit(X).save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz", allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files if name != drop}
    np.savez(tmp_path / "edited.npz", **arrays, **extra)
    with pytest.raises(ValueError, match=r"edited.npz: arrays do not match a TwoLayerIWAE with "
                                         r"hidden_dims=\(\(4,\), \(3,\)\), latent_dims=\(3, 2\)"):
        TwoLayerIWAE.load(tmp_path / "edited.npz")

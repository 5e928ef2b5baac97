"""A stack of images, X of shape (n, height, width), is what the CLI reads
from a file; the estimators take it too (issue #22, item 9): flattened to
rows at the door, the (height, width) kept as ``image_shape_``, every verb
taking either shape, ``decode`` and ``sample`` returning flat rows."""
import numpy as np
import pytest

from conftest import rewrite_checkpoint
from npvae import IWAE, VAE, Autoencoder, ConditionalVAE

SMALL = dict(latent_dim=2, hidden_dims=(8,), epochs=2, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def stack(digits):
    X, y = digits
    return X[:300].reshape(300, 8, 8), y[:300]


@pytest.mark.parametrize("cls", [VAE, IWAE, Autoencoder])
def test_fit_on_a_stack_is_fit_on_its_rows(stack, cls):
    images, _ = stack
    flat = images.reshape(len(images), -1)
    a, b = cls(**SMALL).fit(images), cls(**SMALL).fit(flat)
    assert a.image_shape_ == (8, 8) and b.image_shape_ is None
    assert a.n_features_in_ == 64
    for name in a.params_:
        np.testing.assert_array_equal(a.params_[name], b.params_[name])
    # Every verb takes either shape and says the same.
    np.testing.assert_array_equal(a.transform(images), b.transform(flat))
    np.testing.assert_array_equal(a.score_samples(images), b.score_samples(flat))
    assert a.score(images) == b.score(flat)
    np.testing.assert_array_equal(a.transform(flat), a.transform(images))
    # decode returns flat rows; image_shape_ makes them images again.
    decoded = a.decode(a.transform(images[:5]))
    assert decoded.shape == (5, 64) and decoded.reshape(-1, *a.image_shape_).shape == (5, 8, 8)


def test_vae_elbo_terms_and_sample_with_a_stack(stack):
    images, _ = stack
    vae = VAE(**SMALL).fit(images)
    flat = images.reshape(len(images), -1)
    for got, want in zip(vae.elbo_terms(images), vae.elbo_terms(flat)):
        np.testing.assert_array_equal(got, want)
    assert vae.sample(3, random_state=0).shape == (3, 64)


def test_conditional_vae_takes_a_stack(stack):
    images, y = stack
    cvae = ConditionalVAE(**SMALL).fit(images, y)
    flat = images.reshape(len(images), -1)
    ref = ConditionalVAE(**SMALL).fit(flat, y)
    assert cvae.image_shape_ == (8, 8)
    np.testing.assert_array_equal(cvae.transform(images, y), ref.transform(flat, y))


def test_other_shapes_are_refused_with_what_works(stack):
    images, _ = stack
    with pytest.raises(ValueError, match=r"2-D \(n_samples, n_features\) or a stack of images "
                                         r"\(n_samples, height, width\), got shape \(300, 8, 8, 1\)"):
        VAE(**SMALL).fit(images[..., None])
    vae = VAE(**SMALL).fit(images)
    with pytest.raises(ValueError, match="X has 48 features, but VAE is expecting 64"):
        vae.transform(images[:, :6])
    with pytest.raises(ValueError, match="1D"):
        VAE(**SMALL).fit(images[:, 0, 0])


def test_image_shape_is_saved_and_checked(stack, tmp_path):
    images, _ = stack
    vae = VAE(**SMALL).fit(images)
    path = vae.save(tmp_path / "m.npz")
    assert VAE.load(path).image_shape_ == (8, 8)
    assert VAE.load(VAE(**SMALL).fit(images.reshape(300, -1)).save(tmp_path / "f.npz")) \
        .image_shape_ is None
    rewrite_checkpoint(path, meta=lambda m: m.update(image_shape_=[8, 7]))
    with pytest.raises(ValueError, match="image_shape_"):
        VAE.load(path)

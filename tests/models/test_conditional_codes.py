"""The conditional VAE's codes see the label: ``transform(X, y)`` is the
encoder on ``[x, onehot(y)]`` (as ``encoder_`` is documented), and the same
image gets different codes under different labels.  An ``encode`` that fed
the encoder zeros (or any fixed row) for the label passed every other test."""
import numpy as np
import pytest

from npvae import ConditionalVAE


@pytest.fixture(scope="module")
def cvae(digits):
    X, y = digits
    model = ConditionalVAE(latent_dim=3, hidden_dims=(16,), activation="tanh", epochs=3,
                           batch_size=64, dtype="float64", random_state=0)
    return model.fit(X[:400], y[:400]), X[400:460], y[400:460]


def test_transform_is_the_encoder_on_x_joined_with_the_one_hot_label(cvae):
    model, X, y = cvae
    onehot = (y[:, None] == model.classes_[None, :]).astype(model.dtype)
    mu, logvar = model.encoder_.forward(np.concatenate([X, onehot], axis=1))
    np.testing.assert_allclose(model.transform(X, y), mu, rtol=1e-12, atol=1e-12)
    got_mu, got_logvar = model.encode(X, y)
    np.testing.assert_allclose(got_mu, mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_logvar, logvar, rtol=1e-12, atol=1e-12)


def test_codes_differ_between_labels(cvae):
    model, X, _ = cvae
    codes = np.stack([model.transform(X, c) for c in model.classes_])   # (10, n, 3)
    for a in range(len(codes)):
        for b in range(a):
            # Every image moves (tanh: no unit is dead for some labels only).
            assert np.all(np.abs(codes[a] - codes[b]).max(axis=1) > 1e-6), (a, b)


def test_one_label_for_all_rows_is_that_label_on_every_row(cvae):
    model, X, _ = cvae
    np.testing.assert_array_equal(model.transform(X, 7), model.transform(X, np.full(len(X), 7)))

"""Tests of npvae.plots: every figure is a real PNG with something drawn,
written atomically, for square and non-square images."""
import matplotlib.image
import numpy as np
import pytest

from npvae import VAE, plots

RNG = np.random.default_rng(0)


def read_png(path):
    """The image, after checking the file is a PNG with non-constant pixels."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert img[..., :3].std() > 0.05  # not a blank canvas
    return img


def only(tmp_path, name):
    """The folder holds just ``name``: no temporary file was left behind."""
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.fixture(scope="module")
def model_28x20():
    X = RNG.random((30, 560)).astype(np.float32)
    return VAE(latent_dim=2, hidden_dims=(8,), epochs=1, random_state=0).fit(X), X


def test_infer_image_shape():
    assert plots.infer_image_shape(64) == (8, 8)
    assert plots.infer_image_shape(560, (28, 20)) == (28, 20)
    assert plots.infer_image_shape(10) is None
    with pytest.raises(ValueError, match=r"image_shape \(28, 28\) does not hold 560"):
        plots.infer_image_shape(560, (28, 28))


def test_loss_curves(tmp_path):
    metrics = [{"epoch": e, "train_loss": 10 / e, "train_recon": 8 / e, "train_kl": 2.0,
                "val_loss": 11 / e, "val_recon": 9 / e, "val_kl": 2.1} for e in range(1, 6)]
    path = plots.plot_loss_curves(metrics, tmp_path / "loss.png")
    img = read_png(path)
    assert img.shape[1] > 2 * img.shape[0]  # three panels side by side
    only(tmp_path, "loss.png")
    with pytest.raises(ValueError, match="no epochs"):
        plots.plot_loss_curves([], tmp_path / "x.png")


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_loss_panel_compares_the_negative_elbo_of_both_splits(tmp_path, monkeypatch, beta):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    # Negative reconstruction terms (a Gaussian decoder's can be): nothing changes.
    metrics = [{"epoch": e, "train_loss": 8 / e - 4.0 + beta * 2.0, "train_recon": 8 / e - 4.0,
                "train_kl": 2.0, "val_loss": 11 / e, "val_recon": 9 / e, "val_kl": 2.0}
               for e in range(1, 4)]
    plots.plot_loss_curves(metrics, tmp_path / "loss.png")
    lines = {line.get_label(): list(line.get_ydata()) for line in figures[0].axes[0].lines}
    # Every panel draws train first, val second: the colours mean the same in each.
    for ax in figures[0].axes:
        assert [line.get_label() for line in ax.lines][:2] == ["train", "val"]
    assert lines["train"] == pytest.approx([8 / e - 2.0 for e in range(1, 4)])
    assert lines["val"] == pytest.approx([11 / e for e in range(1, 4)])
    if beta == 1.0:
        assert set(lines) == {"train", "val"}
    else:                        # the objective minimised is shown, apart
        assert lines["train objective (beta)"] == pytest.approx([8 / e + 4.0 for e in range(1, 4)])
    assert figures[0].axes[0].get_title() == "-ELBO (nats)"


@pytest.mark.parametrize("n_epochs", [1, 3, 40])
def test_loss_curves_tick_whole_epochs(tmp_path, monkeypatch, n_epochs):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    metrics = [{"epoch": e, "train_loss": 1 / e, "val_loss": 2 / e} for e in range(1, n_epochs + 1)]
    plots.plot_loss_curves(metrics, tmp_path / "loss.png")
    (ax,) = figures[0].axes
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_reconstructions_of_non_square_images_keep_their_shape(tmp_path):
    X = RNG.random((30, 560))
    tall = read_png(plots.plot_reconstructions(X, X * 0.5, (28, 20), tmp_path / "t.png", 30))
    wide = read_png(plots.plot_reconstructions(X, X * 0.5, (20, 28), tmp_path / "w.png", 30))
    # One row of 30 pairs; cells are equally high, so widths go as w / h.
    assert tall.shape[0] == wide.shape[0]
    assert wide.shape[1] / tall.shape[1] == pytest.approx((28 / 20) / (20 / 28), rel=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.png", "w.png"]
    with pytest.raises(ValueError, match="differ in shape"):
        plots.plot_reconstructions(X, X[:3], (28, 20), tmp_path / "bad.png")


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_reconstructions_that_do_not_fill_the_last_row_are_drawn(tmp_path, scale):
    # 15 pairs at 10 a row pad the last row with NaN; the grey range must skip them.
    X = RNG.random((15, 64)) * scale
    img = read_png(plots.plot_reconstructions(X, X * 0.5, (8, 8), tmp_path / "r.png"))
    grey = img[..., 0]
    assert ((grey > 0.2) & (grey < 0.8)).mean() > 0.1  # uniform data: many mid greys


def test_samples_grid_uses_grey_levels_of_the_data(tmp_path):
    dark = plots.plot_samples(np.zeros((16, 64)) + np.eye(64)[:16], (8, 8), tmp_path / "a.png")
    img = read_png(dark)
    # Black cells with one white pixel each, on a white background: 0 is black.
    assert img[..., 0].min() < 0.02 and (img[..., 0] < 0.1).mean() > 0.15


def test_samples_outside_unit_range_are_scaled(tmp_path):
    samples = RNG.normal(100.0, 5.0, (9, 16))
    read_png(plots.plot_samples(samples, (4, 4), tmp_path / "s.png"))


@pytest.mark.parametrize("latent_dim, labels", [(1, None), (2, True), (5, True), (5, None)])
def test_latent_scatter(tmp_path, latent_dim, labels):
    Z = RNG.normal(size=(200, latent_dim))
    y = RNG.integers(0, 10, 200) if labels else None
    read_png(plots.plot_latent(Z, y, tmp_path / "z.png"))
    only(tmp_path, "z.png")


def test_pca_projection_finds_the_spread_directions():
    t = np.linspace(-1, 1, 101)
    A = np.column_stack([10 * t, t * t - np.mean(t * t), np.zeros_like(t)])  # uncorrelated
    Q = np.linalg.qr(RNG.normal(size=(3, 3)))[0]
    P = plots._pca_2d(A @ Q.T + 5.0)
    assert np.allclose(np.abs(P), np.abs(A[:, :2]), atol=1e-9)


def test_manifold_decodes_an_inverse_normal_cdf_grid(tmp_path, model_28x20, monkeypatch):
    model, _ = model_28x20
    seen = []
    real_decode = model.decode
    monkeypatch.setattr(model, "decode", lambda Z: seen.append(Z) or real_decode(Z))
    read_png(plots.plot_manifold(model, (28, 20), tmp_path / "m.png", n=5))
    Z = seen[0]
    ticks = np.array([-1.2815516, -0.5244005, 0.0, 0.5244005, 1.2815516])  # Phi^-1(.1 .. .9)
    assert np.allclose(Z[:5, 0], ticks) and np.allclose(Z[:5, 1], ticks[-1])
    assert np.allclose(Z[::5, 1], ticks[::-1])  # z2 decreases down the rows
    with pytest.raises(ValueError, match="latent_dim=2"):
        plots.plot_manifold(VAE(latent_dim=3).initialize(4), (2, 2), tmp_path / "x.png")


def test_interpolations(tmp_path, model_28x20):
    model, X = model_28x20
    path = plots.plot_interpolations(model, X[:3], X[3:6], (28, 20), tmp_path / "i.png",
                                     steps=4)
    read_png(path)
    only(tmp_path, "i.png")
    with pytest.raises(ValueError, match="differ in shape"):
        plots.plot_interpolations(model, X[:3], X[3:5], (28, 20), tmp_path / "x.png")


def test_interpolation_rows_run_from_start_to_end(tmp_path, model_28x20, monkeypatch):
    model, X = model_28x20
    drawn = []
    monkeypatch.setattr(plots, "_image_figure", lambda rows, *a: drawn.append(rows))
    plots.plot_interpolations(model, X[:2], X[2:4], (28, 20), tmp_path / "i.png", steps=3)
    rows = drawn[0].reshape(2, 5, -1)  # 2 pairs: start, 3 decoded steps, end
    assert np.array_equal(rows[:, 0], X[:2]) and np.array_equal(rows[:, -1], X[2:4])
    z0, z1 = model.transform(X[:2]), model.transform(X[2:4])
    for j, t in enumerate((0.0, 0.5, 1.0)):
        assert np.allclose(rows[:, 1 + j], model.decode((1 - t) * z0 + t * z1), atol=1e-6)

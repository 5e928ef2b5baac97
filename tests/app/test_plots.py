"""Tests of npvae.app.plots: every figure is a real PNG with something drawn,
written atomically, at the resolution promised, with image tiles that are
the data pixel for pixel, for square and non-square images."""
import math

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from npvae import VAE
from npvae.app import plots

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


def loss_panels(tmp_path, monkeypatch, metrics):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_loss_curves(metrics, tmp_path / "loss.png")
    return figures[0].axes


def test_loss_curve_stays_readable_when_the_first_epoch_is_far_above(tmp_path, monkeypatch):
    # Frey Face with a Gaussian decoder: 2787 nats at epoch 1, then ~-100 to -300.
    train = [2787.0] + [-100.0 - 20 * e for e in range(1, 10)]
    val = [655.0] + [-110.0 - 20 * e for e in range(1, 10)]
    metrics = [{"epoch": e + 1, "train_loss": t, "val_loss": v} for e, (t, v) in
               enumerate(zip(train, val))]
    (ax,) = loss_panels(tmp_path, monkeypatch, metrics)
    bottom, top = ax.get_ylim()
    later = train[1:] + val[1:]
    # The later epochs fill the axis; both first points are marked on its top edge.
    assert bottom < min(later) and max(later) < top < max(later) + 0.2 * np.ptp(later)
    assert ax.get_title().endswith("epoch 1 off scale: train 2787, val 655")
    marks = [line for line in ax.lines if line.get_marker() == "^"]
    assert [(m.get_xdata()[0], m.get_ydata()[0]) for m in marks] == [(1, top), (1, top)]
    assert [m.get_color() for m in marks] == [ax.lines[0].get_color(), ax.lines[1].get_color()]


@pytest.mark.parametrize("first", [12.0, 50.0])
def test_loss_curve_keeps_a_first_epoch_that_is_not_far_off(tmp_path, monkeypatch, first):
    # Later epochs span 8..10.5: 12 is within three spans of them, 50 far beyond.
    values = [first, 10.0, 9.0, 8.5, 8.0]
    metrics = [{"epoch": e + 1, "train_loss": v, "val_loss": v + 0.5}
               for e, v in enumerate(values)]
    (ax,) = loss_panels(tmp_path, monkeypatch, metrics)
    if first == 12.0:
        assert ax.get_ylim()[1] > first + 0.5 and "off scale" not in ax.get_title()
    else:
        assert ax.get_ylim()[1] < first and "off scale" in ax.get_title()


def drawn_mosaic(tmp_path, monkeypatch, draw):
    """Call ``draw(path)``; return the PNG's pixels under the image's axes
    (grey level, the red channel) and the array the axes show."""
    figures = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or real_save(fig, path))
    path = draw(tmp_path / "f.png")
    img = read_png(path)
    from PIL import Image
    with Image.open(path) as png:
        assert png.info["dpi"] == pytest.approx((plots.DPI, plots.DPI), abs=0.1)
    assert plots.DPI >= 150
    (ax,) = figures[0].axes
    box = ax.get_window_extent()
    top, bottom = img.shape[0] - round(box.y1), img.shape[0] - round(box.y0)
    return img[top:bottom, round(box.x0):round(box.x1), 0], ax.get_images()[0].get_array()


def under_colour_map(grid):
    """Grey level of each value of ``grid`` in [0, 1] under plots.IMAGE_CMAP;
    NaN (padding) shows the white background."""
    import matplotlib
    grey = matplotlib.colormaps[plots.IMAGE_CMAP](np.nan_to_num(grid))[..., 0]
    return np.where(np.isnan(grid), 1.0, grey)


@pytest.mark.parametrize("shape, n, scale", [((8, 8), 16, 7), ((28, 20), 30, 3),
                                             ((20, 28), 7, 3), ((28, 28), 100, 2)])
def test_every_data_pixel_is_a_square_block_of_figure_pixels(tmp_path, monkeypatch,
                                                             shape, n, scale):
    X = RNG.random((n, shape[0] * shape[1]))
    pixels, shown = drawn_mosaic(tmp_path, monkeypatch,
                                 lambda path: plots.plot_samples(X, shape, path))
    ncols = math.ceil(math.sqrt(n))
    grid = plots.image_mosaic(X, shape, ncols)
    assert np.array_equal(np.ma.filled(shown, np.nan), grid, equal_nan=True)
    assert pixels.shape == (grid.shape[0] * scale, grid.shape[1] * scale)
    # The first tile, and the whole mosaic, are the data under the colour map,
    # each data pixel a scale x scale block: nothing resampled or smoothed.
    expected = under_colour_map(np.kron(grid, np.ones((scale, scale))))
    h, w = shape
    first = pixels[:h * scale, :w * scale]
    assert np.allclose(first, under_colour_map(np.kron(X[0].reshape(shape), np.ones((scale, scale)))),
                       atol=1.5 / 255)
    assert np.allclose(pixels, expected, atol=1.5 / 255)


def test_reconstructions_of_non_square_images_keep_their_shape(tmp_path, monkeypatch):
    X = RNG.random((30, 560))
    pixels, _ = drawn_mosaic(tmp_path, monkeypatch, lambda path: plots.plot_reconstructions(
        X, X * 0.5, (28, 20), path, 30))
    # One row of 30 originals over one of 30 reconstructions, 28x20 each, at 3x.
    assert pixels.shape == ((2 * 29 - 1) * 3, (30 * 21 - 1) * 3)
    assert np.allclose(pixels[87:171:3, :60:3], under_colour_map(X[0].reshape(28, 20) * 0.5),
                       atol=1.5 / 255)
    with pytest.raises(ValueError, match="differ in shape"):
        plots.plot_reconstructions(X, X[:3], (28, 20), tmp_path / "bad.png")


def test_data_outside_the_unit_range_spans_its_percentiles(tmp_path, monkeypatch):
    X = RNG.normal(100.0, 5.0, (9, 16))
    pixels, _ = drawn_mosaic(tmp_path, monkeypatch,
                             lambda path: plots.plot_samples(X, (4, 4), path))
    lo, hi = np.percentile(X, [1, 99])
    first = pixels[:56:14, :56:14]  # 4x4 images drawn at 14x
    assert np.allclose(first, under_colour_map(np.clip((X[0].reshape(4, 4) - lo) / (hi - lo), 0, 1)),
                       atol=1.5 / 255)


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


@pytest.mark.parametrize("latent_dim, labels", [(1, None), (2, True), (5, True), (5, None)])
def test_latent_scatter(tmp_path, latent_dim, labels):
    Z = RNG.normal(size=(200, latent_dim))
    y = RNG.integers(0, 10, 200) if labels else None
    img = read_png(plots.plot_latent(Z, y, tmp_path / "z.png"))
    assert img.shape[:2] == (round(4.5 * plots.DPI), 6 * plots.DPI)
    only(tmp_path, "z.png")


def legend_of(tmp_path, monkeypatch, *args, **kwargs):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_latent(*args, tmp_path / "z.png", **kwargs)
    legend = figures[0].axes[0].get_legend()
    return figures[0], [t.get_text() for t in legend.get_texts()], legend


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]


def test_latent_scatter_names_the_classes(tmp_path, monkeypatch):
    Z, y = RNG.normal(size=(300, 2)), RNG.integers(0, 10, 300)
    fig, names, legend = legend_of(tmp_path, monkeypatch, Z, y, class_names=FASHION)
    assert names == FASHION
    # Each point has its class's colour, the one its legend entry shows.
    fig.canvas.draw()  # a colour-mapped scatter's colours are set when it is drawn
    points = fig.axes[0].collections[0].get_facecolors()[:, :3]
    handles = getattr(legend, "legend_handles", None) or legend.legendHandles  # matplotlib < 3.7
    entry = np.array([matplotlib.colors.to_rgb(h.get_color()) for h in handles])
    assert np.allclose(points, entry[y])
    # Only the classes present are listed; without names, the labels themselves.
    _, names, _ = legend_of(tmp_path, monkeypatch, Z[y != 3], y[y != 3], class_names=FASHION)
    assert "Dress" not in names and len(names) == 9
    _, names, _ = legend_of(tmp_path, monkeypatch, Z, y)
    assert names == [str(d) for d in range(10)]
    with pytest.raises(ValueError, match="do not index the 3 class_names"):
        plots.plot_latent(Z, y, tmp_path / "x.png", class_names=["a", "b", "c"])


def test_latent_scatter_of_many_classes_has_a_colour_bar(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_latent(RNG.normal(size=(300, 2)), np.arange(300) % 25, tmp_path / "z.png")
    assert figures[0].axes[0].get_legend() is None
    assert len(figures[0].axes) == 2  # the scatter, the colour bar


def test_pca_projection_finds_the_spread_directions(tmp_path, monkeypatch):
    t = np.linspace(-1, 1, 101)
    A = np.column_stack([10 * t, t * t - np.mean(t * t), np.zeros_like(t)])  # uncorrelated
    Q = np.linalg.qr(RNG.normal(size=(3, 3)))[0]
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_latent(A @ Q.T + 5.0, None, tmp_path / "z.png")
    P = figures[0].axes[0].collections[0].get_offsets()
    assert np.allclose(np.abs(P), np.abs(A[:, :2]), atol=1e-9)
    # Each axis's largest loading is positive, so the figure's orientation is fixed.
    for i in range(2):
        sign = np.sign(Q[np.abs(Q[:, i]).argmax(), i])
        assert np.allclose(P[:, i], sign * A[:, i], atol=1e-9)


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


@pytest.mark.parametrize("shape, scale", [((8, 8), 6), ((28, 20), 3)])
def test_manifold_axes_show_the_z_of_each_tile(tmp_path, monkeypatch, shape, scale):
    model = VAE(latent_dim=2, hidden_dims=(4,), random_state=0).initialize(shape[0] * shape[1])
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_manifold(model, shape, tmp_path / "m.png", n=5)
    (ax,) = figures[0].axes
    z = ["-1.28", "-0.52", "0.00", "0.52", "1.28"]  # Phi^-1(.1 .. .9)
    assert [t.get_text() for t in ax.get_xticklabels()] == z
    assert [t.get_text() for t in ax.get_yticklabels()] == z[::-1]  # z2 upwards
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z1", "z2")
    h, w = shape  # each tick at the centre of its tile (tiles one pixel apart)
    assert np.allclose(ax.get_xticks(), [c * (w + 1) + (w - 1) / 2 for c in range(5)])
    assert np.allclose(ax.get_yticks(), [r * (h + 1) + (h - 1) / 2 for r in range(5)])
    box = ax.get_window_extent()  # figure pixels per data pixel: whole, >= 2
    assert box.width == pytest.approx((5 * (w + 1) - 1) * scale, abs=0.01)
    assert box.height == pytest.approx((5 * (h + 1) - 1) * scale, abs=0.01)


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
    monkeypatch.setattr(plots, "_image_figure", lambda rows, *a, **kw: drawn.append(rows))
    plots.plot_interpolations(model, X[:2], X[2:4], (28, 20), tmp_path / "i.png", steps=3)
    rows = drawn[0].reshape(2, 5, -1)  # 2 pairs: start, 3 decoded steps, end
    assert np.array_equal(rows[:, 0], X[:2]) and np.array_equal(rows[:, -1], X[2:4])
    z0, z1 = model.transform(X[:2]), model.transform(X[2:4])
    for j, t in enumerate((0.0, 0.5, 1.0)):
        assert np.allclose(rows[:, 1 + j], model.decode((1 - t) * z0 + t * z1), atol=1e-6)

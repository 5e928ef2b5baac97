"""Figure text fits: the title of every image figure lies inside the PNG,
however narrow its mosaic (the digits' interpolation title was cut on both
sides), and small images are drawn large."""
import matplotlib.image
import numpy as np
import pytest

from npvae import VAE
from npvae.app import plots

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model_4x4():
    X = RNG.random((64, 16))
    return VAE(latent_dim=2, hidden_dims=(4,), epochs=1, random_state=0).fit(X), X


def draw_each(model, X, folder):
    yield plots.plot_samples(X[:4], (4, 4), folder / "samples.png")
    yield plots.plot_reconstructions(X[:2], X[2:4], (4, 4), folder / "reconstructions.png")
    yield plots.plot_interpolations(model, X[:1], X[1:2], (4, 4), folder / "interp.png", steps=2)
    yield plots.plot_manifold(model, (4, 4), folder / "manifold.png", n=2)


def test_every_image_figure_title_fits_inside_the_png(model_4x4, tmp_path):
    model, X = model_4x4
    for path in draw_each(model, X, tmp_path):
        grey = matplotlib.image.imread(path)[..., :3].mean(axis=2)
        band = grey[:30]                      # the title line, above the mosaic
        assert band.min() < 0.5, path         # a title is drawn there
        # Nothing dark at the left or right edge: the text ends inside.
        assert band[:, :6].min() > 0.9 and band[:, -6:].min() > 0.9, path


def test_small_images_are_drawn_at_least_56_pixels_a_side(model_4x4, tmp_path):
    _, X = model_4x4
    # Two 4x4 images side by side, one data pixel per s x s block: s = 14.
    path = plots.plot_samples(np.array([[0.0] * 16, [1.0] * 16]), (4, 4), tmp_path / "s.png")
    grey = matplotlib.image.imread(path)[..., :3].mean(axis=2)
    # Below the title line, the black image (0 is black) is the only dark block.
    rows, cols = np.nonzero(grey[30:] < 0.1)
    assert rows.max() - rows.min() + 1 == 56 and cols.max() - cols.min() + 1 == 56
    assert rows.size == 56 * 56


def test_long_class_names_fit_left_of_the_rows(tmp_path):
    X = np.random.default_rng(0).random((16, 16))      # wider than the figure's minimum
    path = plots.plot_samples(X, (4, 4), tmp_path / "s.png", ncols=8,
                              row_labels=["T-shirt/top", "Ankle boot, a long name"])
    grey = matplotlib.image.imread(path)[..., :3].mean(axis=2)
    # Text drawn left of the mosaic, none of it cut at the figure's left edge.
    assert grey[40:, :6].min() > 0.9
    assert grey[40:, 6:grey.shape[1] // 3].min() < 0.5

"""Tests of npvae.app.figures, the figures of a run: what each figure is
given (class names, the labels of a conditional model's rows and classes)
and what reaches npvae.app.plots."""
import numpy as np
import pytest

from npvae import VAE
from npvae.app import cli, figures, plots, runs
from npvae.app.checkpoints import load_checkpoint
from npvae.app.datasets import CLASS_NAMES
from test_runs_say_what_they_are import TINY, run


def test_fashion_mnist_runs_name_their_classes_in_the_latent_figure(tmp_path, monkeypatch):
    seen = {}

    def fake_latent(Z, labels, path, class_names=None):
        seen["names"] = class_names
        return path
    monkeypatch.setattr(plots, "plot_latent", fake_latent)
    X = np.random.default_rng(0).random((6, 5))     # 5 features: no image figures
    model = VAE(latent_dim=2, hidden_dims=(3,), epochs=1, random_state=0).fit(X)
    for dataset, names in (("fashion-mnist", "Ankle boot"), ("digits", None)):
        config = {"dataset": dataset, "n_features": 5, "image_shape": None}
        figures.draw_run_figures(model, tmp_path, config, X, np.arange(6) % 2, [])
        assert (seen["names"][-1] if seen["names"] else None) == names


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cond"
    assert cli.main(["train", "--conditional", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def grabbed(monkeypatch):
    """What reaches the figure helpers of npvae.app.plots: (title, row labels, images)."""
    drawn = []

    def grab(rows, image_shape, ncols, title, path, min_tile=0, grid_ticks=None):
        drawn.append((title, grid_ticks and grid_ticks[1], np.asarray(rows), ncols))
        return path
    monkeypatch.setattr(plots, "_image_figure", grab)
    return drawn


def test_conditional_samples_label_their_rows_and_title_the_class(conditional_run, capsys,
                                                                  grabbed):
    assert run(capsys, "sample", conditional_run, "--n", "20")[0] == 0
    title, rows, _, ncols = grabbed[-1]
    assert rows == [str(c) for c in range(10)] and ncols == 2
    assert "one row per class" in title
    assert run(capsys, "sample", conditional_run, "--label", "3", "--n", "4")[0] == 0
    title, rows, _, _ = grabbed[-1]
    assert title.startswith("samples of class 3 ") and rows is None


def test_class_names_label_the_rows_where_the_data_set_has_them(conditional_run, tmp_path,
                                                                grabbed):
    model = load_checkpoint(conditional_run)
    names = CLASS_NAMES["fashion-mnist"]
    figures.draw_samples(model, (8, 8), tmp_path / "s.png", 10, class_names=names)
    assert grabbed[-1][1] == list(names)
    figures.draw_samples(model, (8, 8), tmp_path / "s.png", 4, label=8, class_names=names)
    assert grabbed[-1][0].startswith("samples of class 8 (Bag) ")


def test_conditional_interpolate_stays_within_a_class(conditional_run, capsys, grabbed):
    code, out, err = run(capsys, "interpolate", conditional_run, "--pairs", "12",
                         "--steps", "3")
    assert code == 0 and out.endswith("interpolations-12x3.png\n"), err
    title, rows, images, ncols = grabbed[-1]
    assert "within a class" in title and ncols == 5
    # The classes in turn, then again: two pairs of 0 and 1.
    assert rows == [str(c) for c in range(10)] + ["0", "1"]
    model = load_checkpoint(conditional_run)
    data = runs.load_splits(runs.read_config(conditional_run)[1])
    X, y = data.X_test, data.y_test
    for r, label in enumerate(rows):
        c = int(label)
        of_c = np.flatnonzero(y == c)
        first, second = (of_c[0], of_c[1]) if r < 10 else (of_c[2], of_c[3])
        row = images[r * 5:(r + 1) * 5]
        np.testing.assert_array_equal(row[0], X[first])
        np.testing.assert_array_equal(row[-1], X[second])
        # Both ends encoded given the class, every step decoded given it.
        z0, z1 = model.transform(X[[first]], [c]), model.transform(X[[second]], [c])
        middle = model.decode((z0 + z1) / 2, [c])
        np.testing.assert_allclose(row[2], middle[0], rtol=1e-5, atol=1e-6)
        assert not np.allclose(middle, model.decode((z0 + z1) / 2, [(c + 1) % 10]))

"""The figures of a run: what ``npvae train`` draws into a run folder's
``figures/`` when training ends (the loss curves, the latent codes and,
for image data, reconstructions, samples, the manifold of a 2-d code and
interpolations), and the one figure each of ``npvae sample``,
``reconstruct`` and ``interpolate`` draws.

A figure of a conditional model is drawn given the labels: its samples
one row per class, its reconstructions and interpolations given the rows'
labels.  The unconditional models ignore labels (as scikit-learn's
unsupervised estimators do), so the test split's labels are passed to
every model's ``transform`` and ``decode``.
"""
import sys

import numpy as np

from . import plots
from .datasets import CLASS_NAMES

__all__ = ["image_shape", "draw_run_figures", "draw_reconstructions", "draw_samples",
           "draw_interpolations"]


def image_shape(config, n_features, required=False):
    """The (height, width) to draw a run's ``n_features`` features (its
    model's) as, or None (said on stderr; with ``required``, a ValueError)."""
    shape = plots.infer_image_shape(n_features, config.get("image_shape"))
    if shape is None:
        why = (f"the {n_features} features are not an image (the data set has "
               "no image shape and the count is not a perfect square)")
        if required:
            raise ValueError(f"{why}; there is nothing to draw")
        print(f"npvae: {why}: skipping the image figures", file=sys.stderr)
    elif not config.get("image_shape"):
        # Only the count says "image" here; a table of 16 columns is not one.
        print(f"npvae: drawing the {n_features} features as {shape[0]}x{shape[1]} "
              "images, a guess from their count (save X as (samples, height, width) to "
              "give the shape)", file=sys.stderr)
    return shape


def draw_run_figures(model, folder, config, X, y, metrics):
    """Draw every figure of a trained run (its config, its test split ``X``
    with labels ``y``, its metrics) into ``folder``, the run's
    ``figures/``; return their paths."""
    folder.mkdir(exist_ok=True)
    paths = [plots.plot_loss_curves(metrics, folder / "loss.png")] if metrics else []
    names = CLASS_NAMES.get(config.get("dataset"))
    paths.append(plots.plot_latent(model.transform(X, y), y, folder / "latent.png", names))
    shape = image_shape(config, model.n_features_in_)
    if shape is not None:
        paths.append(draw_reconstructions(model, X, shape, folder / "reconstructions.png", y=y))
        paths.append(draw_samples(model, shape, folder / "samples.png", class_names=names))
        # The manifold decodes codes without labels: a conditional model has
        # its label grid in samples.png instead.
        if not model.needs_labels and model.latent_dim == 2:
            paths.append(plots.plot_manifold(model, shape, folder / "manifold.png"))
        paths.append(draw_interpolations(model, X, shape, folder / "interpolations.png", y=y,
                                         class_names=names))
    return paths


def draw_reconstructions(model, X, shape, path, n=20, y=None):
    """The first ``n`` rows of ``X`` above their reconstructions (a
    conditional model's with the labels ``y`` of the rows)."""
    X, y = X[:n], None if y is None else y[:n]
    return plots.plot_reconstructions(X, model.decode(model.transform(X, y), y), shape, path)


def draw_samples(model, shape, path, n=100, random_state=0, label=None, class_names=None):
    """A grid of ``n`` samples; a conditional model's has one row per class
    (``n`` shared out among them), each row labelled with the class
    (``class_names[c]`` when given), or ``n`` of the one class ``label``."""
    if not model.needs_labels:
        if label is not None:
            raise ValueError(f"--label is for conditional runs; this run holds a "
                             f"{type(model).__name__}, which takes no labels")
        return plots.plot_samples(model.sample(n, random_state=random_state), shape, path)
    if label is not None:
        # As typed on the command line: "3" is the class 3.
        c = next((c for c in model.classes_.tolist() if str(c) == str(label)), None)
        if c is None:
            raise ValueError(f"--label {label} is not a class of this run; its classes are "
                             f"{', '.join(map(str, model.classes_.tolist()))}")
        called = "" if class_names is None else f" ({class_names[c]})"
        return plots.plot_samples(model.sample(n, c, random_state=random_state), shape, path,
                                  title=f"samples of class {c}{called} from the prior "
                                  "(decoder means given the class)")
    per_class = max(1, round(n / len(model.classes_)))
    y = np.repeat(model.classes_, per_class)
    return plots.plot_samples(
        model.sample(len(y), y, random_state=random_state), shape, path, ncols=per_class,
        row_labels=plots.class_labels(model.classes_, class_names),
        title="samples from the prior, one row per class (decoder means given the class)")


def draw_interpolations(model, X, shape, path, pairs=8, steps=8, y=None, class_names=None):
    """Interpolations between the first ``pairs`` rows of ``X`` and the next
    ``pairs``; for a conditional model, between two rows of one class (the
    classes in turn, labels ``y``), decoded given it."""
    if not model.needs_labels:
        if X.shape[0] < 2:
            raise ValueError("interpolations need at least 2 test examples")
        pairs = min(pairs, X.shape[0] // 2)
        return plots.plot_interpolations(model, X[:pairs], X[pairs:2 * pairs], shape, path, steps)
    by_class = [(c, np.flatnonzero(y == c)) for c in model.classes_]
    chosen = [(c, rows[2 * k], rows[2 * k + 1]) for k in range(len(y) // 2)
              for c, rows in by_class if len(rows) > 2 * k + 1][:pairs]
    if not chosen:
        raise ValueError("interpolations within a class need 2 test examples of one class")
    c, i, j = map(np.array, zip(*chosen))
    return plots.plot_interpolations(model, X[i], X[j], shape, path, steps, y=c,
                                     row_labels=plots.class_labels(c, class_names))

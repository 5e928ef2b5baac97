r"""Figures of a trained model, as PNG files.

Every function takes arrays (or a model) and an output path, draws with
matplotlib's Agg renderer (no display needed, pyplot's global state
untouched), writes the PNG atomically (temporary file, then rename) and
returns the path.  Images are rows of ``X`` reshaped to ``image_shape``
(``(height, width)``, row-major), so non-square images such as Frey's
28x20 faces are drawn as they are.
"""
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
from sklearn.decomposition import PCA

from ..models.saving import FIGURE_SOFTWARE, atomic_write

__all__ = ["DPI", "IMAGE_CMAP", "infer_image_shape", "image_mosaic", "show_images",
           "plot_loss_curves", "plot_reconstructions", "plot_samples", "plot_latent",
           "plot_manifold", "plot_interpolations", "class_labels"]

DPI = 150
#: Pixel values drawn as brightness, 0 black to 1 white, for every data set:
#: digits appear white on black (as MNIST is usually shown) and Frey's faces
#: as photographs, not negatives.
IMAGE_CMAP = "gray"
#: Figure pixels an image's shorter side is scaled up to, at least: MNIST's
#: 28x28 at 2x, the 8x8 digits at 7x, large enough to see beside them.
_MIN_TILE = 56
_TITLE_SIZE = 9  # points


def infer_image_shape(n_features, image_shape=None):
    """The ``(height, width)`` to draw ``n_features`` values as an image:
    ``image_shape`` when given (checked), else square when ``n_features``
    is a perfect square, else None (not an image)."""
    if image_shape is not None:
        h, w = image_shape
        if h * w != n_features:
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold "
                             f"{n_features} features")
        return (int(h), int(w))
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else None


def _figure(**kwargs):
    """A new matplotlib ``Figure`` on an Agg canvas, at :data:`DPI`."""
    # Imported here, not at the top: matplotlib takes ~0.3 s to import, which
    # the commands that draw nothing (``npvae --help``, ``evaluate``,
    # ``gradcheck``, any bad-input error) need not pay.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    return atomic_write(Path(path), lambda f: fig.savefig(
        f, format="png", dpi=DPI, metadata={"Software": FIGURE_SOFTWARE}))


def image_mosaic(images, image_shape, ncols, pad=1):
    """Tile ``images`` (one image a row, row-major ``image_shape``) into one
    2-D array, ``ncols`` per row; gaps and empty cells are NaN (drawn as
    the background)."""
    images = np.asarray(images, dtype=np.float64)
    h, w = image_shape
    nrows = -(-images.shape[0] // ncols)
    # Cells of (h + pad) x (w + pad), the image in the top left of each.
    cells = np.full((nrows * ncols, h + pad, w + pad), np.nan)
    cells[:images.shape[0], :h, :w] = images.reshape(-1, h, w)
    grid = cells.reshape(nrows, ncols, h + pad, w + pad).swapaxes(1, 2)
    return grid.reshape(nrows * (h + pad), ncols * (w + pad))[:nrows * (h + pad) - pad,
                                                              :ncols * (w + pad) - pad]


def show_images(ax, images, image_shape, ncols):
    """Draw ``images`` as a mosaic (:func:`image_mosaic`) on the matplotlib
    axes ``ax``, in :data:`IMAGE_CMAP`: data in [0, 1] as it is, other data
    from its 1st to its 99th percentile.  The one way figures of npvae and
    its demos draw images."""
    grid = image_mosaic(images, image_shape, ncols)
    # NaN cells (padding) are ignored: one NaN would otherwise make the
    # range NaN and the whole mosaic a blank canvas.
    lo, hi = (0.0, 1.0) if np.nanmin(grid) >= 0 and np.nanmax(grid) <= 1 \
        else np.nanpercentile(grid, [1, 99])
    ax.imshow(grid, cmap=IMAGE_CMAP, vmin=lo, vmax=max(hi, lo + 1e-12),
              interpolation="nearest")  # square pixels
    ax.set(xticks=[], yticks=[])
    ax.spines[:].set_visible(False)
    return grid


def _text_width(text, size):
    """Width in figure pixels of one line of ``text`` at ``size`` points
    in matplotlib's default font, at :data:`DPI`."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath
    return TextPath((0, 0), text, size=size, prop=FontProperties()).get_extents().width * DPI / 72


def _image_figure(rows, image_shape, ncols, title, path, min_tile=_MIN_TILE, grid_ticks=None):
    """One figure of a mosaic of images, ``ncols`` per row, each data pixel
    drawn as an ``s`` x ``s`` block of figure pixels (``s`` a whole number,
    so that no pixel is resampled: an image at least ``min_tile`` pixels
    on each side).  ``grid_ticks=(x_values, y_values, x_label, y_label)`` labels the
    columns and rows of tiles: numbers (the manifold's z values) to two
    decimals, strings (a conditional model's classes) as they are; with
    ``x_values`` None only the rows."""
    images = np.asarray(rows, dtype=np.float64)
    h, w = image_shape
    nrows = -(-images.shape[0] // ncols)
    s = max(1, math.ceil(min_tile / min(h, w)))
    grid_h, grid_w = (nrows * (h + 1) - 1) * s, (ncols * (w + 1) - 1) * s
    # Margins in figure pixels: a title line above, tick labels left and below.
    top, side = 44, 8
    left, bottom = side, side
    if grid_ticks:
        x_values, y_values, x_label, y_label = grid_ticks
        y_values = [v if isinstance(v, str) else f"{v:.2f}" for v in y_values]
        # Room for the longest row label (a class name) beside the y label.
        left = max(92, math.ceil(max(_text_width(v, 7) for v in y_values)) + 56)
        bottom = side if x_values is None else 60
    # Wide enough for the title too (a centred title wider than the figure is cut on both sides).
    width = max(grid_w + left + side, math.ceil(_text_width(title, _TITLE_SIZE)) + 4 * side, 480)
    height = grid_h + top + bottom
    x0 = left + (width - grid_w - left - side) // 2
    # A hair over the whole size, because Agg truncates the canvas to whole pixels.
    fig = _figure(figsize=((width + 1e-3) / DPI, (height + 1e-3) / DPI))
    ax = fig.add_axes((x0 / width, bottom / height, grid_w / width, grid_h / height))
    show_images(ax, images, image_shape, ncols)
    if grid_ticks:
        if x_values is not None:
            ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(ncols)],
                          [f"{v:.2f}" for v in x_values], fontsize=7)
            ax.set_xlabel(x_label, fontsize=9)
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(nrows)], y_values, fontsize=7)
        ax.tick_params(length=2, pad=2)
        ax.set_ylabel(y_label, fontsize=9)
    fig.suptitle(title, fontsize=_TITLE_SIZE, y=1 - 8 / height, va="top")
    return _save(fig, path)


def plot_loss_curves(metrics, path):
    """Training and validation curves per epoch: the loss, and its
    reconstruction (:math:`-\\log p(x \\mid z)`) and KL terms apart.

    For a VAE the first panel compares the negative ELBO of both splits;
    when the training objective weighs the KL otherwise (beta, warm-up) it
    is drawn there too, dotted.

    Parameters
    ----------
    metrics : list of dict
        One per epoch, with ``epoch`` and ``train_<t>``/``val_<t>`` for
        ``t`` in loss, recon and (VAE) kl.
    path : str or os.PathLike
    """
    if not metrics:
        raise ValueError("no epochs to plot")
    from matplotlib.ticker import MaxNLocator  # matplotlib loads only to draw

    epochs = [m["epoch"] for m in metrics]
    vae = "train_kl" in metrics[0]
    terms = [t for t in ("loss", "recon", "kl") if f"train_{t}" in metrics[0]]
    titles = {"loss": "-ELBO (nats)" if vae else "loss (nats)",
              "recon": "reconstruction -log p(x|z)", "kl": "KL(q(z|x) || p(z))"}
    fig = _figure(figsize=(3.2 * len(terms), 2.8), layout="constrained")
    marker = "." if len(epochs) < 30 else None
    for ax, t in zip(fig.subplots(1, len(terms), squeeze=False).flat, terms):
        objective, val = ([m[f"{split}_{t}"] for m in metrics] for split in ("train", "val"))
        # val_loss is the negative ELBO; the training objective weighs the
        # KL by beta (and the warm-up), so compare like with like and
        # draw the objective apart when it differs.
        train = [m["train_recon"] + m["train_kl"] for m in metrics] if t == "loss" and vae \
            else objective
        lines = [ax.plot(epochs, y, style, marker=marker, label=split)[0]
                 for split, y, style in (("train", train, "-"), ("val", val, "--"))]
        if not np.allclose(objective, train, rtol=1e-9, atol=1e-9):
            lines += ax.plot(epochs, objective, ":", marker=marker, label="train objective (beta)")
        clipped = _clip_first_epoch(ax, lines)
        ax.set_title(titles[t] + (f"\n{clipped}" if clipped else ""), fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no "epoch 0.96"
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _clip_first_epoch(ax, lines):
    """Set the y range from the epochs after the first when the first is far
    outside it (a Gaussian decoder's first epoch can be thousands of nats
    above the rest and squash the curve flat); mark each clipped point by a
    triangle on the edge and return a note of their values ("" if none)."""
    values = np.array([line.get_ydata() for line in lines], dtype=np.float64)
    if values.shape[1] < 3 or not np.all(np.isfinite(values)):
        return ""
    lo, hi = values[:, 1:].min(), values[:, 1:].max()
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    first = values[:, 0]
    # Clip only what would leave the later epochs under a quarter of the axis.
    out = (first > hi + 3 * span) | (first < lo - 3 * span)
    if not out.any():
        return ""
    kept = np.append(values[:, 1:], first[~out])
    bottom, top = kept.min() - 0.08 * span, kept.max() + 0.08 * span
    ax.set_ylim(bottom, top)
    notes = []
    x = lines[0].get_xdata()[0]
    for i in np.flatnonzero(out):
        edge, marker = (top, "^") if first[i] > top else (bottom, "v")
        ax.plot([x], [edge], marker, color=lines[i].get_color(), ms=7, clip_on=False)
        notes.append(f"{lines[i].get_label()} {first[i]:.4g}")
    return f"epoch {x:g} off scale: " + ", ".join(notes)


def plot_reconstructions(originals, reconstructions, image_shape, path, ncols=10):
    """Originals with their reconstructions below, ``ncols`` pairs a row."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    if originals.shape != reconstructions.shape:
        raise ValueError(f"originals {originals.shape} and reconstructions "
                         f"{reconstructions.shape} differ in shape")
    (n, d), ncols = originals.shape, min(ncols, originals.shape[0])
    # Blocks of ncols originals above their reconstructions, the last filled with NaN.
    pair = np.stack([np.pad(np.asarray(a, np.float64), ((0, -n % ncols), (0, 0)),
                            constant_values=np.nan) for a in (originals, reconstructions)])
    rows = pair.reshape(2, -1, ncols, d).swapaxes(0, 1).reshape(-1, d)
    return _image_figure(rows, image_shape, ncols, "test images above their reconstructions", path)


def plot_samples(samples, image_shape, path, ncols=None, title=None, row_labels=None):
    """A grid of samples (decoder means of :math:`z \\sim p(z)`), titled
    ``title`` (default: samples from the prior), its rows labelled by
    ``row_labels`` (a list of str: a conditional model's class of each row)."""
    samples = np.asarray(samples)
    ncols = ncols or math.ceil(math.sqrt(samples.shape[0]))
    return _image_figure(samples, image_shape, ncols,
                         title or "samples from the prior (decoder means)", path,
                         grid_ticks=row_labels and (None, row_labels, None, "class"))


def plot_latent(Z, labels, path, class_names=None):
    """Latent means of a data set, coloured by label when there are labels;
    projected onto their two principal axes when ``latent_dim > 2``.

    With up to ten classes each has a colour and a legend entry, named
    ``class_names[label]`` when given (labels are then integers indexing
    it), else by the label itself; more classes are coloured along a
    colour bar."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] < 1:
        raise ValueError(f"Z must be 2-D, got shape {Z.shape}")
    if Z.shape[1] == 1:
        Z, xlabel, ylabel = np.column_stack([Z[:, 0], np.zeros(len(Z))]), "z", ""
    elif Z.shape[1] == 2:
        xlabel, ylabel = "z1", "z2"
    else:
        # The exact SVD (not a randomised one): the same figure on every run,
        # each axis's largest loading positive.
        Z = PCA(n_components=2, svd_solver="full").fit_transform(Z)
        xlabel, ylabel = "PC 1 of the means", "PC 2 of the means"
    fig = _figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot(xlabel=xlabel, ylabel=ylabel)
    if labels is None:
        ax.scatter(Z[:, 0], Z[:, 1], s=4, alpha=0.6)
    else:
        classes, index = np.unique(np.asarray(labels), return_inverse=True)
        names = class_labels(classes, class_names)
        few = len(classes) <= 10
        # One scatter in data order, so that no class is drawn over the others;
        # up to ten classes in the colours C0-C9 (tab10), each its own.
        points = ax.scatter(Z[:, 0], Z[:, 1], c=index, s=4, alpha=0.7,
                            cmap="tab10" if few else "viridis", vmin=0, vmax=9 if few else None)
        if few:
            handles, _ = points.legend_elements(num=None, size=5, alpha=None)
            ax.legend(handles, names, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
                      frameon=False, title="label" if class_names is None else None)
        else:
            fig.colorbar(points, ax=ax, label="label")
    ax.set_title("latent means of the test set", fontsize=9)
    return _save(fig, path)


def class_labels(classes, class_names):
    """The name of each class, as legends and rows show it:
    ``class_names[c]``, or ``c`` itself."""
    if class_names is None:
        return [str(c) for c in classes]
    class_names = list(class_names)
    if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 \
            or classes.max() >= len(class_names):
        raise ValueError(f"labels {classes.min()}..{classes.max()} do not index the "
                         f"{len(class_names)} class_names")
    return [str(class_names[c]) for c in classes]


def plot_manifold(model, image_shape, path, n=12):
    r"""The decoder's means over a 2-D latent grid, as Kingma & Welling
    (2014, fig. 4) draw it: the grid is equally spaced in probability,
    :math:`z = \Phi^{-1}(p)` for :math:`p` from :math:`\frac{1}{2n}` to
    :math:`1 - \frac{1}{2n}`, so that each cell holds equal prior mass."""
    if model.latent_dim != 2:
        raise ValueError(f"the manifold is drawn for latent_dim=2, got {model.latent_dim}")
    inv = NormalDist().inv_cdf
    ticks = [inv((i + 0.5) / n) for i in range(n)]
    # Rows from top to bottom go down in z2, so the picture has z2 upwards.
    Z = np.array([[z1, z2] for z2 in reversed(ticks) for z1 in ticks])
    return _image_figure(model.decode(Z), image_shape, n,
                         "decoded means over an inverse-normal-CDF grid of z", path,
                         min_tile=48, grid_ticks=(ticks, ticks[::-1], "z1", "z2"))


def plot_interpolations(model, starts, ends, image_shape, path, steps=8, y=None,
                        row_labels=None):
    """Rows of decoded linear interpolations between the latent means of
    ``starts[i]`` and ``ends[i]``, with the two originals at the ends.  For
    a conditional model ``y[i]`` is the class of both: the two codes are
    encoded and every step decoded given it, the rows labelled by
    ``row_labels`` (the class names)."""
    starts, ends = np.asarray(starts), np.asarray(ends)
    if starts.shape != ends.shape:
        raise ValueError(f"starts {starts.shape} and ends {ends.shape} differ in shape")
    given = () if y is None else (np.asarray(y),)
    z0, z1 = model.transform(starts, *given), model.transform(ends, *given)
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    Z = ((1 - t) * z0[:, None, :] + t * z1[:, None, :]).reshape(-1, z0.shape[1])
    decoded = model.decode(Z, *(np.repeat(g, steps) for g in given)).reshape(
        starts.shape[0], steps, -1)
    rows = np.concatenate([starts[:, None, :], decoded, ends[:, None, :]], axis=1)
    title = "interpolations between latent means (originals at the ends)" if y is None else \
        "interpolations within a class, decoded given it (originals at the ends)"
    return _image_figure(rows.reshape(-1, starts.shape[1]), image_shape, steps + 2, title,
                         path, grid_ticks=row_labels and (None, row_labels, None, "class"))

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

from .files import atomic_write

__all__ = ["infer_image_shape", "plot_loss_curves", "plot_reconstructions",
           "plot_samples", "plot_latent", "plot_manifold", "plot_interpolations"]

_DPI = 80


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
    """A new matplotlib ``Figure`` on an Agg canvas."""
    # Imported here, not at the top: matplotlib takes ~0.3 s to import, which
    # the commands that draw nothing (``npvae --help``, ``evaluate``,
    # ``gradcheck``, any bad-input error) need not pay.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))
    return path


def _mosaic(images, image_shape, ncols, pad=1):
    """Tile rows of ``images`` into one 2-D array, ``ncols`` per row; gaps
    and empty cells are NaN (drawn as the background)."""
    h, w = image_shape
    n = images.shape[0]
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        grid[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = \
            img.reshape(h, w)
    return grid


def _show(ax, grid, values):
    """Draw a mosaic in grey: [0, 1] data as it is, other data from its
    1st to 99th percentile.  NaN cells (padding) are ignored: one NaN would
    otherwise make the range NaN and the whole mosaic a blank canvas."""
    lo, hi = (0.0, 1.0) if np.nanmin(values) >= 0 and np.nanmax(values) <= 1 \
        else np.nanpercentile(values, [1, 99])
    ax.imshow(grid, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-12), interpolation="nearest")
    ax.set_axis_off()


def _image_figure(rows, image_shape, ncols, title, path):
    """One figure of a mosaic of images, ``ncols`` per row."""
    images = np.asarray(rows, dtype=np.float64)
    grid = _mosaic(images, image_shape, ncols)
    h, w = image_shape
    nrows = -(-images.shape[0] // ncols)
    cell = 0.35  # inches per image height: 28 pixels at the 80 dpi of _DPI
    title_room = 0.35
    width, height = max(4.0, ncols * cell * w / h), nrows * cell + title_room
    fig = _figure(figsize=(width, height))
    ax = fig.add_axes((0.01, 0.01, 0.98, 1 - title_room / height - 0.01))
    _show(ax, grid, images)
    fig.suptitle(title, fontsize=9)
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
    epochs = [m["epoch"] for m in metrics]
    terms = [t for t in ("loss", "recon", "kl") if f"train_{t}" in metrics[0]]
    titles = {"loss": "loss (nats)", "recon": "reconstruction -log p(x|z)",
              "kl": "KL(q(z|x) || p(z))"}
    from matplotlib.ticker import MaxNLocator  # matplotlib loads only to draw

    fig = _figure(figsize=(3.2 * len(terms), 2.8), layout="constrained")
    marker = "." if len(epochs) < 30 else None
    for i, t in enumerate(terms):
        ax = fig.add_subplot(1, len(terms), i + 1)
        curves = {split: [m[f"{split}_{t}"] for m in metrics] for split in ("train", "val")}
        objective = None
        if t == "loss" and "train_kl" in metrics[0]:
            # val_loss is the negative ELBO; the training objective weighs the
            # KL by beta (and the warm-up), so compare like with like and
            # draw the objective apart when it differs.
            objective = curves["train"]
            curves["train"] = [m["train_recon"] + m["train_kl"] for m in metrics]
            titles["loss"] = "-ELBO (nats)"
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(epochs, curves[split], style, marker=marker, label=split)
        if objective is not None and not np.allclose(objective, curves["train"],
                                                     rtol=1e-9, atol=1e-9):
            ax.plot(epochs, objective, ":", marker=marker, label="train objective (beta)")
        ax.set_title(titles[t], fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no "epoch 0.96"
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_reconstructions(originals, reconstructions, image_shape, path, ncols=10):
    """Originals with their reconstructions below, ``ncols`` pairs a row."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    if originals.shape != reconstructions.shape:
        raise ValueError(f"originals {originals.shape} and reconstructions "
                         f"{reconstructions.shape} differ in shape")
    ncols = min(ncols, originals.shape[0])
    rows = []
    for start in range(0, originals.shape[0], ncols):
        block = slice(start, start + ncols)
        for part in (originals[block], reconstructions[block]):
            rows.extend(part)
            rows.extend(np.full_like(part[0], np.nan) for _ in range(ncols - part.shape[0]))
    return _image_figure(rows, image_shape, ncols,
                         "test images above their reconstructions", path)


def plot_samples(samples, image_shape, path, ncols=None):
    """A grid of samples (decoder means of :math:`z \\sim N(0, I)`)."""
    samples = np.asarray(samples)
    ncols = ncols or math.ceil(math.sqrt(samples.shape[0]))
    return _image_figure(samples, image_shape, ncols, "samples from the prior (decoder means)",
                         path)


def _pca_2d(Z):
    """Project onto the two leading principal axes, with signs fixed so
    that the largest loading of each axis is positive."""
    Zc = Z - Z.mean(axis=0)
    _, _, Vt = np.linalg.svd(Zc, full_matrices=False)
    Vt = Vt[:2]
    Vt *= np.sign(Vt[np.arange(2), np.abs(Vt).argmax(axis=1)])[:, None]
    return Zc @ Vt.T


def plot_latent(Z, labels, path):
    """Latent means of a data set, coloured by label when there are labels;
    projected onto their two principal axes when ``latent_dim > 2``."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] < 1:
        raise ValueError(f"Z must be 2-D, got shape {Z.shape}")
    if Z.shape[1] == 1:
        Z, xlabel, ylabel = np.column_stack([Z[:, 0], np.zeros(len(Z))]), "z", ""
    elif Z.shape[1] == 2:
        xlabel, ylabel = "z1", "z2"
    else:
        Z, xlabel, ylabel = _pca_2d(Z), "PC 1 of the means", "PC 2 of the means"
    fig = _figure(figsize=(5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(Z[:, 0], Z[:, 1], s=4, alpha=0.6)
    else:
        points = ax.scatter(Z[:, 0], Z[:, 1], c=np.asarray(labels), cmap="tab10", s=4,
                            alpha=0.7, vmin=-0.5, vmax=9.5)
        fig.colorbar(points, ax=ax, ticks=range(10), label="label")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("latent means of the test set", fontsize=9)
    return _save(fig, path)


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
                         "decoded means over an inverse-normal-CDF grid of z", path)


def plot_interpolations(model, starts, ends, image_shape, path, steps=8):
    """Rows of decoded linear interpolations between the latent means of
    ``starts[i]`` and ``ends[i]``, with the two originals at the ends."""
    starts, ends = np.asarray(starts), np.asarray(ends)
    if starts.shape != ends.shape:
        raise ValueError(f"starts {starts.shape} and ends {ends.shape} differ in shape")
    z0, z1 = model.transform(starts), model.transform(ends)
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    Z = ((1 - t) * z0[:, None, :] + t * z1[:, None, :]).reshape(-1, z0.shape[1])
    decoded = model.decode(Z).reshape(starts.shape[0], steps, -1)
    rows = np.concatenate([starts[:, None, :], decoded, ends[:, None, :]], axis=1)
    return _image_figure(rows.reshape(-1, starts.shape[1]), image_shape, steps + 2,
                         "interpolations between latent means (originals at the ends)", path)

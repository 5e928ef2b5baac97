"""What the demos share: the command line, the digits, figure saving and
the tiling of images.

Every demo takes ``--fast`` (a few epochs, for the smoke tests) and
``--out DIR`` (where its figure goes, ``docs/`` by default), and prints
its headline numbers as ``name = value`` lines.
"""
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from npvae.files import atomic_write  # noqa: E402
from npvae.datasets import load_dataset  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
SHAPE = (8, 8)


def parse_args(description):
    """``--fast`` and ``--out DIR``; ``NPVAE_DEMO_FAST=1`` also means fast."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true",
                        help="train for a few epochs only (smoke test)")
    parser.add_argument("--out", type=Path, default=DOCS,
                        help="folder for the figure (default: docs/)")
    args = parser.parse_args()
    args.fast = args.fast or os.environ.get("NPVAE_DEMO_FAST") == "1"
    return args


def digits():
    """The bundled 8x8 digits in [0, 1] (float32), split by
    :func:`npvae.datasets.load_dataset`: ``X_train, X_test, y_train, y_test``."""
    d = load_dataset("digits")
    return d.X_train, d.X_test, d.y_train, d.y_test


def mean_elbo(model, X, draws):
    """The ELBO per example averaged over ``draws`` seeded draws of the
    reparameterization noise, steadier than one draw (``score_samples``)."""
    return np.mean([np.subtract(*model.elbo_terms(X, random_state=s))
                    for s in range(draws)], axis=0)


def report(name, value):
    """Print one headline number in the ``name = value`` form the tests read."""
    print(f"{name} = {value:.4f}", flush=True)


def show_images(ax, images, ncols, title=None):
    """Tile ``images`` (rows of 64 pixels) into one grey picture on ``ax``."""
    images = np.clip(np.asarray(images, dtype=float), 0, 1).reshape(-1, *SHAPE)
    nrows = -(-len(images) // ncols)
    h, w = SHAPE
    canvas = np.ones((nrows * (h + 1) - 1, ncols * (w + 1) - 1))
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def save_figure(fig, out, name):
    """Write ``fig`` as ``out/name`` (PNG, modest dpi) with
    :func:`npvae.files.atomic_write`, so a crash never leaves half a
    file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write(out / name,
                        lambda f: fig.savefig(f, format="png", dpi=72, bbox_inches="tight"))
    plt.close(fig)
    print(f"figure: {path}", flush=True)
    return path

"""What the demos share: the command line, the digits, figure saving and
the tiling of images.

Every demo takes ``--fast`` (a few epochs, for the smoke tests) and
``--out DIR`` (where its figure goes: ``demo-output/`` in the current
folder by default, so that a run never replaces the committed figures;
``--out docs`` redraws those), and prints its headline numbers as
``name = value`` lines and the path of its figure.
"""
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from npvae.app import plots  # noqa: E402
from npvae.models.saving import atomic_write  # noqa: E402
from npvae.app.datasets import load_dataset  # noqa: E402

OUT = Path("demo-output")
SHAPE = (8, 8)


def parse_args(description):
    """``--fast`` and ``--out DIR``; ``NPVAE_DEMO_FAST=1`` also means fast."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true",
                        help="train for a few epochs only (smoke test)")
    parser.add_argument("--out", type=Path, default=OUT,
                        help="folder for the figure (default: %(default)s/ in the current "
                             "folder; --out docs redraws the committed figures)")
    args = parser.parse_args()
    args.fast = args.fast or os.environ.get("NPVAE_DEMO_FAST") == "1"
    return args


def digits():
    """The bundled 8x8 digits in [0, 1] (float32), split by
    :func:`npvae.app.datasets.load_dataset`: ``X_train, X_test, y_train, y_test``."""
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
    """Tile ``images`` (rows of 64 pixels, clipped to [0, 1]) on ``ax`` with
    :func:`npvae.app.plots.show_images`, the colours of every npvae figure."""
    plots.show_images(ax, np.clip(np.asarray(images, dtype=float), 0, 1), SHAPE, ncols)
    if title:
        ax.set_title(title, fontsize=9)


def save_figure(fig, out, name):
    """Write ``fig`` as ``out/name`` (PNG at :data:`npvae.app.plots.DPI`) with
    :func:`npvae.models.saving.atomic_write`, so a crash never leaves half a
    file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write(out / name,
                        lambda f: fig.savefig(f, format="png", dpi=plots.DPI, bbox_inches="tight"))
    plt.close(fig)
    print(f"figure: {path}", flush=True)
    return path

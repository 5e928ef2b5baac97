r"""Bernoulli against continuous Bernoulli on grey-level MNIST: how bright
the reconstructions are, and test ELBOs that are real log-densities.

Binary cross-entropy on grey pixels is the Bernoulli's formula without its
normalising constant (docs/math.md, section 10): its "ELBO" is no bound on
a density, and leaves out :math:`\sum_d \log C(\eta_d) \ge 784 \log 2`
nats per image.  The continuous Bernoulli puts the constant back, so its
test ELBO is in the same units as a Gaussian decoder's (learned noise
variance), also trained here.

Brightness is measured over all pixels and on the "ink" (pixels above 0.5
in the original).  The mean intensities of all reconstructions match the
originals'; the ink does not: the Bernoulli's means :math:`\sigma(\eta)`
are washed out, and so is the continuous Bernoulli's mean
:math:`\mathbb{E}[x \mid \eta]`, pulled towards 1/2 by construction; its
parameter :math:`\lambda = \sigma(\eta)`, shown beside it, is brighter.

Uses 10000 MNIST training images (from ``$NPVAE_DATA_DIR`` or
``../shared/data`` beside the repository), or the 8x8 digits when MNIST is
absent.  Run: ``python demos/continuous_bernoulli.py [--fast] [--out DIR]``.
"""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from _common import digits, mean_elbo, parse_args, report, save_figure
from npvae import VAE, losses
from npvae.app.datasets import MissingDataError, load_dataset
from npvae.core.layers import sigmoid

ROOT = Path(__file__).resolve().parent.parent
LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian")


def grey_data(fast):
    """Training and test images in [0, 1] and their shape: MNIST if found,
    else the digits."""
    data_dir = os.environ.get("NPVAE_DATA_DIR") or ROOT.parent / "shared" / "data"
    try:
        d = load_dataset("mnist", data_dir=data_dir)
    except MissingDataError:
        print("MNIST not found: using the 8x8 digits", flush=True)
        X_train, X_test, _, _ = digits()
        return X_train, X_test, (8, 8)
    rng = np.random.default_rng(0)
    n_train, n_test = (1000, 300) if fast else (10000, 2000)
    return (d.X_train[rng.choice(len(d.X_train), n_train, replace=False)],
            d.X_test[:n_test], (28, 28))


def tile(images, shape, ncols):
    """One grey canvas of ``images`` (rows of pixels), ``ncols`` a row."""
    h, w = shape
    images = np.clip(np.asarray(images, dtype=float), 0, 1).reshape(-1, h, w)
    nrows = -(-len(images) // ncols)
    canvas = np.ones((nrows * (h + 1) - 1, ncols * (w + 1) - 1))
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img
    return canvas


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, shape = grey_data(args.fast)
    ink = X_test > 0.5
    report("intensity_original", X_test.mean())
    report("ink_original", X_test[ink].mean())
    rows = {"original": X_test}
    for likelihood in LIKELIHOODS:
        vae = VAE(latent_dim=16, hidden_dims=(256,), likelihood=likelihood,
                  epochs=2 if args.fast else 8, learning_rate=1e-3, batch_size=128,
                  random_state=0).fit(X_train)
        report(f"test_elbo_{likelihood}", mean_elbo(vae, X_test, draws=3).mean())
        logits = vae.decoder_.forward(vae.transform(X_test))
        recon = vae.likelihood_.mean(logits)
        if likelihood == "bernoulli":
            # The nats BCE leaves out for this very decoder.
            report("bernoulli_missing_log_norm",
                   losses.continuous_bernoulli_log_norm(logits).sum(axis=1).mean())
        rows[f"{likelihood} mean"] = recon
        if likelihood == "continuous_bernoulli":
            rows["continuous_bernoulli lambda"] = sigmoid(logits)
    for name, recon in rows.items():
        if name != "original":
            report(f"intensity_{name.replace(' ', '_')}", recon.mean())
            report(f"ink_{name.replace(' ', '_')}", recon[ink].mean())

    ncols = 10
    fig, ax = plt.subplots(figsize=(ncols * 0.75, len(rows) * 0.8 + 0.6))
    ax.imshow(tile(np.concatenate([r[:ncols] for r in rows.values()]), shape, ncols),
              cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    h = shape[0] + 1
    ax.set_yticks([h * i + shape[0] / 2 for i in range(len(rows))])
    ax.set_yticklabels([f"{name}\nink {r[ink].mean():.2f}" for name, r in rows.items()],
                       fontsize=8)
    ax.set_xticks([])
    ax.set_title("reconstructions of test digits; 'ink' = mean where the original > 0.5",
                 fontsize=9)
    save_figure(fig, args.out, "continuous_bernoulli.png")


if __name__ == "__main__":
    main()

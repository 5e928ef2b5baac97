"""Inpainting and super-resolution: complete an image from some of its
pixels by searching the VAE's latent space.

Given the observed pixels (mask :math:`m`), find

.. math:: \\hat z = \\arg\\max_z \\sum_d m_d \\log p(x_d \\mid z) + \\log N(z \\mid 0, I)

by gradient ascent, backpropagating by hand through the decoder to
:math:`z` (:func:`npvae.models.inference.fit_latent`), then decode :math:`\\hat z`.

* inpainting: the bottom half of each held-out digit is hidden;
* super-resolution: a 4x4 image keeps one pixel of each 2x2 block (the
  top-left one) of the 8x8 digit, and the other three are filled in.

The demo prints the mean squared error on the hidden pixels for the VAE
and for a plain baseline (the mean training image for inpainting; each
kept pixel copied over its block, nearest-neighbour upsampling, for
super-resolution).

Run: ``python demos/inpainting.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import SHAPE, digits, parse_args, report, save_figure, show_images
from npvae import VAE
from npvae.models.inference import fit_latent


def masks():
    """The two observation masks, 1 where a pixel is seen, as 64-vectors."""
    rows, cols = np.indices(SHAPE)
    top_half = (rows < SHAPE[0] // 2).ravel()
    low_res = ((rows % 2 == 0) & (cols % 2 == 0)).ravel()
    return {"inpainting": top_half, "super_resolution": low_res}


def baseline(kind, X_observed, mean_image):
    """Mean-image filling, or nearest-neighbour upsampling of the 4x4 image."""
    if kind == "inpainting":
        return np.where(masks()["inpainting"], X_observed, mean_image)
    low = X_observed.reshape(-1, *SHAPE)[:, ::2, ::2]
    return low.repeat(2, axis=1).repeat(2, axis=2).reshape(len(X_observed), -1)


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, _, _ = digits()
    vae = VAE(latent_dim=8, hidden_dims=(128,), epochs=3 if args.fast else 60,
              learning_rate=3e-3, batch_size=64, random_state=0).fit(X_train)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (kind, mask) in zip(axes, masks().items()):
        observed = X_test * mask  # hidden pixels zeroed: fit_latent ignores them
        Z = fit_latent(vae, observed, mask, steps=30 if args.fast else 300)
        completed = np.where(mask, X_test, vae.decode(Z))
        plain = baseline(kind, observed, X_train.mean(axis=0))
        hidden = ~mask
        mse_vae = float(np.mean((completed - X_test)[:, hidden] ** 2))
        mse_base = float(np.mean((plain - X_test)[:, hidden] ** 2))
        report(f"{kind}_mse_baseline", mse_base)
        report(f"{kind}_mse_vae", mse_vae)
        shown = np.where(mask, X_test[:8], 0.5)  # grey marks what is hidden
        show_images(ax, np.concatenate([X_test[:8], shown, plain[:8], completed[:8]]), 8,
                    f"{kind.replace('_', '-')}: hidden-pixel MSE "
                    f"{mse_base:.3f} → {mse_vae:.3f}\n"
                    "rows: truth, observed, baseline, VAE")
    save_figure(fig, args.out, "inpainting.png")


if __name__ == "__main__":
    main()

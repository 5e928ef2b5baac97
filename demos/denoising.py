"""Denoising: corrupt held-out digits, then reconstruct them through a VAE
trained on clean digits.

The code of a noisy digit lands near the codes of clean digits, and the
decoder maps it back onto the digits it learned, dropping most of the
noise.  The quality is the peak signal-to-noise ratio against the clean
image, :math:`\\mathrm{PSNR} = 10 \\log_{10}(1 / \\mathrm{MSE})` dB for
pixels in [0, 1], before and after, for Gaussian noise (sigma 0.25,
clipped to [0, 1]) and salt-and-pepper noise (20 % of pixels set to 0 or 1).
The VAE uses beta = 0.5: a lighter KL term keeps more detail in its
reconstructions (``demos/generation.py`` shows the trade).

Run: ``python demos/denoising.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import digits, parse_args, report, save_figure, show_images
from npvae import VAE


def psnr(clean, noisy):
    """Mean over images of :math:`10 \\log_{10}(1 / \\mathrm{MSE})`, in dB."""
    mse = np.mean((np.asarray(clean, float) - noisy) ** 2, axis=1)
    return float(np.mean(10 * np.log10(1.0 / mse)))


def corrupt(X, kind, rng):
    """Gaussian noise (sigma 0.25, clipped) or salt-and-pepper (20 %)."""
    if kind == "gaussian":
        return np.clip(X + 0.25 * rng.standard_normal(X.shape), 0, 1).astype(X.dtype)
    hit = rng.random(X.shape) < 0.2
    return np.where(hit, rng.integers(0, 2, X.shape), X).astype(X.dtype)


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, _, _ = digits()
    vae = VAE(latent_dim=8, hidden_dims=(128,), beta=0.5, epochs=3 if args.fast else 80,
              learning_rate=3e-3, batch_size=64, random_state=0).fit(X_train)
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, kind in zip(axes, ("gaussian", "salt_and_pepper")):
        noisy = corrupt(X_test, kind, rng)
        clean = vae.decode(vae.transform(noisy))
        before, after = psnr(X_test, noisy), psnr(X_test, clean)
        report(f"psnr_{kind}_before_db", before)
        report(f"psnr_{kind}_after_db", after)
        show_images(ax, np.concatenate([X_test[:8], noisy[:8], clean[:8]]), 8,
                    f"{kind.replace('_', ' ')}: PSNR {before:.1f} → {after:.1f} dB\n"
                    "rows: clean, noisy, denoised")
    save_figure(fig, args.out, "denoising.png")


if __name__ == "__main__":
    main()

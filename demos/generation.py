"""Generation: decode draws from the prior, z ~ N(0, I), and see what the
KL weight beta does to them.

A small beta lets the codes spread away from N(0, I): reconstructions get
sharper but prior samples fall between the digits.  A large beta pulls
every posterior onto the prior: latent dimensions switch off (fewer active
units, Burda et al. 2016) and samples blur towards an average digit.  For
each beta the demo prints the mean KL (nats), the reconstruction term and
the number of active units out of the latent size.

Run: ``python demos/generation.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import digits, parse_args, report, save_figure, show_images
from npvae import VAE
from npvae.models.evaluation import active_units

BETAS = (0.25, 1.0, 4.0)


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, _, _ = digits()
    fig, axes = plt.subplots(1, len(BETAS), figsize=(10, 3.6))
    for ax, beta in zip(axes, BETAS):
        vae = VAE(latent_dim=8, hidden_dims=(128,), beta=beta,
                  epochs=3 if args.fast else 60, learning_rate=3e-3,
                  batch_size=64, random_state=0).fit(X_train)
        log_px, kl = vae.elbo_terms(X_test)
        units = active_units(vae, X_test)
        report(f"beta{beta:g}_kl_nats", float(np.mean(kl)))
        report(f"beta{beta:g}_recon_nats", float(-np.mean(log_px)))
        report(f"beta{beta:g}_active_units", units)
        show_images(ax, vae.sample(36, random_state=1), 6,
                    f"beta = {beta:g}: KL {np.mean(kl):.1f} nats, "
                    f"{units}/{vae.latent_dim} active")
    save_figure(fig, args.out, "generation.png")


if __name__ == "__main__":
    main()

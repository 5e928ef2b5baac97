"""IWAE against VAE: the importance-weighted bound uses more latent units.

A VAE and an IWAE (k = 5) of the same size are trained alike on the
digits.  The IWAE's bound rewards codes that explain x well in at least one
of its k samples, so it can afford posteriors that are wide or off the prior
in more dimensions: it keeps more units active (the variance of the
posterior mean over the data above 0.01; Burda et al. 2016, Table 1) and
reaches a better importance-weighted estimate of log p(x), while its ELBO,
which it no longer maximises, is lower.  The demo prints, for each model,
the active units, the test ELBO and the test bound with k = 5000 samples,
and plots both models' latent dimensions.

Run: ``python demos/iwae.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np

from _common import digits, mean_elbo, parse_args, report, save_figure
from npvae import IWAE, VAE
from npvae.models.evaluation import active_units, importance_weighted_log_likelihood, kl_per_dimension

THRESHOLD = 0.01    # of the active units


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, _, _ = digits()
    common = dict(latent_dim=16, hidden_dims=(128,), activation="tanh", batch_size=64,
                  learning_rate=1e-3, epochs=3 if args.fast else 100, random_state=0)
    models = {"vae": VAE(**common), "iwae": IWAE(k=5, **common)}
    k_eval = 50 if args.fast else 5000
    fig, (ax_var, ax_kl) = plt.subplots(1, 2, figsize=(10, 3.6))
    for (name, model), color in zip(models.items(), ("tab:blue", "tab:orange")):
        model.fit(X_train)
        units = active_units(model, X_test, THRESHOLD)
        report(f"{name}_active_units", units)
        report(f"{name}_elbo_nats", float(np.mean(mean_elbo(model, X_test, 10))))
        report(f"{name}_iw{k_eval}_nats", float(np.mean(
            importance_weighted_log_likelihood(model, X_test, k=k_eval))))
        label = f"{name.upper()}: {units}/{model.latent_dim} active"
        variances = np.sort(model.transform(X_test).astype(float).var(axis=0))[::-1]
        ax_var.semilogy(np.arange(1, len(variances) + 1), variances, "o-", color=color,
                        label=label)
        kl = np.sort(kl_per_dimension(model, X_test))[::-1]
        ax_kl.bar(np.arange(1, len(kl) + 1) + (0.2 if name == "iwae" else -0.2), kl,
                  width=0.4, color=color, label=name.upper())
    ax_var.axhline(THRESHOLD, color="gray", ls="--", lw=1)
    ax_var.set(xlabel="latent dimension (sorted)", ylabel=r"$\mathrm{Var}_x\,\mu_j(x)$",
               title="activity of each unit (dashed: threshold)")
    ax_var.legend(fontsize=8)
    ax_kl.set(xlabel="latent dimension (sorted)", ylabel="KL (nats)",
              title="KL per dimension, test set")
    ax_kl.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out, "iwae.png")


if __name__ == "__main__":
    main()

"""Dimensionality reduction: PCA, the Autoencoder and the VAE side by side.

* reconstruction error on held-out digits against the latent size;
* the 2-D codes of each, coloured by label, and the accuracy of a logistic
  regression trained on them;
* codes drawn from N(0, I) and decoded: fine for the VAE, whose KL term
  pulls its codes towards N(0, I), poor for the AE, whose codes live
  wherever training put them;
* a straight line between two digits in each latent space, decoded.

Run: ``python demos/compare_pca.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from _common import digits, parse_args, report, save_figure, show_images
from npvae import VAE, Autoencoder
from npvae.models.evaluation import kl_per_dimension


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, y_train, y_test = digits()
    sizes = (2, 8) if args.fast else (2, 4, 8, 16)
    common = dict(hidden_dims=(128,), epochs=3 if args.fast else 40,
                  learning_rate=3e-3, batch_size=64, random_state=0)
    models = {}
    errors = {"PCA": [], "AE": [], "VAE": []}
    for k in sizes:
        models["PCA", k] = PCA(n_components=k).fit(X_train)
        models["AE", k] = Autoencoder(latent_dim=k, **common).fit(X_train)
        models["VAE", k] = VAE(latent_dim=k, **common).fit(X_train)
        for name in errors:
            m = models[name, k]
            recon = m.inverse_transform(m.transform(X_test))
            errors[name].append(float(np.mean((recon - X_test) ** 2)))
    for name in errors:
        report(f"mse_{name.lower()}_k{sizes[-1]}", errors[name][-1])
    # The VAE's KL charges for every dimension it uses, so it leaves some idle.
    kl = kl_per_dimension(models["VAE", sizes[-1]], X_test)
    report(f"vae_k{sizes[-1]}_dims_with_kl_over_0_1_nats", int(np.sum(kl > 0.1)))

    fig, axes = plt.subplots(2, 4, figsize=(14, 6.4), layout="constrained")
    ax = axes[0, 0]
    for name, errs in errors.items():
        ax.plot(sizes, errs, "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.set_xlabel("latent size")
    ax.set_ylabel("test MSE per pixel")
    ax.set_title("reconstruction error", fontsize=9)
    ax.legend(fontsize=8)

    for ax, name in zip(axes[0, 1:], errors):
        m = models[name, 2]
        Z_train, Z_test = m.transform(X_train), m.transform(X_test)
        acc = LogisticRegression(max_iter=2000).fit(Z_train, y_train).score(Z_test, y_test)
        report(f"accuracy_2d_{name.lower()}", acc)
        sc = ax.scatter(Z_test[:, 0], Z_test[:, 1], c=y_test, cmap="tab10", s=6)
        ax.set_title(f"{name} 2-D codes (LR accuracy {acc:.0%})", fontsize=9)
    fig.colorbar(sc, ax=axes[0, 3], ticks=range(10))

    # Codes drawn from the prior N(0, I), decoded.  The AE's codes have no
    # reason to look like N(0, I): report how far their spread is from 1.
    k = sizes[-1]
    z = np.random.default_rng(0).standard_normal((32, k)).astype(np.float32)
    for ax, name in zip(axes[1, :2], ("AE", "VAE")):
        show_images(ax, models[name, k].decode(z), 8,
                    f"{name}: decoded z ~ N(0, I), k={k}")
        spread = float(np.std(models[name, k].transform(X_train)))
        report(f"code_std_{name.lower()}_k{k}", spread)

    # A straight line between the codes of two test digits, in each space.
    a, b = X_test[y_test == 0][0], X_test[y_test == 6][0]
    t = np.linspace(0, 1, 8)[:, None]
    rows = []
    for name in errors:
        m = models[name, k]
        za, zb = m.transform(np.stack([a, b]))
        rows.append(m.inverse_transform(((1 - t) * za + t * zb).astype(np.float32)))
    ax = axes[1, 2]
    show_images(ax, np.concatenate(rows), 8, f"0 → 6 along a line in each space (k={k})")
    # One row per model: tiles are 8 pixels with a 1-pixel gap.
    ax.set_yticks([r * 9 + 3.5 for r in range(len(errors))], list(errors), fontsize=9)
    ax.tick_params(axis="y", length=0)
    # Why: the AE's 2-D codes against draws from N(0, I).
    ax = axes[1, 3]
    codes = models["AE", 2].transform(X_train)
    prior = np.random.default_rng(1).standard_normal((300, 2))
    ax.scatter(codes[:, 0], codes[:, 1], s=3, c="0.6", label="AE codes of the digits")
    ax.scatter(prior[:, 0], prior[:, 1], s=3, c="tab:red", label="z ~ N(0, I)")
    ax.set_title("AE (k=2): prior draws miss its codes", fontsize=9)
    ax.legend(fontsize=7, markerscale=3)
    save_figure(fig, args.out, "compare_pca.png")


if __name__ == "__main__":
    main()

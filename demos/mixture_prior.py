"""A learned mixture prior: a VAE whose p(z) is a mixture of 10 Gaussians
learned with the encoder and the decoder, so that its components can
take the digits' classes.

Left: decoded draws from each component, one row per component (the first
image is its decoded mean), labelled with its weight and the class most of
its test digits have.  Right: which classes the test digits each component
claims (by responsibility, p(k | mu(x))) belong to.  Printed: the adjusted
Rand index of those assignments against the labels, beside that of a
Gaussian mixture fitted afterwards to a plain VAE's codes, and both
models' held-out ELBO (the mixture's with the sampled KL).

Run: ``python demos/mixture_prior.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from _common import digits, mean_elbo, parse_args, report, save_figure, show_images
from npvae import VAE

K, PER_ROW = 10, 10


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, _, y_test = digits()
    settings = dict(latent_dim=8, hidden_dims=(128,), epochs=3 if args.fast else 60,
                    batch_size=64, learning_rate=3e-3, random_state=0)
    mixture = VAE(prior="mixture", n_components=K, **settings).fit(X_train)
    plain = VAE(**settings).fit(X_train)

    components = mixture.prior_.responsibilities(mixture.transform(X_test)).argmax(axis=1)
    gmm = GaussianMixture(K, covariance_type="diag", init_params="k-means++",
                          n_init=5, random_state=0)
    clusters = gmm.fit(plain.transform(X_train)).predict(plain.transform(X_test))
    report("ari_mixture_prior", adjusted_rand_score(y_test, components))
    report("ari_plain_vae_gmm", adjusted_rand_score(y_test, clusters))
    report("heldout_elbo_mixture_nats", float(np.mean(mean_elbo(mixture, X_test, 10))))
    report("heldout_elbo_plain_nats", float(np.mean(mean_elbo(plain, X_test, 10))))
    report("components_used", len(np.unique(components)))

    prior = mixture.prior_
    order = np.argsort(-prior.weights)
    rng = np.random.default_rng(1)
    means, logvars = prior.params["means"], prior.params["logvars"]
    rows, labels = [], []
    for k in order:
        eps = rng.standard_normal((PER_ROW - 1, mixture.latent_dim), dtype=means.dtype)
        z = np.vstack([means[k], means[k] + np.exp(0.5 * logvars[k]) * eps])
        rows.append(mixture.decode(z))
        claimed = y_test[components == k]
        mostly = f"mostly {np.bincount(claimed).argmax()}" if len(claimed) else "no digits"
        labels.append(f"pi {prior.weights[k]:.2f}, {mostly}")
    counts = np.array([np.bincount(y_test[components == k], minlength=10) for k in order])

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.2),
                                      gridspec_kw={"width_ratios": [1.3, 1]})
    show_images(left, np.vstack(rows), PER_ROW, "draws from each component (mean first)")
    left.set_yticks(np.arange(K) * 9 + 3.5, labels, fontsize=8)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    right.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    right.set_xticks(range(10))
    right.set_yticks(range(K), [f"{n} digits" for n in counts.sum(axis=1)], fontsize=8)
    right.set_xlabel("class")
    right.set_title(f"classes of the test digits each component claims\n"
                    f"ARI {adjusted_rand_score(y_test, components):.2f} (plain VAE + "
                    f"GMM: {adjusted_rand_score(y_test, clusters):.2f})", fontsize=9)
    save_figure(fig, args.out, "mixture_prior.png")


if __name__ == "__main__":
    main()

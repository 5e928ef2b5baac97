"""Anomaly detection: train a VAE on every digit but one, then flag the
held-out digit by its negative ELBO.

The ELBO bounds :math:`\\log p(x)` from below, so a digit unlike anything in
training gets a low ELBO: :math:`-\\mathrm{ELBO}(x)` is the anomaly score
(averaged over 10 draws of the reparameterization noise, to steady it).  On
the held-out test set, with the unseen digit as the positive class, the
demo prints scikit-learn's ROC AUC (1 perfect, 0.5 chance).

Run: ``python demos/anomaly.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from _common import digits, mean_elbo, parse_args, report, save_figure, show_images
from npvae import VAE

HELD_OUT = 4


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, y_train, y_test = digits()
    normal = y_train != HELD_OUT
    vae = VAE(latent_dim=8, hidden_dims=(128,), epochs=3 if args.fast else 60,
              learning_rate=3e-3, batch_size=64, random_state=0).fit(X_train[normal])
    scores = -mean_elbo(vae, X_test, draws=10)
    is_anomaly = y_test == HELD_OUT
    auc = roc_auc_score(is_anomaly, scores)
    report(f"roc_auc_heldout_{HELD_OUT}", auc)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    bins = np.linspace(scores.min(), np.percentile(scores, 99.5), 40)
    ax1.hist(scores[~is_anomaly], bins, alpha=0.6, density=True, label="digits seen in training")
    ax1.hist(scores[is_anomaly], bins, alpha=0.6, density=True, label=f"unseen digit {HELD_OUT}")
    ax1.set_xlabel("anomaly score: -ELBO (nats)")
    ax1.set_ylabel("fraction of images per nat")   # density=True: each area is 1
    ax1.set_title(f"ROC AUC {auc:.3f}", fontsize=9)
    ax1.legend(fontsize=8)
    show_images(ax2, X_test[np.argsort(scores)[::-1][:24]], 6,
                "the 24 highest scores")
    save_figure(fig, args.out, "anomaly.png")


if __name__ == "__main__":
    main()

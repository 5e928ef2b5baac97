"""A linear Gaussian VAE is probabilistic PCA (Tipping & Bishop 1999;
Lucas et al. 2019).

With a linear encoder and decoder and a learned isotropic noise variance,
the VAE's optimum is the pPCA maximum-likelihood solution: its decoder
columns span the top-k principal subspace, its noise variance is the mean
of the discarded eigenvalues, and -- its posterior being exact -- its ELBO
equals the pPCA log-likelihood.  Three comparisons with scikit-learn's
``PCA`` (whose ``score`` is that log-likelihood) on the digits scaled by
1/16:

1. ``PCA.score`` minus the VAE's ELBO (>= 0 up to Monte Carlo noise, as the
   ELBO bounds the VAE's own log p(x) from below, which cannot beat the
   pPCA maximum), in nats per example; also the importance-weighted bound;
2. the largest principal angle between the decoder columns and the PCA
   subspace, in degrees;
3. the relative difference between the learned noise variance and
   ``PCA.noise_variance_``.

Run: ``python demos/linear_vae_ppca.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from _common import mean_elbo, parse_args, report, save_figure
from npvae import VAE
from npvae.models.evaluation import importance_weighted_log_likelihood

K = 10


def main():
    args = parse_args(__doc__.splitlines()[0])
    X = load_digits().data / 16.0
    pca = PCA(n_components=K).fit(X)
    vae = VAE(latent_dim=K, hidden_dims=(), likelihood="gaussian", obs_var=None,
              epochs=20 if args.fast else 800, batch_size=64, learning_rate=0.02,
              lr_schedule="cosine", dtype="float64", random_state=0).fit(X)

    pca_score = pca.score(X)
    elbo = float(np.mean(mean_elbo(vae, X, draws=20)))
    iwae = float(np.mean(importance_weighted_log_likelihood(vae, X, k=100)))
    W = vae.params_["decoder.0.W"]  # (K, 64): row j is decoder column j
    angles = np.degrees(subspace_angles(W.T, pca.components_.T))
    noise_var = float(np.exp(vae.obs_logvar_))
    print(f"PCA.score (pPCA log-likelihood) {pca_score:.4f}  VAE ELBO {elbo:.4f}  "
          f"IWAE(k=100) {iwae:.4f} nats/example")
    report("gap_elbo_nats", pca_score - elbo)
    report("gap_iwae_nats", pca_score - iwae)
    report("max_angle_deg", angles.max())
    report("noise_var_rel_diff_pct", 100 * (noise_var / pca.noise_variance_ - 1))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot([-h["loss"] for h in vae.history_], lw=1, label="VAE ELBO (training)")
    ax1.axhline(pca_score, color="k", ls="--", lw=1, label="PCA.score")
    ax1.set_ylim(pca_score - 15, pca_score + 3)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("nats per example")
    ax1.legend(fontsize=8)
    ax2.bar(range(1, K + 1), np.sort(angles))
    ax2.set_xlabel("principal angle index")
    ax2.set_ylabel("degrees")
    ax2.set_title("decoder columns vs PCA subspace", fontsize=9)
    save_figure(fig, args.out, "linear_vae_ppca.png")


if __name__ == "__main__":
    main()

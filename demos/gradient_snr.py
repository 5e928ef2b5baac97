r"""Signal-to-noise ratio of the IWAE's gradients as k grows: standard
against DReG.

The IWAE's encoder gradient gets noisier relative to its mean as the number
of codes k grows (Rainforth et al. 2018: its SNR falls about as
:math:`1/\sqrt k`), while the decoder's gets cleaner (about :math:`\sqrt k`).
The doubly reparameterised estimator (DReG, Tucker et al. 2018; docs/math.md
§9b) removes the score term whose noise does not shrink with k and leaves
the decoder's gradient as it is.

On the shipped IWAE (k = 5, 364 epochs on MNIST,
benchmarks/results/iwae-table1/iwae-k5-364) and a few binarised test
images, for each k on a log grid from 1 to 1000 and each estimator, the
gradient of the mean loss over the images is drawn ``DRAWS`` times (fresh
noise, the same for both estimators), and for the encoder's and the
decoder's parameters as one vector each

.. math::
    \mathrm{SNR} = \frac{\lVert \mathbb{E}\, g \rVert}
                        {\sqrt{\mathbb{E}\, \lVert g - \mathbb{E}\, g \rVert^2}},

the mean's squared norm estimated without the bias of the sample mean's
noise, :math:`\lVert \bar g \rVert^2 - \operatorname{tr}\hat\Sigma / M`
(clipped at 0).  Prints the SNRs and the slopes of log SNR against log k
over k >= 10, and draws them.

Needs MNIST in ``$NPVAE_DATA_DIR`` or ``../shared/data`` beside the
repository.  Run: ``python demos/gradient_snr.py [--fast] [--out DIR]``
(about three minutes; ``--fast``: k = 1 and 10, a few draws).
"""
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from _common import parse_args, report, save_figure
from npvae.app.checkpoints import load_checkpoint
from npvae.app.datasets import MissingDataError, binarize, load_dataset

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "results" / "iwae-table1" / "iwae-k5-364"
KS = (1, 3, 10, 30, 100, 300, 1000)
N_IMAGES, DRAWS = 3, 100
ESTIMATORS = ("standard", "dreg")
GROUPS = {"encoder": ("encoder.", "mu.", "logvar."), "decoder": ("decoder.",)}


def snr(draws):
    r""":math:`\lVert \mathbb{E} g\rVert / \sqrt{\operatorname{tr}\Sigma}` from
    ``draws`` of shape (M, P), the squared norm of the mean corrected by
    :math:`\operatorname{tr}\hat\Sigma / M`."""
    m = draws.shape[0]
    mean = draws.mean(axis=0)
    trace = draws.var(axis=0, ddof=1).sum()
    return float(np.sqrt(max(mean @ mean - trace / m, 0.0) / trace))


def gradient_draws(model, X, k, draws, seed):
    """Per estimator and parameter group, the flat gradients of ``draws``
    noise draws, shape (draws, P); both estimators see the same noise."""
    rng = np.random.default_rng(seed)
    out = {(e, g): [] for e in ESTIMATORS for g in GROUPS}
    for _ in range(draws):
        eps = rng.standard_normal((k, X.shape[0], model.latent_dim), dtype=model.dtype)
        for estimator in ESTIMATORS:
            grads = model.set_params(gradient_estimator=estimator).loss_and_grads(X, eps)[1]
            for group, prefixes in GROUPS.items():
                out[estimator, group].append(np.concatenate(
                    [g.ravel() for n, g in grads.items() if n.startswith(prefixes)]))
    return {key: np.asarray(v, dtype=np.float64) for key, v in out.items()}


def main():
    args = parse_args(__doc__.splitlines()[0])
    data_dir = os.environ.get("NPVAE_DATA_DIR") or ROOT.parent / "shared" / "data"
    try:
        test = load_dataset("mnist", data_dir=data_dir).X_test
    except MissingDataError:
        print("MNIST not found: nothing to measure", flush=True)
        sys.exit(0)
    model = load_checkpoint(RUN)
    X = binarize(test[:N_IMAGES], np.random.default_rng(12345))
    ks, draws = ((1, 10), 8) if args.fast else (KS, DRAWS)
    ratios = {key: [] for key in ((e, g) for e in ESTIMATORS for g in GROUPS)}
    for k in ks:
        for key, value in gradient_draws(model, X, k, draws, seed=k).items():
            ratios[key].append(snr(value))
            report(f"snr_{key[0]}_{key[1]}_k{k}", ratios[key][-1])
    log_k = np.log(ks)
    fit = log_k >= np.log(10) if len(ks) > 2 else np.ones(len(ks), bool)
    for (estimator, group), values in ratios.items():
        if all(v > 0 for v in np.asarray(values)[fit]):
            slope = np.polyfit(log_k[fit], np.log(np.asarray(values)[fit]), 1)[0]
            report(f"slope_{estimator}_{group}", slope)

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    styles = {("standard", "encoder"): ("tab:blue", "o-", "IWAE encoder"),
              ("dreg", "encoder"): ("tab:orange", "s-", "DReG encoder"),
              ("standard", "decoder"): ("tab:gray", "^--", "decoder (both: the same)")}
    for key, (color, style, label) in styles.items():
        ax.loglog(ks, ratios[key], style, color=color, label=label)
    reference = ratios["standard", "encoder"][0] / np.sqrt(np.asarray(ks, float))
    ax.loglog(ks, reference, ":", color="tab:blue", lw=1, label=r"$\propto 1/\sqrt{k}$")
    ax.set(xlabel="k (codes per example)",
           ylabel=r"SNR $=\|\mathbb{E}g\| / \sqrt{\mathrm{tr\,Cov}\,g}$",
           title=f"gradient SNR, IWAE k=5 on MNIST, {N_IMAGES} images, {draws} draws")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out, "gradient_snr.png")


if __name__ == "__main__":
    main()

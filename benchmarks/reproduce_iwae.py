"""Reproduce Table 1 of Burda, Grosse & Salakhutdinov, "Importance Weighted
Autoencoders" (one stochastic layer, MNIST) with npvae.

The set-up, as the paper and its authors' code (github.com/yburda/iwae) have it:

* MNIST intensities in [0, 1]; the first 59,600 training images train (the
  authors hold out the last 400); every pass binarises them afresh, and the
  test set is binarised stochastically too (one fixed draw here);
* encoder 784-200-200 (tanh) -> 50 Gaussian units; decoder 50-200-200 (tanh)
  -> 784 Bernoulli logits; the decoder's output bias starts at the logit of
  the training pixel means, clipped to [0.001, 0.999];
* Adam with beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-4; batch 20;
* for i = 0 ... 7, 3^i epochs at learning rate 1e-4 * round(10^(1 - i/7), 1)
  (the authors' rounding of 1e-3 * 10^(-i/7)): 3,280 epochs in all;
* at every stage boundary, the test negative log-likelihood by the
  importance-weighted estimate with k = 5000, the test ELBO, and the active
  units (variance over the test set of the encoder's mean above 1e-2).

Deviations from the authors' code, kept on purpose: their Adam uses
beta_1 = 0.99 and starts its second moments at 1 (the paper says 0.9 and
the usual Adam starts them at 0); npvae's encoder predicts log sigma^2
where theirs predicts log sigma (the same family of distributions).

``--gradient-estimator dreg`` trains the IWAE's encoder with the doubly
reparameterised gradient (Tucker et al. 2018) instead of the paper's;
``stl`` does the same for a VAE (docs/math.md, section 9b).

``--stochastic-layers 2`` trains the paper's second architecture as the
authors' code builds it (docs/math.md, section 9c): 784-200-200 (tanh) ->
z1 (100) -> 100-100 (tanh) -> z2 (50), the generative networks mirroring it,
p(z2) = N(0, I); the same Adam, batch, schedule and output bias.  (The
paper's text gives 100-100 and 50-50 hidden units, npvae's TwoLayerVAE
default; the code that produced the paper's numbers has 200-200 and
100-100, as it has for one layer.)  Its
active units are counted per layer (z1's means, then z2's at one z1 drawn
per image, as the authors' code does), written "a1+a2".

The run checkpoints after every epoch (``latest``, with the stage's training
time so far) and keeps one checkpoint per stage boundary (``stage-<i>``); run
it again with the same ``--out`` and it resumes bit for bit from the last
one (a second process on the same folder stops at its lock).  Results go to
``<out>/results.csv``, one row per boundary; ``train_seconds`` is the
stage's training time across resumes, blank where part of it ran before
that time was kept.  Runs side by side take ``--blas-threads 1`` each, lest
BLAS's threads outnumber the cores (given anew at each resume: the run does not
keep it).

``--export FOLDER`` writes the last evaluated stage (or ``--stage i``) of the
``--out`` run as an npvae run folder (``config.json`` and one checkpoint without Adam's
state, about 1.7 MB), so that ``npvae evaluate``, ``sample`` and
``interpolate`` take it; ``benchmarks/results/iwae-table1/`` holds those of
the published runs.

Usage::

    python benchmarks/reproduce_iwae.py --model vae --out runs/iwae-table1-vae
    python benchmarks/reproduce_iwae.py --model iwae --k 5 --stages 6 --out runs/iwae-k5
    python benchmarks/reproduce_iwae.py --model iwae --gradient-estimator dreg --stages 6 --out runs/dreg-k5
    python benchmarks/reproduce_iwae.py --stochastic-layers 2 --model iwae --k 5 --stages 6 --out runs/2l-k5
    python benchmarks/reproduce_iwae.py --smoke --out /tmp/smoke
    python benchmarks/reproduce_iwae.py --out runs/iwae-k5 --export benchmarks/results/iwae-table1/iwae-k5
    python benchmarks/reproduce_iwae.py --plot docs/reproduction.png --runs runs/iwae-table1-vae ...
"""
import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import npvae  # noqa: E402
from npvae.app.datasets import binarize, load_dataset  # noqa: E402
from npvae.app.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from npvae.app.cli import jobs, number  # noqa: E402
from npvae.app.runs import MODEL_KEYS, lock  # noqa: E402
from npvae.models.evaluation import (active_units_per_layer,  # noqa: E402
                                     importance_weighted_log_likelihood)

N_TRAIN = 59_600
#: Table 1's test NLL after the full schedule (one stochastic layer, MNIST).
PAPER_NLL = {"VAE": 86.76, "IWAE, k = 5": 85.54, "IWAE, k = 50": 84.78}
#: The same for two stochastic layers (k = 50: 82.90, not run here).
PAPER_NLL_TWO_LAYERS = {"two-layer VAE": 85.33, "two-layer IWAE, k = 5": 83.89}
FIELDS = ["stage", "epochs", "learning_rate", "test_nll", "test_elbo", "active_units",
          "train_seconds", "eval_seconds"]


def stage_schedule(stages):
    """(epochs, learning rate) of each stage: 3^i epochs at the authors'
    rounded 1e-3 * 10^(-i/7)."""
    return [(3 ** i, 1e-4 * round(10.0 ** (1 - i / 7), 1)) for i in range(stages)]


def make_model(args):
    """A fresh estimator with the paper's architecture (one or two
    stochastic layers) and optimiser."""
    kw = dict(activation="tanh", likelihood="bernoulli",
              batch_size=args.batch_size, learning_rate=1e-3, beta_1=0.9, beta_2=0.999,
              epsilon=1e-4, output_bias_init="data", epochs=sum(3 ** i for i in range(8)),
              dtype="float32", random_state=args.seed,
              gradient_estimator=args.gradient_estimator)
    if args.model == "iwae":
        kw["k"] = args.k
    if args.stochastic_layers == 2:
        kind = npvae.TwoLayerIWAE if args.model == "iwae" else npvae.TwoLayerVAE
        return kind(latent_dims=(100, 50), hidden_dims=((200, 200), (100, 100)), **kw)
    kind = npvae.IWAE if args.model == "iwae" else npvae.VAE
    return kind(latent_dim=50, hidden_dims=(200, 200), **kw)


def load_mnist(args):
    data = load_dataset("mnist", data_dir=args.data_dir)
    X_train, X_test = data.X_train[:N_TRAIN], data.X_test
    if args.smoke:
        X_train, X_test = X_train[:200], X_test[:50]
    # One fixed stochastic binarisation of the test set, the same for every run.
    return X_train, binarize(X_test, np.random.default_rng(12345))


def evaluate(model, X_test, args):
    start = time.perf_counter()
    nll = -float(np.mean(importance_weighted_log_likelihood(model, X_test, k=args.eval_k,
                                                            random_state=0, n_jobs=args.jobs)))
    elbo = float(np.mean(np.subtract(*model.elbo_terms(X_test, random_state=0))))
    # elbo_terms is the ELBO, whatever the model trained on.
    return {"test_nll": round(nll, 4), "test_elbo": round(elbo, 4),
            "active_units": "+".join(map(str, active_units_per_layer(model, X_test))),
            "eval_seconds": round(time.perf_counter() - start, 1)}


def done_rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path, row):
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def per_layer(units):
    """A results.csv ``active_units``, "57" or "61+19" (two stochastic
    layers): an int, or one int per layer."""
    counts = [int(u) for u in units.split("+")]
    return counts[0] if len(counts) == 1 else counts


def saved(stem):
    """Whether a checkpoint ``stem`` exists (an earlier npvae's ``.json``
    + ``.npz`` pair counts)."""
    return any(Path(f"{stem}{suffix}").is_file() for suffix in (".npz", ".json"))


def export(out, folder, stage=None):
    """Write evaluated ``stage`` (default: the last) of run ``out`` as the
    npvae run folder ``folder`` (which must not exist yet): its
    ``config.json``, ``checkpoints/epoch-<n>`` saved without Adam's state,
    and ``results.csv`` up to that stage (for ``--table`` and ``--plot``),
    built in a hidden folder beside it and renamed into place whole.
    Returns the checkpoint's path.

    ``config.json`` holds what the CLI reads, plus ``reproduction``: the
    stages, Adam's settings and the stage's results.  ``npvae evaluate``
    binarises the test set with a seed derived from the config's, a
    different draw from this script's, so its numbers differ from the
    results by that draw's noise."""
    rows = done_rows(out / "results.csv")
    if stage is not None:
        rows = [r for r in rows if int(r["stage"]) <= stage]
    if not rows or (stage is not None and int(rows[-1]["stage"]) != stage):
        which = "no evaluated stage" if stage is None else f"no evaluated stage {stage}"
        sys.exit(f"reproduce_iwae: {out} has {which} to export")
    if folder.exists():
        sys.exit(f"reproduce_iwae: {folder} exists; export writes a new folder only")
    try:
        model = load_checkpoint(out / f"stage-{rows[-1]['stage']}")
    except (OSError, ValueError) as e:
        sys.exit(f"reproduce_iwae: cannot export {out}: {e}")
    params = model.get_params()
    if model.stochastic_layers == 2:
        # The CLI's two-layer layout: z2 latent_dim wide, z1 twice that, the
        # hidden widths below z1 and half of them below z2; both layouts fit it.
        params.update(latent_dim=params["latent_dims"][1], hidden_dims=params["hidden_dims"][0],
                      beta=1.0, kl_warmup=0.0)
    config = {"dataset": "mnist", "data_dir": None, "binarize": True,
              "seed": params["random_state"], **{k: params[k] for k in MODEL_KEYS},
              "epochs": model.n_iter_, "n_features": model.n_features_in_,
              "image_shape": [28, 28],
              "model": "iwae" if model.importance_weighted else "vae",
              "gradient_estimator": model.gradient_estimator,
              "npvae_version": npvae.__version__}
    config["hidden_dims"] = list(config["hidden_dims"])
    if config["model"] == "iwae":
        config["k"] = params["k"]
    if model.stochastic_layers == 2:
        config["stochastic_layers"] = 2
    schedule = stage_schedule(len(rows))
    boundaries = np.cumsum([e for e, _ in schedule])
    config["reproduction"] = {
        "script": "benchmarks/reproduce_iwae.py", "doc": "docs/reproduction.md",
        "stages": [{"stage": i, "epochs_in_stage": e, "until_epoch": int(end),
                    "learning_rate": round(r, 10)}
                   for i, ((e, r), end) in enumerate(zip(schedule, boundaries))],
        **{k: params[k] for k in ("beta_1", "beta_2", "epsilon", "output_bias_init")},
        "training_images": N_TRAIN, "test_binarization": "numpy.random.default_rng(12345)",
        "results": {k: None if v == "" else int(v) if k in ("stage", "epochs")
                    else per_layer(v) if k == "active_units" else float(v)
                    for k, v in rows[-1].items()}}
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    (building / "checkpoints").mkdir()
    (building / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    for row in rows:
        append_row(building / "results.csv", row)
    name = f"epoch-{model.n_iter_:04d}"
    model.save(building / "checkpoints" / name, include_optimizer=False)
    building.rename(folder)
    return folder / "checkpoints" / f"{name}.npz"


def table(run_folder):
    """The Markdown table of run ``run_folder``'s results.csv, as
    docs/reproduction.md shows it."""
    lines = ["| stage | epochs | learning rate | test NLL | test ELBO | active units "
             "| training | evaluation |", "|---|---|---|---|---|---|---|---|"]
    for r in done_rows(Path(run_folder) / "results.csv"):
        elbo = f"{float(r['test_elbo']):.2f}".replace("-", "−")
        train = f"{float(r['train_seconds']):.0f} s" if r["train_seconds"] else "—"
        lines.append(f"| {r['stage']} | {r['epochs']} | {float(r['learning_rate']):.2g} | "
                     f"{float(r['test_nll']):.2f} | {elbo} | {r['active_units']} | "
                     f"{train} | {float(r['eval_seconds']):.0f} s |")
    return "\n".join(lines)


def plot(run_folders, path, X_test=None):
    """Draw the test NLL of each run against its epochs, with the paper's
    final numbers as dashed lines (its two-layer ones too when a run has two
    layers of codes), into ``path``; given the test images, also each run's
    unit activity at its last evaluated stage: the variance over the test
    set of each latent unit's posterior mean, sorted, against the threshold
    of 1e-2 that counts a unit as active (each layer's, for two layers)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = 1 if X_test is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), constrained_layout=True,
                             squeeze=False)
    ax = axes[0, 0]
    papers = dict(PAPER_NLL)
    for folder in run_folders:
        rows = done_rows(Path(folder) / "results.csv")
        ax.plot([int(r["epochs"]) for r in rows], [float(r["test_nll"]) for r in rows],
                "o-", label=Path(folder).name)
        if any("+" in r["active_units"] for r in rows):     # "a1+a2": two layers of codes
            papers.update(PAPER_NLL_TWO_LAYERS)
    for (name, nll), colour in zip(papers.items(), ("C0", "C1", "C2", "C3", "C4")):
        ax.axhline(nll, ls="--", lw=1, color=colour, label=f"paper, {name}: {nll}")
    ax.set(xscale="log", xlabel="epochs", ylabel="test NLL, IWAE k = 5000 (nats)",
           title="Burda et al. Table 1 set-up, MNIST")
    ax.legend(fontsize=8)
    if X_test is not None:
        ax = axes[0, 1]
        for folder in run_folders:
            last = done_rows(Path(folder) / "results.csv")[-1]
            # A reproduction's run folder, or one --export wrote (its one checkpoint).
            stage_path = Path(folder) / f"stage-{last['stage']}"
            model = load_checkpoint(stage_path if saved(stage_path) else folder)
            # Each layer's posterior means, as results.csv counts its active units.
            means = model.layer_means(X_test) if model.stochastic_layers == 2 else \
                [model.transform(X_test)]
            for layer, mean in enumerate(means, 1):
                variance = np.sort(mean.astype(np.float64).var(axis=0))[::-1]
                ax.semilogy(np.arange(1, variance.size + 1), variance, "o-", ms=3,
                            label=f"{Path(folder).name}{f', z{layer}' if len(means) > 1 else ''}"
                                  f", {last['epochs']} epochs: "
                                  f"{int(np.sum(variance > 1e-2))} active")
        ax.axhline(1e-2, ls="--", lw=1, color="grey", label="active above 1e-2")
        ax.set(xlabel="latent unit, by activity", ylabel=r"Var$_x$ of $\mu_j(x)$ (test set)",
               title="Unit activity (Burda et al. section 5.2)")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=150)
    return path


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(f"{message} (see '{self.prog} --help')")


#: Settings a run keeps for life, with their defaults: given again on a
#: resume they must match the saved run, and when left out they are read from it.
SETTINGS = {"model": "vae", "k": 5, "seed": 0, "batch_size": 20,
            "gradient_estimator": "standard", "stochastic_layers": 1}


def main(argv=None):
    """Run the script with ``argv``; a bad argument, missing data or a run
    in use is one line on stderr and exit status 2, Ctrl-C exit status 130."""
    try:
        return _main(argv)
    except (ValueError, OSError) as e:
        print(f"reproduce_iwae: error: {' '.join(str(e).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\nreproduce_iwae: interrupted; the same command resumes from the last "
              "saved epoch", file=sys.stderr)
        raise SystemExit(130) from None


def _main(argv):
    p = _Parser(prog="reproduce_iwae.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    p.add_argument("--model", choices=["vae", "iwae"],
                   help="what to train (default vae; on resume, the run's)")
    p.add_argument("--k", type=number(int, 1),
                   help="importance samples in training, IWAE only (default 5; on resume, the run's)")
    p.add_argument("--gradient-estimator", choices=["standard", "dreg", "stl"],
                   help="the encoder's gradient (default standard; dreg for an IWAE, stl for "
                        "a VAE; on resume, the run's)")
    p.add_argument("--stochastic-layers", type=int, choices=(1, 2),
                   help="1: the paper's first architecture, 2: its second (default 1; on "
                        "resume, the run's)")
    p.add_argument("--stages", type=int, default=8, choices=range(1, 9), metavar="1..8",
                   help="how many of the 8 stages (3^i epochs each) to run")
    p.add_argument("--batch-size", type=number(int, 1),
                   help="mini-batch size (default 20; on resume, the run's)")
    p.add_argument("--eval-k", type=number(int, 1), default=5000,
                   help="importance samples for the test NLL")
    p.add_argument("--jobs", type=jobs, default=-1,
                   help="threads for the test NLL, the same number on any (-1: every core)")
    p.add_argument("--blas-threads", type=number(int, 1), metavar="N",
                   help="threads of BLAS's products in training and evaluation (default: as "
                        "BLAS is configured, e.g. by OPENBLAS_NUM_THREADS, often one per "
                        "core); 1 for runs side by side, whose threads would otherwise "
                        "outnumber the cores and wait for each other (docs/reproduction.md). "
                        "Not kept by the run; but BLAS's sums round differently with another "
                        "count, so a resume with another N is not bit for bit the run that "
                        "would have been")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"),
                   help="folder holding mnist/")
    p.add_argument("--seed", type=number(int, 0),
                   help="initialisation and noise (default 0; on resume, the run's)")
    p.add_argument("--out", help="folder for checkpoints and results.csv")
    p.add_argument("--plot", metavar="PNG",
                   help="only draw the NLL of --runs against epochs, and their unit activity "
                        "if the MNIST test set is found")
    p.add_argument("--runs", nargs="+", default=[], help="run folders for --plot")
    p.add_argument("--table", action="store_true",
                   help="only print the Markdown table of each of --runs")
    p.add_argument("--export", metavar="FOLDER",
                   help="only write the --out run's last evaluated stage (or --stage) as a "
                        "new npvae run folder, without Adam's state")
    p.add_argument("--stage", type=int, help="the stage --export writes (default: the last)")
    p.add_argument("--smoke", action="store_true",
                   help="seconds: 200 images, 2 stages, k = 5 in evaluation")
    args = p.parse_args(argv)
    if args.plot:
        has_data = (Path(args.data_dir) / "mnist").is_dir()
        return plot(args.runs, args.plot, load_mnist(args)[1] if has_data else None)
    if args.table:
        for folder in args.runs:
            print(f"{folder}:\n\n{table(folder)}\n")
        return None
    if args.out is None:
        p.error("--out is required to train or to --export")
    if args.export:
        return export(Path(args.out), Path(args.export), args.stage)
    if args.smoke:
        args.stages, args.eval_k = 2, 5
    out = Path(args.out)
    if not saved(out / "latest"):
        settle_settings(args, out, None)    # a new run: checked before anything is written
        make_model(args).check_params()
    if not (Path(args.data_dir) / "mnist").is_dir():
        raise ValueError(f"--data-dir {args.data_dir} has no mnist/ folder; give the folder "
                         f"that holds mnist/ (as in ../shared/data)")
    out.mkdir(parents=True, exist_ok=True)
    # A second process on the same --out stops at the lock; limits=None leaves BLAS as it is.
    with lock(out), threadpool_limits(limits=args.blas_threads, user_api="blas"):
        train(args, out)


def settle_settings(args, out, model):
    """Fill each of ``SETTINGS`` left out of ``args`` from the saved run
    ``model`` (or the default for a new run); refuse, naming them, those
    given with values other than the run was trained with."""
    iwae = model is not None and model.importance_weighted
    saved = None if model is None else {
        "model": "iwae" if iwae else "vae", "k": model.k if iwae else None,
        "seed": model.random_state,
        "batch_size": model.batch_size, "gradient_estimator": model.gradient_estimator,
        "stochastic_layers": model.stochastic_layers}
    differ = [f"--{key.replace('_', '-')} {saved[key]} (given {getattr(args, key)})"
              for key in SETTINGS if saved is not None and getattr(args, key) is not None
              and saved[key] is not None and getattr(args, key) != saved[key]]
    if differ:
        raise ValueError(f"{out} is a run trained with {', '.join(differ)}; leave those "
                         f"options out to resume it, or choose a new --out")
    k_given = args.k is not None
    for key, default in SETTINGS.items():
        if getattr(args, key) is None:
            setattr(args, key, default if saved is None or saved[key] is None else saved[key])
    if k_given and args.model == "vae":
        raise ValueError("--k is for --model iwae: a VAE trains on one sample")


def train(args, out):
    """Run (or continue) the schedule in folder ``out``, evaluating at every
    stage boundary not yet in its results.csv."""
    results = out / "results.csv"
    stage_seconds = None            # training time of the stage in progress, if known
    model = None
    if saved(out / "latest"):
        model, extra = load_checkpoint(out / "latest", return_extra=True,
                                       require_optimizer=True)
        # Carried over resumes; None from a checkpoint written before it was kept.
        stage_seconds = extra.get("stage_seconds")
        settle_settings(args, out, model)
    X_train, X_test = load_mnist(args)
    if model is None:
        model = make_model(args).initialize(X_train.shape[1], X_train)
    else:
        print(f"resuming {out} after epoch {model.n_iter_}", flush=True)
    done = {int(row["stage"]) for row in done_rows(results)}
    boundary = 0
    for stage, (epochs, rate) in enumerate(stage_schedule(args.stages)):
        boundary += epochs
        if stage in done:
            continue
        trained_here = model.n_iter_ < boundary
        if trained_here:
            if model.n_iter_ == boundary - epochs:
                stage_seconds = 0.0     # the stage starts now, whatever came before
            model.set_params(learning_rate=rate)
            start = time.perf_counter() - (stage_seconds or 0.0)
            while model.n_iter_ < boundary:
                # A fresh binarisation every pass, seeded by the epoch: a
                # resumed run draws the same ones.
                rng = np.random.default_rng([args.seed, model.n_iter_])
                model.fit_epoch(binarize(X_train, rng))
                if stage_seconds is not None:
                    stage_seconds = time.perf_counter() - start
                save_checkpoint(model, out / "latest", extra={"stage_seconds": stage_seconds})
        stage_path = out / f"stage-{stage}"
        unsaved = model.n_iter_ == boundary and not saved(stage_path)
        if trained_here or unsaved:    # unsaved: killed between the last epoch's save and this
            save_checkpoint(model, stage_path, extra={"stage_seconds": stage_seconds})
        # The boundary's model and training time (None: part of it ran
        # before that time was kept), from its checkpoint after a resume.
        at_boundary, extra = load_checkpoint(stage_path, return_extra=True)
        seconds = extra.get("stage_seconds")
        row = {"stage": stage, "epochs": boundary, "learning_rate": rate,
               "train_seconds": "" if seconds is None else round(seconds, 1),
               **evaluate(at_boundary, X_test, args)}
        append_row(results, row)
        print(", ".join(f"{k} {v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()

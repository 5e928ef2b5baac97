"""The ``npvae`` command: train, evaluate, draw and gradient-check a VAE.

``main(argv)`` returns the exit status: 0 on success, 1 when a gradient
check fails, 2 on bad input (one ``npvae: error: ...`` line on stderr, no
traceback) and 130 when interrupted.

A run folder holds::

    config.json     data set, seed, epochs and hyper-parameters of the run
    metrics.csv     one row per epoch: train_loss, train_recon, train_kl (means
                    over the epoch's mini-batches; train_loss is the objective
                    minimised, with beta and the KL warm-up) and val_loss,
                    val_recon, val_kl (the validation split with beta = 1 and
                    fixed noise: val_loss is the negative ELBO), all in nats
    checkpoints/    the checkpoint of the last whole epoch (npvae.checkpoints)
    figures/        PNG figures

A checkpoint is written after every epoch (with Ctrl-C held back until
it is complete), so Ctrl-C loses at most the epoch under way: a partial
epoch cannot be resumed bit for bit, so it is dropped, and
``npvae train --resume RUN`` continues from the last whole one.
"""
import argparse
import contextlib
import csv
import io
import json
import math
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__, plots
from .checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from .files import atomic_write
from .datasets import DATASETS, DataError, binarize, load_dataset, train_val_split
from .evaluation import active_units, importance_weighted_log_likelihood, kl_per_dimension
from .gradcheck import check_model
from .layers import ACTIVATIONS
from .models import DTYPES, LIKELIHOODS, VAE

__all__ = ["main"]

#: Defaults of ``npvae train``, chosen so that a bare ``npvae train`` on the
#: bundled digits finishes in seconds and can draw the 2-D manifold.
DEFAULTS = {"dataset": "digits", "data_dir": None, "binarize": False, "seed": 0,
            "latent_dim": 2, "hidden_dims": [128], "activation": "relu",
            "likelihood": "bernoulli", "beta": 1.0, "kl_warmup": 0.0, "batch_size": 32,
            "learning_rate": 1e-3, "dtype": "float32"}
DEFAULT_EPOCHS = {"digits": 100}  # 10 for every other data set
VAL_FRACTION = 0.1
_MODEL_KEYS = ("latent_dim", "hidden_dims", "activation", "likelihood", "beta",
               "kl_warmup", "batch_size", "learning_rate", "dtype")
_METRIC_KEYS = ("epoch", "train_loss", "train_recon", "train_kl",
                "val_loss", "val_recon", "val_kl")


class _UsageError(ValueError):
    """A command-line argument that argparse refused."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------- option types
def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _float_in(low, inclusive):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            bound = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound} {low}, got {text}")
        return value
    return parse


def _hidden(text):
    """``400`` -> [400], ``200,200`` -> [200, 200], ``""``/``none`` -> []."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive widths such as 400 or 200,200 "
            f"('none' for a linear model), got {text!r}")
    return widths


# ---------------------------------------------------------------- the parser
def _parser():
    parser = _Parser(prog="npvae", description="A Variational Autoencoder in NumPy: "
                     "train, evaluate, draw and gradient-check.")
    parser.add_argument("--version", action="version", version=f"npvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a VAE and write a run folder",
                       description="Train a VAE; writes config.json, metrics.csv, "
                       "checkpoints/ and figures/ into the run folder. Options left out "
                       "take the defaults shown.")
    t.add_argument("--dataset", help=f"one of {', '.join(DATASETS)}, or a .npy/.npz/.csv "
                   f"file (default {DEFAULTS['dataset']})")
    t.add_argument("--data-dir", help="folder with one sub-folder per data set "
                   "(default $NPVAE_DATA_DIR, else ~/.npvae/data)")
    t.add_argument("--download", action="store_true",
                   help="fetch missing data files (md5-checked)")
    t.add_argument("--binarize", action="store_const", const=True,
                   help="dynamic binarisation: draw 0/1 pixels anew each epoch "
                   "(data in [0, 1])")
    t.add_argument("--epochs", type=_int_at_least(0), help="total epochs (default 100 for "
                   "digits, else 10); with --resume, the new total")
    t.add_argument("--batch-size", type=_int_at_least(1),
                   help=f"default {DEFAULTS['batch_size']}")
    t.add_argument("--lr", dest="learning_rate", type=_float_in(0, False), metavar="LR",
                   help=f"Adam's step size (default {DEFAULTS['learning_rate']})")
    t.add_argument("--latent-dim", type=_int_at_least(1),
                   help=f"default {DEFAULTS['latent_dim']}")
    t.add_argument("--hidden", dest="hidden_dims", type=_hidden, metavar="WIDTHS",
                   help="encoder widths, e.g. 400 or 200,200; 'none' for linear "
                   f"(default {','.join(map(str, DEFAULTS['hidden_dims']))})")
    t.add_argument("--activation", choices=sorted(ACTIVATIONS),
                   help=f"default {DEFAULTS['activation']}")
    t.add_argument("--likelihood", choices=LIKELIHOODS,
                   help=f"default {DEFAULTS['likelihood']}")
    t.add_argument("--beta", type=_float_in(0, True),
                   help=f"weight of the KL term (default {DEFAULTS['beta']})")
    t.add_argument("--kl-warmup", type=_float_in(0, True), metavar="EPOCHS",
                   help="epochs over which the KL weight rises from 0 to beta (default 0)")
    t.add_argument("--dtype", choices=DTYPES, help=f"default {DEFAULTS['dtype']}")
    t.add_argument("--seed", type=_int_at_least(0),
                   help=f"seeds everything; same seed, same bits (default {DEFAULTS['seed']})")
    t.add_argument("--out", help="run folder (default runs/<dataset>-vae, numbered if taken)")
    t.add_argument("--force", action="store_true",
                   help="replace the run folder given by --out if it exists")
    t.add_argument("--resume", metavar="RUN",
                   help="continue RUN from its checkpoint (only --epochs and --data-dir "
                   "may change)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="ELBO, active units and IWAE log p(x) on the test set")
    _run_arguments(e)
    e.add_argument("--k", type=_int_at_least(1), default=1000,
                   help="importance samples per example (default 1000)")
    e.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the Monte Carlo estimates (default 0)")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("sample", help="draw a grid of samples from the prior")
    _run_arguments(s, figure=True)
    s.add_argument("--n", type=_int_at_least(1), default=100, help="number of samples")
    s.add_argument("--seed", type=_int_at_least(0), default=0)
    s.set_defaults(func=cmd_sample)

    r = sub.add_parser("reconstruct", help="draw test images above their reconstructions")
    _run_arguments(r, figure=True)
    r.add_argument("--n", type=_int_at_least(1), default=20, help="number of test images")
    r.set_defaults(func=cmd_reconstruct)

    i = sub.add_parser("interpolate", help="draw interpolations between test images")
    _run_arguments(i, figure=True)
    i.add_argument("--pairs", type=_int_at_least(1), default=8)
    i.add_argument("--steps", type=_int_at_least(2), default=8)
    i.set_defaults(func=cmd_interpolate)

    g = sub.add_parser("gradcheck", help="check a small float64 VAE's gradients "
                       "by central differences; exit status 1 on failure")
    g.add_argument("--latent-dim", type=_int_at_least(1), default=2)
    g.add_argument("--hidden", dest="hidden_dims", type=_hidden, default=[8], metavar="WIDTHS")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS), default="tanh",
                   help="default tanh (smooth; ReLU's kinks can fail a check)")
    g.add_argument("--likelihood", choices=LIKELIHOODS, default="bernoulli")
    g.add_argument("--features", type=_int_at_least(1), default=10)
    g.add_argument("--samples", type=_int_at_least(1), default=16)
    g.add_argument("--seed", type=_int_at_least(0), default=0)
    g.add_argument("--threshold", type=_float_in(0, False), default=1e-6,
                   help="largest relative error that passes (default 1e-6)")
    g.set_defaults(func=cmd_gradcheck)
    return parser


def _run_arguments(p, figure=False):
    p.add_argument("run", metavar="RUN", help="run folder (or a checkpoint file in it)")
    p.add_argument("--data-dir", help="where the run's data set is, if it has moved")
    if figure:
        p.add_argument("--out", help="PNG path (default RUN/figures/<figure>.png)")


# ---------------------------------------------------------------- runs on disk
def _write_json(path, obj):
    text = json.dumps(obj, indent=1)
    atomic_write(path, lambda f: f.write(text.encode()))


def _write_metrics(path, metrics):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_METRIC_KEYS, lineterminator="\n")
    writer.writeheader()
    for row in metrics:
        writer.writerow({k: row[k] if k == "epoch" else repr(row[k]) for k in _METRIC_KEYS})
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def _read_config(run):
    run = Path(run)
    if run.is_file() and run.parent.name == "checkpoints":
        run = run.parent.parent
    path = run / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not an npvae run folder (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in ("dataset", "seed", "epochs", *_MODEL_KEYS) if k not in config]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    return run, config


def _default_run_dir(dataset):
    stem = dataset if dataset in DATASETS else Path(dataset).stem
    base = Path("runs") / f"{stem}-vae"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def _check_out(out, force):
    """Refuse to touch an existing folder unless --force, and even then only
    an npvae run folder or an empty folder."""
    if not out.exists():
        return
    if not force:
        raise ValueError(f"{out} already exists; pass --force to replace it, or "
                         f"--resume {out} to continue it")
    if not out.is_dir() or (any(out.iterdir()) and not (out / "config.json").is_file()):
        raise ValueError(f"{out} exists and is not an npvae run folder; "
                         "refusing to replace it even with --force")


# ---------------------------------------------------------------- data
def _seeds(seed):
    """Independent generators for the validation split and the fixed
    binarisation of held-out data, both derived from the run's seed."""
    split, val_bits, test_bits = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(split), val_bits, test_bits


def _load_splits(config, data_dir=None, download=False):
    """Train, validation and test data of a run, as its config says, with
    the test labels (or None) and the image shape (or None).  The data set
    itself is not returned: the training split is a copy, and holding both
    would cost a second copy of the training images."""
    data = load_dataset(config["dataset"], data_dir=data_dir or config.get("data_dir"),
                        download=download)
    split_rng, val_bits, test_bits = _seeds(config["seed"])
    X_tr, X_val, _, _ = train_val_split(data.X_train, None, VAL_FRACTION, split_rng)
    X_test = data.X_test
    if config.get("binarize"):
        X_val = binarize(X_val, np.random.default_rng(val_bits))
        X_test = binarize(X_test, np.random.default_rng(test_bits))
    return X_tr, X_val, X_test, data.y_test, data.image_shape


def _validation(model, X):
    log_px, kl = model.elbo_terms(X, random_state=0)
    recon, kl = -float(np.mean(log_px)), float(np.mean(kl))
    return {"val_loss": recon + kl, "val_recon": recon, "val_kl": kl}


# ---------------------------------------------------------------- train
def cmd_train(args):
    if args.resume:
        return _resume(args)
    config = {k: DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)
              for k in DEFAULTS}
    # load_dataset takes names in any case; one spelling keeps the default
    # epochs and run-folder name the same for DIGITS as for digits.
    if config["dataset"].lower() in DATASETS:
        config["dataset"] = config["dataset"].lower()
    # Absolute paths, so that the run can be evaluated from any folder.
    elif Path(config["dataset"]).exists():
        config["dataset"] = str(Path(config["dataset"]).resolve())
    config["epochs"] = args.epochs if args.epochs is not None else \
        DEFAULT_EPOCHS.get(config["dataset"], 10)
    if config["data_dir"] is not None:
        config["data_dir"] = str(Path(config["data_dir"]).resolve())
    out = Path(args.out) if args.out else _default_run_dir(config["dataset"])
    _check_out(out, args.force)

    # Everything that can fail on bad input happens before the disk is touched.
    X_tr, X_val, X_test, y_test, image_shape = _load_splits(config, download=args.download)
    config["n_features"] = int(X_tr.shape[1])
    config["image_shape"] = list(image_shape) if image_shape else None
    model = VAE(**_model_params(config)).initialize(X_tr.shape[1], X_tr)

    if out.exists():
        shutil.rmtree(out)
    (out / "checkpoints").mkdir(parents=True)
    config["npvae_version"] = __version__
    _write_json(out / "config.json", config)
    print(f"training a VAE {X_tr.shape[1]}-{'-'.join(map(str, config['hidden_dims']))}"
          f"{'-' if config['hidden_dims'] else ''}{config['latent_dim']} on "
          f"{config['dataset']} ({X_tr.shape[0]} train, {X_val.shape[0]} validation "
          f"examples) for {config['epochs']} epochs into {out}", flush=True)
    _checkpoint(model, out, [])
    return _train_epochs(model, out, config, X_tr, X_val, X_test, y_test, [])


def _model_params(config):
    params = {k: config[k] for k in _MODEL_KEYS}
    params["hidden_dims"] = tuple(params["hidden_dims"])
    return dict(params, epochs=config["epochs"], random_state=config["seed"])


def _resume(args):
    flags = {"learning_rate": "lr", "hidden_dims": "hidden"}
    given = [flags.get(k, k).replace("_", "-") for k in (*DEFAULTS, "out")
             if k != "data_dir" and getattr(args, k) is not None]
    given += [k for k in ("force", "download") if getattr(args, k)]
    if given:
        names = ", ".join(f"--{k}" for k in given)
        raise ValueError(f"--resume continues a run with its own settings; only --epochs "
                         f"and --data-dir may be given with it, not {names}")
    run, config = _read_config(args.resume)
    model, extra = load_checkpoint(run, return_extra=True)
    metrics = list(extra.get("metrics", []))
    if args.epochs is not None:
        if args.epochs < model.n_iter_:
            raise ValueError(f"--epochs is the new total, and {run} has already trained "
                             f"{model.n_iter_} epochs; it cannot train fewer")
        config["epochs"] = args.epochs
    if model.n_iter_ >= config["epochs"]:
        print(f"{run} has already trained {model.n_iter_} epochs; pass --epochs N "
              f"with N > {model.n_iter_} to train more")
        return 0
    X_tr, X_val, X_test, y_test, _ = _load_splits(config, data_dir=args.data_dir)
    model.set_params(epochs=config["epochs"])
    _write_json(run / "config.json", config)
    print(f"resuming {run} at epoch {model.n_iter_} of {config['epochs']}", flush=True)
    return _train_epochs(model, run, config, X_tr, X_val, X_test, y_test, metrics)


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold a Ctrl-C back until the block is done, then raise it: a
    checkpoint is never cut in half, not even as temporary files. (Only
    the main thread can handle signals; elsewhere the block runs as is.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _checkpoint(model, run, metrics):
    """Save the model with its metrics, then drop older checkpoints (only
    after the new one is complete)."""
    path = save_checkpoint(model, run / "checkpoints" / f"epoch-{model.n_iter_:04d}",
                           extra={"metrics": metrics})
    for old in (run / "checkpoints").glob("epoch-*"):
        if old.stem != path.stem:
            old.unlink()
    _write_metrics(run / "metrics.csv", metrics)
    return path


def _train_epochs(model, run, config, X_tr, X_val, X_test, y_test, metrics):
    n_batches = -(-X_tr.shape[0] // min(model.batch_size, X_tr.shape[0]))
    saved = model.n_iter_
    start = time.perf_counter()
    try:
        while model.n_iter_ < config["epochs"]:
            epoch = model.n_iter_ + 1
            X_epoch = binarize(X_tr, model.rng_) if config["binarize"] else X_tr
            with tqdm(total=n_batches, desc=f"epoch {epoch}/{config['epochs']}",
                      unit="batch", leave=False, file=sys.stderr, mininterval=0.2,
                      disable=None) as bar:
                def progress(i, n, loss):
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                # fit_epoch raises FloatingPointError if the loss stops being
                # finite; numpy's overflow warnings on the way add nothing.
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    record = model.fit_epoch(X_epoch, callback=progress)
            with _ctrl_c_deferred():
                metrics = metrics + [_metrics_row(model, record, X_val)]
                _checkpoint(model, run, metrics)
                saved = model.n_iter_
            m = metrics[-1]
            print(f"epoch {epoch:>{len(str(config['epochs']))}}/{config['epochs']}  "
                  f"train {m['train_loss']:.3f} (recon {m['train_recon']:.3f}, "
                  f"KL {m['train_kl']:.3f})  val {m['val_loss']:.3f} "
                  f"(recon {m['val_recon']:.3f}, KL {m['val_kl']:.3f})", flush=True)
    except KeyboardInterrupt:
        if model.n_iter_ > saved:
            # Interrupted after an epoch ended but before its checkpoint was
            # complete: that state is whole, so save it.
            with _ctrl_c_deferred():
                if len(metrics) < model.n_iter_:
                    metrics = metrics + [_metrics_row(model, model.history_[-1], X_val)]
                _checkpoint(model, run, metrics)
                saved = model.n_iter_
        # A partial epoch cannot be resumed bit for bit; the last whole one can.
        print(f"\nnpvae: interrupted; {run} is saved at epoch {saved} "
              f"({latest_checkpoint(run)}). Continue with: npvae train --resume {run}",
              file=sys.stderr, flush=True)
        return 130
    elapsed = time.perf_counter() - start
    print(f"trained {config['epochs']} epochs in {elapsed:.1f} s; drawing figures", flush=True)
    paths = _draw_run_figures(model, run, config, X_test, y_test, metrics)
    print(f"run folder {run}: config.json, metrics.csv, checkpoints/, figures/")
    for path in paths:
        print(f"  figure {path}")
    return 0


def _metrics_row(model, record, X_val):
    row = {"epoch": model.n_iter_, "train_loss": record["loss"],
           "train_recon": record["recon"], "train_kl": record["kl"]}
    row.update(_validation(model, X_val))
    return row


# ---------------------------------------------------------------- figures
def _image_shape(config, required=False):
    shape = plots.infer_image_shape(config["n_features"], config.get("image_shape"))
    if shape is None:
        why = (f"the {config['n_features']} features are not an image (the data set has "
               "no image shape and the count is not a perfect square)")
        if required:
            raise ValueError(f"{why}; there is nothing to draw")
        print(f"npvae: {why}: skipping the image figures", file=sys.stderr)
    elif not config.get("image_shape"):
        # Only the count says "image" here; a table of 16 columns is not one.
        print(f"npvae: drawing the {config['n_features']} features as {shape[0]}x{shape[1]} "
              "images, a guess from their count (save X as (samples, height, width) to "
              "give the shape)", file=sys.stderr)
    return shape


def _draw_run_figures(model, run, config, X_test, y_test, metrics):
    figures = run / "figures"
    figures.mkdir(exist_ok=True)
    paths = []
    if metrics:
        paths.append(plots.plot_loss_curves(metrics, figures / "loss.png"))
    paths.append(plots.plot_latent(model.transform(X_test), y_test,
                                   figures / "latent.png"))
    shape = _image_shape(config)
    if shape is not None:
        paths.append(_reconstructions(model, X_test, shape, figures / "reconstructions.png"))
        paths.append(plots.plot_samples(model.sample(100, random_state=0), shape,
                                        figures / "samples.png"))
        if model.latent_dim == 2:
            paths.append(plots.plot_manifold(model, shape, figures / "manifold.png"))
        paths.append(_interpolations(model, X_test, shape, figures / "interpolations.png"))
    return paths


def _reconstructions(model, X, shape, path, n=20):
    X = X[:n]
    return plots.plot_reconstructions(X, model.decode(model.transform(X)), shape, path)


def _interpolations(model, X, shape, path, pairs=8, steps=8):
    if X.shape[0] < 2:
        raise ValueError("interpolations need at least 2 test examples")
    pairs = min(pairs, X.shape[0] // 2)
    return plots.plot_interpolations(model, X[:pairs], X[pairs:2 * pairs], shape, path, steps)


# ---------------------------------------------------------------- the other verbs
def _open_run(args):
    run, config = _read_config(args.run)
    model = load_checkpoint(args.run)
    return run, config, model


def _figure_path(args, run, name):
    path = Path(args.out) if args.out else run / "figures" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _test_data(args, config):
    return _load_splits(config, data_dir=args.data_dir)[2]


def cmd_evaluate(args):
    run, config, model = _open_run(args)
    X = _test_data(args, config)
    log_px, kl = model.elbo_terms(X, random_state=args.seed)
    per_dim = kl_per_dimension(model, X)
    units = active_units(model, X)
    binarized = ", binarized once with a fixed seed" if config.get("binarize") else ""
    print(f"{run}: epoch {model.n_iter_}, test set of {config['dataset']}: "
          f"{X.shape[0]} examples, {X.shape[1]} features{binarized}")
    print(f"ELBO                  {np.mean(log_px - kl):10.3f} nats  "
          f"(reconstruction {-np.mean(log_px):.3f}, KL {np.mean(kl):.3f})")
    print(f"active units          {units:>6d} of {model.latent_dim}  (KL per dimension: "
          f"{' '.join(f'{v:.2f}' for v in per_dim)})", flush=True)
    start = time.perf_counter()
    iw = importance_weighted_log_likelihood(model, X, k=args.k, random_state=args.seed)
    elapsed = time.perf_counter() - start
    print(f"log p(x), IWAE k={args.k:<5d}{np.mean(iw):10.3f} nats  ({elapsed:.1f} s)")
    return 0


def _figure_command(args, name, draw):
    """Open RUN, draw one figure with ``draw(model, config, shape, path)``
    and print its path."""
    run, config, model = _open_run(args)
    shape = _image_shape(config, required=True)
    print(draw(model, config, shape, _figure_path(args, run, name)))
    return 0


def cmd_sample(args):
    return _figure_command(args, "samples.png", lambda model, config, shape, path: (
        plots.plot_samples(model.sample(args.n, random_state=args.seed), shape, path)))


def cmd_reconstruct(args):
    return _figure_command(args, "reconstructions.png", lambda model, config, shape, path: (
        _reconstructions(model, _test_data(args, config), shape, path, args.n)))


def cmd_interpolate(args):
    return _figure_command(args, "interpolations.png", lambda model, config, shape, path: (
        _interpolations(model, _test_data(args, config), shape, path, args.pairs, args.steps)))


def cmd_gradcheck(args):
    rng = np.random.default_rng(args.seed)
    X = rng.random((args.samples, args.features))
    model = VAE(latent_dim=args.latent_dim, hidden_dims=tuple(args.hidden_dims),
                activation=args.activation, likelihood=args.likelihood, dtype="float64",
                random_state=args.seed)
    report = check_model(model, X, random_state=rng)
    print(report)
    ok = report.max_error <= args.threshold
    print(f"max relative error {report.max_error:.2e} "
          f"{'<=' if ok else '>'} threshold {args.threshold:g}: {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


# ---------------------------------------------------------------- entry point
def main(argv=None):
    """Run the ``npvae`` command with ``argv`` (default ``sys.argv[1:]``) and
    return its exit status."""
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help and --version
            return e.code or 0
        return args.func(args)
    except (ValueError, TypeError, OSError, DataError, FloatingPointError, MemoryError) as e:
        # A too-large --hidden or --latent-dim shows up only as a MemoryError.
        message = " ".join(str(e).split()) or "out of memory"
        print(f"npvae: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training, where there is nothing to save
        print("\nnpvae: interrupted", file=sys.stderr)
        return 130

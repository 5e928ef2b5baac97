"""The ``npvae`` command: train, evaluate, draw and gradient-check a VAE.

``main(argv)`` returns the exit status: 0 on success, 1 when a gradient
check fails, 2 on bad input (one ``npvae: error: ...`` line on stderr, no
traceback) and 130 when interrupted.  What a run folder holds, and how
training into one is saved, resumed and interrupted, is in
:mod:`npvae.app.runs`; this module parses the arguments.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from tqdm import tqdm

from .. import __version__
from . import figures, recipes, runs
from .checkpoints import load_checkpoint
from .datasets import CLASS_NAMES, DATASETS, DataError
from ..models.evaluation import (active_units_per_layer, importance_weighted_log_likelihood,
                                kl_per_dimension)
from ..core.gradcheck import check_model
from ..core.layers import ACTIVATIONS
from ..core.likelihoods import LIKELIHOODS
from ..models import DTYPES
from ..models.saving import written_by_npvae

__all__ = ["main", "number", "jobs"]

#: Defaults of ``npvae train`` that no recipe sets; the data set's recipe
#: (npvae.app.recipes) gives the rest.  A bare ``npvae train`` trains the
#: bundled digits in seconds and can draw the 2-D manifold.
DEFAULTS = {"dataset": "digits", "data_dir": None, "seed": 0, "beta": 1.0, "kl_warmup": 0.0,
            "dtype": "float32", "model": "vae", "k": 5, "conditional": False,
            "stochastic_layers": 1,
            **runs.OPTIONAL_DEFAULTS}
#: Option names of the config keys whose names differ.
_FLAGS = {"learning_rate": "lr", "hidden_dims": "hidden", "n_components": "components"}


class _HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help, unless the help says it.
    An option of ``train`` left out (None) takes the recipe's value or the
    one in :data:`DEFAULTS`, so its help says which."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None:
            default = "the recipe's" if action.dest in recipes.FILE_RECIPE else \
                DEFAULTS.get(action.dest)
        if action.option_strings and action.nargs != 0 and "default" not in text \
                and default not in (None, argparse.SUPPRESS):
            text += f" (default: {_as_typed(default)})"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs):
        # No abbreviations: a typo such as --epoch is an error, not --epochs.
        super().__init__(allow_abbrev=False, formatter_class=_HelpFormatter, **kwargs)

    def error(self, message):
        # A ValueError, so that main reports it as any bad input: one line, exit 2.
        raise ValueError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------- option types
#: Largest layer width, latent size or sample count: far above what a
#: NumPy VAE trains, below sizes that take minutes or cannot be allocated;
#: the models check what a size costs in memory (npvae.core.validation.check_memory).
MAX_SIZE = 100_000
#: Largest number of images in a figure: more could not be told apart.
MAX_IMAGES = 10_000


def number(kind, low, high=None, inclusive=True):
    """An option type: a ``kind`` (int or float) from ``low`` (itself
    included if ``inclusive``) to ``high``; a float must be finite.  The
    scripts in benchmarks/ take their options with it too."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (kind is float and not math.isfinite(value)) or value < low \
                or (value == low and not inclusive):
            what = "" if kind is int else "a finite number "
            raise argparse.ArgumentTypeError(
                f"must be {what}{'>=' if inclusive else '>'} {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return value
    return parse


def jobs(text):
    """An option type: how many threads, -1 for every core, -2 all but one, ..."""
    value = number(int, -MAX_SIZE, MAX_SIZE)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must not be 0: 1 for one core, -1 for every core")
    return value


def _path(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


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
    if max(widths) > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"each width must be <= {MAX_SIZE}, got {text}")
    return widths


# ---------------------------------------------------------------- the parser
#: Sizes of layers, latent codes and sample counts, and numbers of images.
_SIZE, _IMAGES = number(int, 1, MAX_SIZE), number(int, 1, MAX_IMAGES)
_SEED, _POSITIVE = number(int, 0), number(float, 0, inclusive=False)
_MOVED_DATA = "where the run's data set is, if it has moved (default: where it was trained from)"


def _parser():
    parser = _Parser(prog="npvae", description="A Variational Autoencoder in NumPy: "
                     "train, evaluate, draw and gradient-check. 'npvae COMMAND --help' "
                     "lists a command's options.")
    parser.add_argument("--version", action="version", version=f"npvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a VAE and write a run folder",
                       description="Train a VAE; writes config.json, metrics.csv, "
                       "checkpoints/ and figures/ into the run folder. Options left out "
                       "take the data set's recipe (listed in npvae/app/recipes.py and the "
                       "README) or the defaults shown; the settings used are printed first.")
    t.add_argument("--dataset", type=_path, help=f"one of {', '.join(DATASETS)}, or a "
                   f".npy/.npz/.csv file (default: {DEFAULTS['dataset']})")
    t.add_argument("--data-dir", type=_path, help="folder with one sub-folder per data set "
                   "(default: $NPVAE_DATA_DIR, else ~/.npvae/data)")
    t.add_argument("--download", action="store_true", help="fetch missing data files (md5-checked)")
    t.add_argument("--binarize", action=argparse.BooleanOptionalAction,
                   help="dynamic binarisation: draw 0/1 pixels anew each epoch "
                   "(data in [0, 1]) (default: the recipe's, on for mnist)")
    t.add_argument("--epochs", type=number(int, 1), help="total epochs; with --resume, "
                   "the new total (default: the recipe's, e.g. 100 for digits, 10 for a file)")
    t.add_argument("--batch-size", type=_SIZE, help="examples per step")
    t.add_argument("--lr", dest="learning_rate", type=_POSITIVE, metavar="LR",
                   help="Adam's step size")
    _model_arguments(t)
    t.add_argument("--obs-var", type=_POSITIVE, metavar="VAR", help="Gaussian likelihood: a "
                   "fixed noise variance sigma^2 instead of a learned one (default: learned)")
    t.add_argument("--beta", type=number(float, 0), help="weight of the KL term")
    t.add_argument("--kl-warmup", type=number(float, 0), metavar="EPOCHS",
                   help="epochs over which the KL weight rises from 0 to beta")
    t.add_argument("--gradient-estimator", choices=("standard", "dreg", "stl"),
                   help="the encoder's gradient, dreg for --model iwae")
    t.add_argument("--conditional", action="store_true", default=None,
                   help="a conditional VAE, q(z|x,y) and p(x|z,y), on the data set's labels "
                   "(digits, mnist, fashion-mnist, .npz files holding y)")
    t.add_argument("--dtype", choices=DTYPES, help="floating-point type of the model")
    t.add_argument("--seed", type=_SEED, help="seeds everything; same seed, same bits")
    t.add_argument("--out", type=_path,
                   help="run folder (default: runs/<dataset>-vae, numbered if taken)")
    t.add_argument("--force", action="store_true",
                   help="replace the run folder given by --out if it exists (only a run "
                   "folder npvae wrote, never the working folder or a parent)")
    t.add_argument("--resume", metavar="RUN", type=_path, help="continue RUN from its checkpoint, "
                   "or complete what a crash left out of a finished one; only --epochs and "
                   "--data-dir may be given with it (default: a new run)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="ELBO, active units and IWAE log p(x) on the test set")
    _run_arguments(e)
    e.add_argument("--k", type=_SIZE, default=1000, help="importance samples per example")
    e.add_argument("--seed", type=_SEED, default=0, help="seed of the Monte Carlo estimates")
    e.add_argument("--jobs", type=jobs, default=-1,
                   help="threads for the IWAE estimate, which gives the same number on any "
                   "number of them (-1: every core, -2: all but one)")
    e.set_defaults(func=cmd_evaluate)

    s = _figure_parser(sub, "sample", "a grid of samples from the prior",
                       "samples-seed<SEED>.png", cmd_sample)
    s.add_argument("--n", type=_IMAGES, default=100, help="number of samples")
    s.add_argument("--seed", type=_SEED, default=0, help="seed of the samples")
    s.add_argument("--label", metavar="L", help="conditional runs: N samples of the class L "
                   "(default: one row per class)")

    r = _figure_parser(sub, "reconstruct", "test images above their reconstructions",
                       "reconstructions-n<N>.png", cmd_reconstruct)
    r.add_argument("--n", type=_IMAGES, default=20,
                   help="number of test images (the first of the test set)")

    i = _figure_parser(sub, "interpolate", "interpolations between test images",
                       "interpolations-<PAIRS>x<STEPS>.png", cmd_interpolate)
    i.add_argument("--pairs", type=_IMAGES, default=8,
                   help="number of pairs of test images, one row each")
    i.add_argument("--steps", type=number(int, 2, MAX_IMAGES), default=8,
                   help="decoded images per row, from one latent mean to the other; "
                        "the two originals are added at the ends")

    g = sub.add_parser("gradcheck", help="check a model's gradients by central differences "
                       "in float64: a small fresh one, or a trained run's; exit status 1 on "
                       "failure", description="The default activation, tanh, is smooth; "
                       "ReLU's kinks can fail a check.")
    g.add_argument("run", metavar="RUN", type=_path, nargs="?",
                   help="a run folder: check its trained model, cast to float64, on its first "
                   "--samples training rows (default: a fresh model, as the options below say)")
    _model_arguments(g)
    g.add_argument("--conditional", action="store_true", help="a conditional VAE, on the "
                   "labels 0, 1, 2 given to the rows in turn")
    g.add_argument("--features", type=_SIZE, help="features of the random data checked on")
    g.add_argument("--samples", type=_SIZE, default=16,
                   help="rows checked on: random, or RUN's first training rows")
    g.add_argument("--data-dir", type=_path, help=_MOVED_DATA)
    g.add_argument("--seed", type=_SEED, default=0, help="seeds the model, the data and the noise")
    g.add_argument("--threshold", type=_POSITIVE, default=1e-6,
                   help="largest relative error that passes")
    g.set_defaults(func=cmd_gradcheck, **_FRESH)
    return parser


def _model_arguments(p):
    """The options that build a model, shared by train (left out: the
    recipe's or DEFAULTS') and gradcheck (its own small defaults)."""
    p.add_argument("--latent-dim", type=_SIZE, help="dimension of z")
    p.add_argument("--hidden", dest="hidden_dims", type=_hidden, metavar="WIDTHS",
                   help="encoder widths, e.g. 400 or 200,200; 'none' for linear")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), help="hidden layers' activation")
    p.add_argument("--likelihood", choices=tuple(LIKELIHOODS), help="p(x|z)")
    p.add_argument("--model", choices=("vae", "iwae"),
                   help="the ELBO (vae) or the importance-weighted bound (iwae)")
    p.add_argument("--k", type=_SIZE, help="--model iwae: importance samples per example")
    p.add_argument("--stochastic-layers", type=int, choices=(1, 2), help="layers of codes; 2: "
                   "z2 --latent-dim wide, z1 twice that, the --hidden widths below z1 and "
                   "halved below z2 (Burda et al.'s with --latent-dim 50 --hidden 100,100)")
    p.add_argument("--prior", choices=("standard_normal", "mixture"),
                   help="p(z): N(0, I), or a learned mixture of Gaussians")
    p.add_argument("--components", dest="n_components", type=_SIZE,
                   help="--prior mixture: its number of components")


def _run_arguments(p):
    p.add_argument("run", metavar="RUN", type=_path, help="run folder (or a checkpoint file in it)")
    p.add_argument("--data-dir", type=_path, help=_MOVED_DATA)


def _figure_parser(sub, name, what, figure, func):
    """The sub-command ``name`` that draws ``what`` into RUN/figures/``figure``."""
    p = sub.add_parser(name, help=f"draw {what} into RUN/figures/{figure}")
    _run_arguments(p)
    p.add_argument("--out", type=_path, help=f"PNG file to write (default: "
                   f"RUN/figures/{figure}, beside the figures train drew)")
    p.set_defaults(func=func)
    return p


# ---------------------------------------------------------------- train
def cmd_train(args):
    if args.resume:
        return _resume(args)
    dataset = args.dataset if args.dataset is not None else DEFAULTS["dataset"]
    # load_dataset takes names in any case; one spelling keeps the recipe
    # and run-folder name the same for DIGITS as for digits.
    if dataset.lower() in DATASETS:
        dataset = dataset.lower()
    # Absolute paths, so that the run can be evaluated from any folder.
    elif Path(dataset).exists():
        dataset = str(Path(dataset).resolve())
    config = {**DEFAULTS, **recipes.recipe(dataset), "dataset": dataset}
    given = [k for k in config if k != "dataset" and getattr(args, k) is not None]
    config.update({k: getattr(args, k) for k in given})
    if config["obs_var"] is not None and config["likelihood"] != "gaussian":
        raise ValueError("--obs-var is the noise variance of --likelihood gaussian; "
                         f"the likelihood here is {config['likelihood']}")
    for key, flag, needs in (("k", "--model", "iwae"), ("n_components", "--prior", "mixture")):
        if key in given and config[flag[2:]] != needs:
            raise ValueError(f"--{_FLAGS.get(key, key)} is for {flag} {needs} only; the "
                             f"{flag[2:]} here is {config[flag[2:]]}")
    if config["conditional"] and dataset in runs.UNLABELLED:
        raise runs.unlabelled(dataset)
    if config["data_dir"] is not None:
        config["data_dir"] = str(Path(config["data_dir"]).resolve())
    print(_settings(config, given, "recipe" if dataset in recipes.RECIPES else
                    "settings for a data file"), flush=True)
    out = Path(args.out) if args.out else None
    return runs.create(config, out, force=args.force, download=args.download)


def _settings(config, given, source):
    """One line of the settings a run trains with, as options."""
    keys = ("likelihood", "obs_var", "activation", "hidden_dims", "latent_dim", "epochs",
            "batch_size", "learning_rate", "binarize", "conditional", "seed")
    shown = [_option(k, config[k]) for k in keys
             if config[k] is not None and config[k] is not False]
    if config["likelihood"] == "gaussian" and config["obs_var"] is None:
        shown.insert(1, "(noise variance learned)")
    flags = ", ".join(_option(k, config[k]) for k in given)
    return (f"settings: {' '.join(shown)} ({Path(config['dataset']).name} {source}"
            f"{'; given: ' + flags if flags else ''})")


def _option(key, value):
    """``key`` with ``value`` as typed on the command line: ``--epochs 3``."""
    flag = "--" + _FLAGS.get(key, key).replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    return f"{flag} {_as_typed(value)}"


def _as_typed(value):
    """``value`` as typed on the command line: ``200,200``, ``none``, ``1e-06``."""
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _resume(args):
    keys = (*DEFAULTS, *recipes.FILE_RECIPE, "out")
    given = [_FLAGS.get(k, k).replace("_", "-") for k in keys
             if k not in ("data_dir", "epochs") and getattr(args, k) is not None]
    given += [k for k in ("force", "download") if getattr(args, k)]
    if given:
        raise ValueError(f"--resume continues a run with its own settings; only --epochs "
                         f"and --data-dir may be given with it, not --{', --'.join(given)}")
    return runs.resume(args.resume, epochs=args.epochs, data_dir=args.data_dir)


# ---------------------------------------------------------------- the other verbs
def _open_run(args):
    run, config = runs.read_config(args.run)
    return run, config, runs.check_checkpoint(run, config, load_checkpoint(args.run))


def _test_data(args, config):
    """The test split's rows and labels (None if it has none)."""
    data = runs.load_splits(config, data_dir=args.data_dir)
    return data.X_test, data.y_test


def cmd_evaluate(args):
    run, config, model = _open_run(args)
    X, y = _test_data(args, config)
    if not model.has_prior:
        # No prior, so no ELBO, KL or IWAE: only the reconstruction term.
        print(f"{run}: a {type(model).__name__} (no prior: no ELBO, KL, active units or "
              f"IWAE), epoch {model.n_iter_}, test set of {config['dataset']}: "
              f"{X.shape[0]} examples, {X.shape[1]} features")
        print(f"reconstruction -log p(x|dec(enc(x))) {-np.mean(model.score_samples(X)):.3f} nats")
        return 0
    # A conditional model is scored on log p(x|y), with the test labels.
    y, px, labels, elbo = (y, "p(x|y)", " with its labels", "ELBO of log p(x|y)") \
        if model.needs_labels else (None, "p(x)", "", "ELBO")
    log_px, kl = model.elbo_terms(X, y, random_state=args.seed)
    mixture = config.get("prior", "standard_normal") != "standard_normal"
    units = "+".join(map(str, active_units_per_layer(model, X, y=y)))
    sizes = "+".join(map(str, getattr(model, "latent_dims", [model.latent_dim])))
    binarized = ", binarized once with a fixed seed" if config.get("binarize") else ""
    print(f"{run}: epoch {model.n_iter_}, test set of {config['dataset']}{labels}: "
          f"{X.shape[0]} examples, {X.shape[1]} features{binarized}")
    print(f"{elbo:22s}{np.mean(log_px - kl):10.3f} nats  "
          f"(reconstruction {-np.mean(log_px):.3f}, KL {np.mean(kl):.3f})")
    detail = (f"KL sampled: the {'mixture prior' if mixture else 'two-layer model'} has no KL "
              "per dimension" if mixture or model.stochastic_layers == 2 else
              "KL per dimension: " + " ".join(f"{v:.2f}" for v in kl_per_dimension(model, X, y)))
    print(f"active units          {units:>6s} of {sizes}  ({detail})", flush=True)
    start = time.perf_counter()
    with tqdm(total=X.shape[0] * args.k, desc=f"IWAE k={args.k}", unit="sample",
              unit_scale=True, leave=False, file=sys.stderr, mininterval=0.5,
              disable=None) as bar:
        iw = importance_weighted_log_likelihood(
            model, X, k=args.k, random_state=args.seed, y=y, n_jobs=args.jobs,
            callback=lambda done, total: bar.update(done - bar.n))
    print(f"log {px}, IWAE k={args.k:<5d}{np.mean(iw):10.3f} nats  "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def _figure_command(args, name, draw, sample=False):
    """Open RUN, draw one figure with ``draw(model, X, y, shape, path,
    class_names)`` (the test split's X and y; none to ``sample``) and print
    its path."""
    run, config, model = _open_run(args)
    if sample and not model.has_prior:
        raise ValueError(f"{run} holds a {type(model).__name__}, which has no prior to "
                         "sample from; train a VAE to sample")
    shape = figures.image_shape(config, model.n_features_in_, required=True)
    path = Path(args.out) if args.out else runs.subfolder(run, "figures") / name
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give the path of a PNG file to write, "
                         f"such as {path / name}")
    if args.out and (path.is_symlink() or path.exists()) and not written_by_npvae(path, "figure"):
        raise ValueError(f"--out {path} exists and is not a figure npvae drew; pick another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = () if sample else _test_data(args, config)
    print(draw(model, *data, shape, path, CLASS_NAMES.get(config["dataset"])))
    return 0


def cmd_sample(args):
    name = f"samples-seed{args.seed}{'' if args.label is None else f'-label{args.label}'}.png"
    return _figure_command(args, name, lambda model, shape, path, names: figures.draw_samples(
        model, shape, path, args.n, args.seed, args.label, names), sample=True)


def cmd_reconstruct(args):
    return _figure_command(args, f"reconstructions-n{args.n}.png", lambda model, X, y, shape,
                           path, _: figures.draw_reconstructions(model, X, shape, path, args.n, y))


def cmd_interpolate(args):
    return _figure_command(
        args, f"interpolations-{args.pairs}x{args.steps}.png",
        lambda model, X, y, shape, path, names: figures.draw_interpolations(
            model, X, shape, path, args.pairs, args.steps, y, names))


#: The options of ``npvae gradcheck`` that build a fresh model (not for a
#: RUN), with their defaults: a small model, quick to check.
_FRESH = {"latent_dim": 2, "hidden_dims": [8], "activation": "tanh", "likelihood": "bernoulli",
          "features": 10, "model": "vae", "k": 5, "prior": "standard_normal",
          "n_components": 3, "conditional": False, "stochastic_layers": 1}


def cmd_gradcheck(args):
    rng = np.random.default_rng(args.seed)
    if args.run is not None:
        given = [_option(k, getattr(args, k)) for k in _FRESH if getattr(args, k) != _FRESH[k]]
        if given:
            raise ValueError(f"gradcheck RUN checks the run's own model; {given[0]} is for a "
                             "fresh model, without RUN")
        run, config, trained = _open_run(args)
        data = runs.load_splits(config, data_dir=args.data_dir)
        X, y = data.X_train[:args.samples], data.y_train
        y = y[:args.samples] if trained.needs_labels else None
        # The same parameters in float64, where central differences are exact enough.
        # DReG and STL estimate the bound's gradient without bias but are not it
        # (tests/models/test_gradient_estimators.py tests them so): the bound's is checked.
        estimator = getattr(trained, "gradient_estimator", "standard")
        model = clone(trained).set_params(dtype="float64", **({} if estimator == "standard" else
                                                              {"gradient_estimator": "standard"}))
        model.initialize(X.shape[1], **(trained.init_args() if trained.needs_labels else {}))
        model.parameters_.theta[...] = trained.parameters_.theta
        what = f"{run} at epoch {trained.n_iter_}: {runs.describe(trained)}, cast to float64, " \
               f"on its first {X.shape[0]} training rows" + ("" if estimator == "standard" else
                                                             ", the gradient of its bound")
    elif args.data_dir is not None:
        raise ValueError("--data-dir is for gradcheck RUN: a fresh model checks random rows")
    else:
        X = rng.random((args.samples, args.features))
        y = np.arange(args.samples) % 3 if args.conditional else None
        model = runs.new_model({**DEFAULTS, **recipes.FILE_RECIPE, "dtype": "float64",
                                **{k: getattr(args, k) for k in _FRESH}})
        model.initialize(X.shape[1], **({} if y is None else {"classes": np.unique(y)}))
        what = f"a fresh {runs.describe(model).split(' ', 1)[1]}, float64, on " \
               f"{X.shape[0]} random rows"
    print(f"checking {what}")
    report = check_model(model, X, random_state=rng, y=y, threshold=args.threshold)
    print(report)
    return 0 if report.passed else 1


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

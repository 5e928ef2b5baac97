"""Run folders of the ``npvae`` command: creating one, training into it
epoch by epoch, resuming it, and Ctrl-C.

A run folder holds::

    config.json     data set, seed, epochs and hyper-parameters of the run
    metrics.csv     one row per epoch: train_loss, train_recon, train_kl (means
                    over the epoch's mini-batches; train_loss is the objective
                    minimised, with beta and the KL warm-up) and val_loss,
                    val_recon, val_kl (the validation split with beta = 1 and
                    fixed noise: val_loss is the negative ELBO), all in nats
    checkpoints/    the checkpoint of the last whole epoch (npvae.app.checkpoints)
    figures/        PNG figures (npvae.app.figures)
    .npvae.lock     locked while a process trains into the folder (npvae.app.locks)
    .figures-epoch  the epoch whose figures are complete in figures/

A process that creates, replaces (``--force``) or resumes a run holds its
lock, so two processes never write one run folder: the second stops with
one line naming the folder. ``--force``
replaces only a folder npvae created (a valid config.json and nothing
but npvae's own files), never the working folder or one of its parents.

A checkpoint is written after every epoch (with Ctrl-C held back until
it is complete), so Ctrl-C loses at most the epoch under way: a partial
epoch cannot be resumed bit for bit, so it is dropped, and
``npvae train --resume RUN`` continues from the last whole one.  A
resume of a finished run completes what a crash left out (metrics.csv,
the figures), and a run stopped before its first checkpoint starts anew
from its config.json; a folder killed before its config.json was written
holds only npvae's lock, and ``--force`` replaces it like an empty one.
Temporary files of npvae's atomic writes left by a killed process are
removed whenever the folder is next locked.

The checkpoint is the model that trained: a config.json edited to say
otherwise (another latent_dim, model, seed, ...) is refused, naming the field,
by every command that opens the run, rather than silently overruled.
"""
import collections
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import __version__
from . import figures
from .checkpoints import epoch_checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from .datasets import DATASETS, binarize, load_dataset, train_val_split
from .locks import hold_lock
from ..models import VAE, ConditionalVAE, IWAE, TwoLayerIWAE, TwoLayerVAE
from ..models.saving import atomic_write

__all__ = ["VAL_FRACTION", "MODEL_KEYS", "UNLABELLED", "Splits", "read_config", "check_checkpoint",
           "default_run_dir", "check_out", "lock", "load_splits", "labels_for", "model_params",
           "new_model", "unlabelled", "describe", "create", "resume", "ctrl_c_deferred",
           "subfolder", "OPTIONAL_DEFAULTS"]

VAL_FRACTION = 0.1
#: The named data sets without labels (no --conditional for them).
UNLABELLED = ("binarized-mnist", "frey-face")
MODEL_KEYS = ("latent_dim", "hidden_dims", "activation", "likelihood", "beta",
              "kl_warmup", "batch_size", "learning_rate", "dtype")
METRIC_KEYS = ("epoch", "train_loss", "train_recon", "train_kl", "val_loss", "val_recon", "val_kl")
LOCK_NAME = ".npvae.lock"
FIGURES_DONE = ".figures-epoch"
#: What npvae writes in a run folder, by sub-folder ("" is the folder itself).
_OWN_FILES = {"": re.compile(r"config\.json|metrics\.csv|" + re.escape(LOCK_NAME) + "|"
                             + re.escape(FIGURES_DONE)),
              "checkpoints": re.compile(r"epoch-\d+\.(json|npz)"),
              "figures": re.compile(r"[\w.-]+\.png")}
#: The temporary files of npvae.models.saving.atomic_write (mkstemp's 8 random characters).
_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


# ---------------------------------------------------------------- files
def _write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def _metrics_text(metrics):
    # Numbers only, so no quoting: a header, then a row an epoch, floats as repr writes them.
    rows = [METRIC_KEYS, *([str(m["epoch"]), *(repr(m[k]) for k in METRIC_KEYS[1:])]
                           for m in metrics)]
    return "".join(",".join(row) + "\n" for row in rows).encode()


def _is_int(v, low):
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


#: config.json's keys beside the model's hyper-parameters, which the
#: estimator checks itself: (required, test, what the value must be).
_CONFIG_SCHEMA = {
    "dataset": (True, lambda v: isinstance(v, str) and v != "", "a data set name or a file path"),
    "seed": (True, lambda v: _is_int(v, 0), "an integer >= 0"),
    "epochs": (True, lambda v: _is_int(v, 0), "an integer >= 0"),
    # Checked here too, as a two-layer model's z1 is twice it: "50" would make "5050".
    "latent_dim": (False, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "hidden_dims": (True, lambda v: isinstance(v, list) and all(_is_int(w, 1) for w in v),
                    "a list of integers >= 1"),
    "binarize": (False, lambda v: isinstance(v, bool), "true or false"),
    "data_dir": (False, lambda v: v is None or isinstance(v, str), "a path or null"),
    "n_features": (False, lambda v: _is_int(v, 1), "an integer >= 1"),
    "image_shape": (False, lambda v: v is None or (isinstance(v, list) and len(v) == 2 and
                                                   all(_is_int(w, 1) for w in v)),
                    "null or [height, width]"),
    "model": (False, lambda v: v in ("vae", "iwae"), "'vae' or 'iwae'"),
    "conditional": (False, lambda v: isinstance(v, bool), "true or false"),
    "stochastic_layers": (False, lambda v: _is_int(v, 1) and v <= 2, "1 or 2"),
}


def read_config(run):
    """``(run folder, its config dict)`` for a run folder or a checkpoint
    file inside one."""
    run = Path(run)
    if run.is_file() and run.parent.name == "checkpoints":
        run = run.parent.parent
    path = run / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not an npvae run folder (no config.json)")
    try:
        config = json.loads(path.read_text(encoding="utf-8-sig"))  # UTF-8, with or without a BOM
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not an npvae run config (a JSON object expected)")
    missing = [k for k, (required, _, _) in _CONFIG_SCHEMA.items() if required] + [
        k for k in (*MODEL_KEYS, *(("k",) if config.get("model") == "iwae" else ()))]
    missing = [k for k in dict.fromkeys(missing) if k not in config]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    for key, (_, test, what) in _CONFIG_SCHEMA.items():
        if key in config and not test(config[key]):
            raise ValueError(f"{path}: {key!r} must be {what}, got {config[key]!r}")
    try:                            # the model's hyper-parameters, by the model
        new_model(config).check_params()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None
    return run, config


def check_checkpoint(run, config, model):
    """``model``, loaded from run folder ``run``, or a ValueError naming the
    first field of its ``config`` that builds another model than the
    checkpoint holds (the checkpoint is what trained).  Not compared: a field
    config.json leaves out or its model lacks, ``epochs`` (the run's goal, which a resume
    writes before its next checkpoint), a VAE's ``k``, and ``seed`` when the checkpoint's
    ``random_state`` is no integer (None, a Generator, a sequence): config.json cannot hold it."""
    def said(m):
        """``m``'s kind (first: it sets what the rest build), then its
        hyper-parameters as config.json says them: by value
        (``architecture()``: ``hidden_dims`` 8 is (8,), the same network)
        and through JSON, so that a tuple prints as config.json's list."""
        p = json.loads(json.dumps(m.get_params() | m.architecture()))
        if m.stochastic_layers == 2:    # config.json says z2's width and the widths below z1
            p.update(latent_dim=p.pop("latent_dims")[1], hidden_dims=p["hidden_dims"][0])
        return {"stochastic_layers": m.stochastic_layers, "conditional": m.needs_labels,
                "model": "iwae" if m.importance_weighted else "vae"} | p
    built, held = said(new_model(config)), said(model)
    # new_model reads k for an IWAE only (npvae train writes one for a VAE too).
    unsaid = {"epochs", *[k for k in ("k",) if held["model"] == "vae"],
              *[k for k in ("seed",) if not isinstance(model.random_state, int)]}
    for key, value in held.items():
        field = "seed" if key == "random_state" else key
        if field in config and field not in unsaid and key in built and built[key] != value:
            raise ValueError(f"{run / 'config.json'}: {field} {config[field]!r} contradicts the "
                             f"run's checkpoint, trained with {key} {value!r}: fix config.json")
    return model


def _entries(run):
    """``(entry, pattern, name)`` for each entry of a run folder and of its
    sub-folders: the pattern of npvae's names there, and the entry's name or,
    for a temporary file of an atomic write, the name it will have.  A
    sub-folder that is not a real folder is an entry itself, with no pattern."""
    for sub, pattern in _OWN_FILES.items():
        folder = run / sub
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            yield folder, None, folder.name
        elif folder.is_dir():
            for entry in folder.iterdir():
                if sub or entry.name not in _OWN_FILES:  # a sub-folder comes in its turn
                    temp = _TEMP_FILE.fullmatch(entry.name)
                    yield entry, pattern, temp["name"] if temp else entry.name


def _remove_temp_files(run):
    """Remove the temporary files a killed write of npvae left in a run
    folder (only while holding its lock: a live writer's are in use)."""
    for entry, pattern, name in _entries(run):
        if pattern and name != entry.name and pattern.fullmatch(name) and entry.is_file():
            entry.unlink()


def lock(run):
    """Hold the lock of run folder ``run`` (a context manager), or raise a
    ValueError naming it if another process holds it."""
    def busy():
        raise ValueError(f"{run} is in use by another npvae process (it holds {path}); "
                         "wait for it to finish, or choose another --out")
    return hold_lock(path := Path(run) / LOCK_NAME, busy)


def default_run_dir(dataset):
    """``runs/<dataset>-vae``, numbered ``-2``, ``-3``, ... if taken (the
    first name free now: :func:`create` takes the next if it is gone)."""
    stem = dataset if dataset in DATASETS else Path(dataset).stem
    base = Path("runs") / f"{stem}-vae"
    numbered = (base.with_name(f"{base.name}-{n}") for n in itertools.count(2))
    return next(out for out in itertools.chain([base], numbered) if not out.exists())


def check_out(out, force):
    """Refuse to touch an existing ``out`` unless ``force``, and even then
    anything but an empty folder or a run folder npvae wrote, or the working
    folder or one of its parents; the message says what would work."""
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder; choose another --out")
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise ValueError(f"{out} is the working folder or one of its parents; npvae never "
                         "replaces it, even with --force: choose another --out")
    # Empty, or left by a kill before its config.json: the lock, a temporary file.
    if all(e.name == LOCK_NAME or _TEMP_FILE.fullmatch(e.name) for e in out.iterdir()):
        if not force:
            raise ValueError(f"{out} already exists (empty); pass --force to train into it")
        return
    try:
        read_config(out)
    except (ValueError, OSError):
        why = "no config.json of npvae's"
    else:
        # The entries npvae did not write there.
        foreign = [entry for entry, pattern, name in _entries(out) if pattern is None
                   or entry.is_symlink() or not entry.is_file() or not pattern.fullmatch(name)]
        why = f"{foreign[0]} is not npvae's" if foreign else None
    if why:
        raise ValueError(f"{out} exists and is not an npvae run folder ({why}); refusing "
                         f"to replace it{' even with --force' if force else ''}: choose "
                         "another --out")
    if not force:
        raise ValueError(f"{out} already exists; pass --force to replace it, or "
                         f"--resume {out} to continue it")


@contextlib.contextmanager
def _new_folder(out, dataset, force):
    """Create the run folder ``out`` (None: the default, numbered) and hold
    its lock; with ``force``, empty an existing one first (under the lock)."""
    named = out is not None
    while True:
        out = out if named else default_run_dir(dataset)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            out.mkdir()  # atomic: of two processes, one creates it
            created = True
        except FileExistsError:
            if not named:
                continue    # taken since default_run_dir looked: the next free name
            check_out(out, force)  # another process may have made it since
            created = False
        break
    with lock(out):
        if not created:
            check_out(out, force)  # what is there now that no one else writes
            for entry in out.iterdir():
                if entry.name != LOCK_NAME:
                    (shutil.rmtree if entry.is_dir() else os.unlink)(entry)
        yield out


# ---------------------------------------------------------------- data
#: A run's data: each split's rows and labels (None when the data set has
#: none) and the image shape (or None).
Splits = collections.namedtuple("Splits", "X_train y_train X_val y_val X_test y_test image_shape")


def load_splits(config, data_dir=None, download=False):
    """The :class:`Splits` of a run, as its config says.  The data set
    itself is not kept: the training split is a copy, and holding both
    would cost a second copy of the training images.  A conditional run
    on data without labels is a ValueError."""
    data = load_dataset(config["dataset"], data_dir=data_dir or config.get("data_dir"),
                        download=download)
    if config.get("conditional") and (data.y_train is None or data.y_test is None):
        raise unlabelled(config["dataset"])
    # Independent seeds of the validation split and the fixed binarisation of
    # held-out data, both derived from the run's seed.
    split_seed, val_bits, test_bits = np.random.SeedSequence(config["seed"]).spawn(3)
    # The same permutation with or without labels, so a run's split never depends on them.
    X_tr, X_val, y_tr, y_val = train_val_split(data.X_train, data.y_train, VAL_FRACTION, split_seed)
    if config.get("conditional"):   # a class never trained on cannot be scored or drawn
        for split, y in (("validation", y_val), ("test", data.y_test)):
            if unseen := np.setdiff1d(y, y_tr).tolist():
                raise ValueError(f"--conditional: the label {unseen[0]!r} is in the {split} "
                                 "split but not in the training split, so it cannot be trained on")
    X_test = data.X_test
    if config.get("binarize"):
        X_val, X_test = binarize(X_val, val_bits), binarize(X_test, test_bits)
    return Splits(X_tr, y_tr, X_val, y_val, X_test, data.y_test, data.image_shape)


def unlabelled(dataset):
    """The error of a conditional run on ``dataset``, which has no labels."""
    return ValueError(f"--conditional needs a data set with labels, and {dataset} has none "
                      "(digits, mnist, fashion-mnist and .npz files holding y have them)")


def labels_for(model, y):
    """The label arguments of ``model``'s verbs: ``(y,)`` for a model that
    needs labels (``model.needs_labels``), else ``()``."""
    return (y,) if model.needs_labels else ()


#: Hyper-parameters a config may lack (it trained with these defaults),
#: and ``npvae train``'s defaults for them.
OPTIONAL_DEFAULTS = {"obs_var": None, "prior": "standard_normal", "n_components": 10,
                  "gradient_estimator": "standard"}


def model_params(config):
    """The VAE's constructor arguments for a run's config."""
    return {**{k: config[k] for k in MODEL_KEYS},
            **{k: config.get(k, v) for k, v in OPTIONAL_DEFAULTS.items()},
            "hidden_dims": tuple(config["hidden_dims"]), "epochs": config["epochs"],
            "random_state": config["seed"]}


def new_model(config):
    """A new, unfitted estimator for a run's config: a VAE, a
    ConditionalVAE (``config["conditional"]``) or an IWAE with
    ``config["k"]`` importance samples; with ``config["stochastic_layers"]``
    2, their two-layer kind."""
    iwae = config.get("model", "vae") == "iwae"
    params = {**model_params(config), **({"k": config["k"]} if iwae else {})}
    if iwae and config.get("conditional"):
        raise ValueError("--conditional is a conditional VAE; it has no --model iwae")
    if config.get("stochastic_layers", 1) != 2:
        return (IWAE if iwae else ConditionalVAE if config.get("conditional") else VAE)(**params)
    # Burda et al.'s two layers of codes scaled to the config: z2 is latent_dim wide and
    # z1 twice that; below z1 the hidden_dims, below z2 each halved (their 50/100 and
    # 100-100/50-50 from --latent-dim 50 --hidden 100,100).
    other = [f"--{k.replace('_', '-')}{'' if v is False else f' {config[k]}'}" for k, v in (
        ("beta", 1.0), ("kl_warmup", 0.0), ("prior", "standard_normal"), ("conditional", False))
        if config.get(k, v) != v or isinstance(config.get(k, v), bool) != isinstance(v, bool)]
    if other:
        raise ValueError(f"--stochastic-layers 2 trains the bound itself, with p(z2) = N(0, I) "
                         f"and no labels: it takes no {', '.join(other)}")
    for key in ("latent_dim", "hidden_dims", "beta", "kl_warmup", "prior", "n_components"):
        del params[key]
    z2, hidden = config["latent_dim"], tuple(config["hidden_dims"])
    return (TwoLayerIWAE if iwae else TwoLayerVAE)(
        (2 * z2, z2), hidden_dims=(hidden, tuple(max(1, w // 2) for w in hidden)), **params)


#: How :func:`describe` names the options that are not the default (with
#: the model's hyper-parameters filled in).
_PHRASES = {"mixture": "a {n_components}-component mixture prior", "dreg": "DReG encoder gradients",
            "stl": "STL encoder gradients", "gaussian": "a Gaussian likelihood",
            "continuous_bernoulli": "a continuous Bernoulli likelihood"}


def describe(model):
    """What a built model is, as a run prints it: "an IWAE (k=5) 64-128-2",
    "a conditional VAE (10 classes) 784-400-20 with a 10-component mixture
    prior and a continuous Bernoulli likelihood", ..."""
    name = type(model).__name__
    kind = name.replace("TwoLayer", "two-layer ").replace("Conditional", "conditional ")
    kind += f" (k={model.k})" if model.importance_weighted else ""
    kind += f" ({len(getattr(model, 'classes_', ()))} classes)" if model.needs_labels else ""
    # A two-layer model's hidden widths come in one sequence per layer of codes.
    stacks = zip(model.hidden_dims, model.latent_dims) if model.stochastic_layers == 2 else \
        [(model.hidden_dims, model.latent_dim)]
    widths = (model.n_features_in_, *(w for hidden, z in stacks for w in (*hidden, z)))
    options = (getattr(model, k, None) for k in ("prior", "gradient_estimator", "likelihood"))
    extras = [_PHRASES[v].format(**model.get_params()) for v in options if v in _PHRASES]
    text = f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind} {'-'.join(map(str, widths))}"
    return text + (" with " + " and ".join(extras) if extras else "")


def _untrained_model(config, data):
    """``new_model(config)`` with fresh parameters for ``data``'s training split."""
    model = new_model(config)
    classes = {"classes": np.unique(data.y_train)} if model.needs_labels else {}
    return model.initialize(data.X_train.shape[1], data.X_train, **classes)


# ---------------------------------------------------------------- train
def create(config, out=None, force=False, download=False):
    """Train a new run into ``out`` (None: ``runs/<dataset>-vae``, numbered)
    as ``config`` says; return the exit status."""
    if out is not None:
        check_out(out, force)
    # Everything that can fail on bad input happens before the disk is touched.
    data = load_splits(config, download=download)
    config.update(n_features=int(data.X_train.shape[1]), npvae_version=__version__,
                  image_shape=list(data.image_shape) if data.image_shape else None)
    model = _untrained_model(config, data)
    with _new_folder(out, config["dataset"], force) as out:
        return _train_from_epoch_0(model, out, config, data)


def _train_from_epoch_0(model, out, config, data):
    _write_json(out / "config.json", config)   # first: a folder without it is bare
    (out / "checkpoints").mkdir(exist_ok=True)
    print(f"training {describe(model)} on {config['dataset']} ({data.X_train.shape[0]} train, "
          f"{data.X_val.shape[0]} validation examples) for {config['epochs']} epochs into {out}",
          flush=True)
    _checkpoint(model, out, [])
    return _train_epochs(model, out, config, data, [])


def resume(run, epochs=None, data_dir=None):
    """Continue the run in folder ``run`` to ``epochs`` in all (default: its
    config's), or complete a finished run's metrics.csv and figures; return
    the exit status."""
    run, config = read_config(run)
    with lock(run):
        _remove_temp_files(run)
        config["epochs"] = config["epochs"] if epochs is None else epochs
        if not _checkpoints(run):
            # Killed before its first checkpoint: its config.json is whole,
            # and a new start from it is the run it would have been.
            data = load_splits(config, data_dir=data_dir)
            model = _untrained_model(config, data)
            print(f"{run} has no checkpoint (it was stopped before its first): "
                  "starting it from epoch 0", flush=True)
            return _train_from_epoch_0(model, run, config, data)
        model, extra = load_checkpoint(run, return_extra=True, require_optimizer=True)
        check_checkpoint(run, config, model)
        if not model.has_prior:
            raise ValueError(f"{run} holds an {type(model).__name__}, not a VAE: only VAEs resume")
        metrics = list(extra.get("metrics", []))
        if epochs is not None and epochs < model.n_iter_:
            raise ValueError(f"--epochs is the new total, and {run} has already trained "
                             f"{model.n_iter_} epochs; it cannot train fewer")
        if model.n_iter_ >= config["epochs"]:
            return _complete_trained_run(model, run, config, metrics, data_dir)
        if len(metrics) != model.n_iter_:   # its next checkpoint would lack theirs: refused
            raise ValueError(f"{run}'s checkpoint holds no metrics of its {model.n_iter_} epochs "
                             "(model.save writes none): train --resume cannot continue it")
        data = load_splits(config, data_dir=data_dir)
        model.set_params(epochs=config["epochs"])
        _write_json(run / "config.json", config)
        print(f"resuming {run} at epoch {model.n_iter_} of {config['epochs']}", flush=True)
        return _train_epochs(model, run, config, data, metrics)


def _complete_trained_run(model, run, config, metrics, data_dir):
    """Finish a trained run that a crash left incomplete: older checkpoints
    not yet dropped, metrics.csv behind the checkpoint, figures not drawn."""
    _remove_checkpoints_but(run, latest_checkpoint(run))
    # What the files would hold had the run not crashed.
    due = {"metrics.csv": (run / "metrics.csv", _metrics_text(metrics)),
           "figures": (run / FIGURES_DONE, str(model.n_iter_).encode())}
    missing = [what for what, (path, data) in due.items()
               if not (path.is_file() and path.read_bytes() == data)]
    if not missing:
        print(f"{run} has already trained {model.n_iter_} epochs; pass --epochs N "
              f"with N > {model.n_iter_} to train more")
        return 0
    print(f"{run} has trained its {model.n_iter_} epochs; completing its "
          f"{' and '.join(missing)}", flush=True)
    if "metrics.csv" in missing:
        atomic_write(run / "metrics.csv", lambda f: f.write(due["metrics.csv"][1]))
    return _draw_final_figures(model, run, config, load_splits(config, data_dir=data_dir),
                               metrics) if "figures" in missing else 0


@contextlib.contextmanager
def ctrl_c_deferred():
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


def subfolder(run, name):
    """``run/name``, or a ValueError if it is a symbolic link: npvae reads,
    writes and deletes only in real folders of a run."""
    folder = Path(run) / name
    if folder.is_symlink():
        raise ValueError(f"{folder} is a symbolic link; npvae reads and writes {name} only "
                         "in a real folder of the run")
    return folder


def _checkpoints(run):
    """The checkpoint files npvae wrote in ``run/checkpoints`` (an earlier
    npvae's ``.json`` + ``.npz`` pairs among them)."""
    return [p for p in subfolder(run, "checkpoints").glob("epoch-*")
            if _OWN_FILES["checkpoints"].fullmatch(p.name) and p.is_file() and not p.is_symlink()]


def _remove_checkpoints_but(run, keep):
    """Remove the run's checkpoints but ``keep`` (and its ``.json`` or
    ``.npz`` partner, if an earlier npvae wrote it as a pair)."""
    for old in _checkpoints(run):
        if old.stem != keep.stem:
            old.unlink()


def _checkpoint(model, run, metrics):
    """Save the model with its metrics, then drop older checkpoints (only
    after the new one is complete)."""
    path = save_checkpoint(model, epoch_checkpoint(run, model.n_iter_), extra={"metrics": metrics})
    _remove_checkpoints_but(run, path)
    atomic_write(run / "metrics.csv", lambda f: f.write(_metrics_text(metrics)))


def _train_epochs(model, run, config, data, metrics):
    X_tr, y_tr = data.X_train, labels_for(model, data.y_train)
    n_batches = -(-X_tr.shape[0] // min(model.batch_size, X_tr.shape[0]))
    start = time.perf_counter()
    try:
        while model.n_iter_ < config["epochs"]:
            epoch = model.n_iter_ + 1
            X_epoch = binarize(X_tr, model.rng_) if config.get("binarize") else X_tr
            with tqdm(total=n_batches, desc=f"epoch {epoch}/{config['epochs']}",
                      unit="batch", leave=False, file=sys.stderr, mininterval=0.2,
                      disable=None) as bar:
                def progress(i, n, loss):
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                # fit_epoch raises FloatingPointError if the loss stops being
                # finite; numpy's overflow warnings on the way add nothing.
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    model.fit_epoch(X_epoch, *y_tr, callback=progress)
            metrics = _save_epoch(model, run, metrics, data)
            m, width = metrics[-1], len(str(config["epochs"]))
            splits = "  ".join(f"{s} {m[s + '_loss']:.3f} (recon {m[s + '_recon']:.3f}, "
                               f"KL {m[s + '_kl']:.3f})" for s in ("train", "val"))
            print(f"epoch {epoch:>{width}}/{config['epochs']}  {splits}", flush=True)
    except KeyboardInterrupt:
        if not epoch_checkpoint(run, model.n_iter_).is_file():
            # Interrupted after an epoch ended but before its checkpoint was
            # complete: that state is whole, so save it.
            _save_epoch(model, run, metrics, data)
        # A partial epoch cannot be resumed bit for bit; the last whole one can.
        print(f"\nnpvae: interrupted; {run} is saved at epoch {model.n_iter_} "
              f"({latest_checkpoint(run)}). Continue with: npvae train --resume {run}",
              file=sys.stderr, flush=True)
        return 130
    print(f"trained {config['epochs']} epochs in {time.perf_counter() - start:.1f} s", flush=True)
    return _draw_final_figures(model, run, config, data, metrics)


def _draw_final_figures(model, run, config, data, metrics):
    """Draw a trained run's figures (of the test split of ``data``), then mark them done."""
    print("drawing figures", flush=True)
    try:
        paths = figures.draw_run_figures(model, subfolder(run, "figures"), config, data.X_test,
                                         data.y_test, metrics)
    except KeyboardInterrupt:
        print(f"\nnpvae: interrupted while drawing the figures; {run} is saved at epoch "
              f"{model.n_iter_}. Draw them with: npvae train --resume {run}",
              file=sys.stderr, flush=True)
        return 130
    atomic_write(run / FIGURES_DONE, lambda f: f.write(str(model.n_iter_).encode()))
    print(f"run folder {run}: config.json, metrics.csv, checkpoints/, figures/")
    for path in paths:
        print(f"  figure {path}")
    return 0


def _save_epoch(model, run, metrics, data):
    """Checkpoint the epoch just trained, with its row of metrics (unless a
    Ctrl-C came after it was added), Ctrl-C held back; return the metrics."""
    with ctrl_c_deferred():
        if len(metrics) < model.n_iter_:
            train = model.history_[-1]
            log_px, kl = model.elbo_terms(data.X_val, *labels_for(model, data.y_val),
                                          random_state=0)
            recon, kl = -float(np.mean(log_px)), float(np.mean(kl))
            metrics = metrics + [{"epoch": model.n_iter_, "train_loss": train["loss"],
                                  "train_recon": train["recon"], "train_kl": train["kl"],
                                  "val_loss": recon + kl, "val_recon": recon, "val_kl": kl}]
        _checkpoint(model, run, metrics)
    return metrics

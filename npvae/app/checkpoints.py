"""Checkpoints: a fitted model's whole training state on disk, without pickle.

A checkpoint is two files beside each other:

* ``<stem>.npz`` holds only numeric arrays: the parameters
  (``param/<name>``, the learned Gaussian ``obs_logvar`` among them) and
  Adam's moments (``adam_m/<name>``, ``adam_v/<name>``), unless the model
  was saved with ``include_optimizer=False`` (a third of the size, for
  using the model rather than continuing its training);
* ``<stem>.json`` holds everything else: the format version, the class
  name, the hyper-parameters (``get_params()``), ``n_features_in_``,
  ``n_iter_``, Adam's step count and hyper-parameters (``null`` when
  saved without them), the state of the
  random generator ``rng_``, ``history_``, the name, shape and dtype of
  every array, the SHA-256 of the ``.npz``, ``extra`` (the CLI's
  per-epoch ``metrics``) and, for a model with ``init_args()`` (the
  conditional VAE's ``classes_``), what ``initialize`` needs beyond
  ``n_features``.

Both files are built in full, then renamed into place, the ``.npz`` first;
a save that fails (an error, a Ctrl-C) puts the previous ``.npz`` back, so
the previous checkpoint stays loadable.  Only a process killed between the
two renames leaves a ``.json`` whose SHA-256 no longer matches the
``.npz``; the previous ``.npz`` then survives as a hidden backup beside it
(:func:`npvae.app.files.backups`), and loading takes the arrays from the
backup the ``.json`` vouches for, with a warning, instead of mixing two
checkpoints.  (The ``npvae`` command saves every epoch under a new stem
and deletes the previous checkpoint only once the new one is complete.)

Loading rebuilds the model from its hyper-parameters and refuses metadata
that does not fit the format (naming the file and the key), any array
whose name, shape or dtype does not match the model, non-finite values,
object arrays and pickles, and an ``.npz`` that is not the one the
``.json`` describes.

This module knows the file format only; the estimator classes it can
rebuild are registered by :mod:`npvae.models` (:func:`register_estimators`).
"""
import hashlib
import io
import json
import math
import numbers
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .files import atomic_write_all, backups
from ..core.optimizers import Adam

__all__ = ["FORMAT_VERSION", "register_estimators", "save_checkpoint", "load_checkpoint",
           "latest_checkpoint", "vouched_backup"]

FORMAT_VERSION = 1
_FORMAT = "npvae-checkpoint"
_SUFFIXES = (".json", ".npz")
# Class name -> (class, the key under which its training loop steps all
# parameters as one vector with Adam).
_ESTIMATORS = {}
# Adam's step count is raised to the power of the betas as a float.
_MAX_STEPS = 2 ** 53


def register_estimators(classes, optimizer_key):
    """Let :func:`load_checkpoint` rebuild ``classes``, found by class name.

    Parameters
    ----------
    classes : iterable of estimator classes
        Built as ``cls(**hyper_parameters).initialize(n_features)``.
    optimizer_key : str
        The one key of their ``optimizer_`` state: the loaded Adam moments
        are put under it, as one vector of all parameters.
    """
    for cls in classes:
        _ESTIMATORS[cls.__name__] = (cls, optimizer_key)


def _paths(path):
    """The ``.json`` and ``.npz`` paths of a checkpoint: the suffixes are
    appended to the stem (``beta0.5`` -> ``beta0.5.json``), after dropping
    a ``.json`` or ``.npz`` the path ends with."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in _SUFFIXES else path
    if stem.name in ("", ".", ".."):
        raise ValueError(f"{str(path)!r} is not a checkpoint name")
    return stem.parent / f"{stem.name}.json", stem.parent / f"{stem.name}.npz"


def _json_param(name, value):
    if name == "random_state" and value is not None:
        # A seed is data (a NumPy integer or a sequence of ints as well as
        # an int); a Generator is not: what continues training is rng_'s state.
        seed = np.asarray(value) if isinstance(value, (numbers.Integral, list, tuple,
                                                       np.ndarray)) else None
        if seed is not None and seed.dtype.kind in "iu" and seed.ndim <= 1:
            return seed.tolist()
        return None
    # NumPy scalars and arrays (from a grid search, say) as Python values.
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_json_param(None, v) for v in value]
    return value


def save_checkpoint(model, path, extra=None, include_optimizer=True):
    """Write the training state of a fitted npvae estimator.

    Parameters
    ----------
    model : VAE or Autoencoder
        Fitted, or at least initialised.
    path : str or os.PathLike
        The checkpoint's stem; ``.npz`` and ``.json`` are appended (a
        trailing ``.npz`` or ``.json`` is dropped first).
    extra : dict, optional
        JSON-serialisable data stored with the checkpoint, returned by
        :func:`load_checkpoint`.  Its key ``metrics``, if given, holds one
        row per epoch trained: a dict with the int ``epoch`` (1, 2, ...)
        and finite numbers.
    include_optimizer : bool
        Store Adam's moments and step count, so that training continues
        bit for bit.  Without them the files hold what predicts (about a
        third of the size); the loaded model's Adam starts afresh, and
        :func:`load_checkpoint` with ``require_optimizer=True`` refuses it.

    Returns
    -------
    pathlib.Path
        The path of the ``.json`` file.

    Raises
    ------
    TypeError
        The model is not an initialised npvae estimator, or a
        hyper-parameter or ``extra`` cannot be stored as JSON.
    ValueError
        ``extra`` is not a dict, or its ``metrics`` are not one row per
        epoch trained.
    OSError
        The files cannot be written (naming the file); the previous
        checkpoint under this name is then left as it was.
    """
    name = type(model).__name__
    if name not in _ESTIMATORS or not hasattr(model, "params_"):
        raise TypeError(f"can only checkpoint an initialised npvae estimator "
                        f"({', '.join(sorted(_ESTIMATORS))}), got {name}")
    if not isinstance(include_optimizer, bool):
        raise TypeError(f"include_optimizer must be True or False, got {include_optimizer!r}")
    json_path, npz_path = _paths(path)
    opt = model.optimizer_
    # A trained model whose Adam never stepped was loaded without Adam's
    # state: there is none to store, and storing a fresh one would claim it.
    include_optimizer = include_optimizer and not (opt.t == 0 and model.n_iter_ > 0)
    arrays = {f"param/{k}": v for k, v in model.params_.items()}
    # Adam's moments are stored by parameter name whether the optimizer ran
    # on the model's one parameter vector or on the arrays one by one.
    key = _ESTIMATORS[name][1]
    for moment, state in (("m", opt.m), ("v", opt.v)) if include_optimizer else ():
        if key in state:
            state = model.parameters_.views(state[key])
        arrays.update({f"adam_{moment}/{k}": v for k, v in state.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    params = {k: _json_param(k, v) for k, v in model.get_params().items()}
    meta = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "class": name,
        "params": params,
        "n_features_in_": int(model.n_features_in_),
        "n_iter_": int(model.n_iter_),
        # The training loop may set a NumPy learning rate (from the model's).
        "optimizer": {"name": "Adam", "t": int(opt.t),
                      **{k: float(getattr(opt, k)) for k in ("learning_rate", "beta1",
                                                             "beta2", "eps")}}
                     if include_optimizer else None,
        "rng_state": model.rng_.bit_generator.state,
        "history_": model.history_,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in arrays.items()},
        "npz_sha256": hashlib.sha256(data).hexdigest(),
        "extra": extra if extra is not None else {},
    }
    if hasattr(model, "init_args"):
        # What initialize needs beyond n_features (a conditional VAE's classes).
        meta["init_args"] = model.init_args()
    # Checked as a load would, so that no checkpoint is saved that cannot load.
    _check_extra(json_path, meta["extra"], meta["n_iter_"])
    try:
        text = json.dumps(meta, indent=1, allow_nan=False)
    except (TypeError, ValueError) as e:
        bad = [f"hyper-parameter {k}={v!r}" for k, v in params.items() if not _is_json(v)]
        bad += [repr(k) for k, v in meta.items() if k != "params" and not _is_json(v)]
        raise TypeError(f"cannot save {json_path}: {bad[0] if bad else 'the metadata'} "
                        f"cannot be stored as JSON ({e})") from None
    atomic_write_all([(npz_path, lambda f: f.write(data)),
                      (json_path, lambda f: f.write(text.encode()))])
    return json_path


def _is_json(value):
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def latest_checkpoint(run_dir):
    """The newest checkpoint (``.json`` path) of a run folder: the one with
    the largest epoch among ``<run_dir>/checkpoints/epoch-*.json``."""
    run_dir = Path(run_dir)
    found = [p for p in (run_dir / "checkpoints").glob("epoch-*.json")
             if p.stem[len("epoch-"):].isdigit()]
    if not found:
        raise FileNotFoundError(f"{run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    return max(found, key=lambda p: int(p.stem[len("epoch-"):]))


def _fail(path, message):
    raise ValueError(f"checkpoint {path}: {message}")


def _find(path):
    """The ``.json`` and ``.npz`` paths that ``path`` names."""
    given = Path(path)
    if given.is_dir():
        json_path = _paths(given)[0] if given.name not in ("", "..") else None
        if json_path is not None and json_path.is_file():
            raise ValueError(
                f"{given} names both a run folder and the checkpoint {json_path}: "
                f"pass {json_path} for that checkpoint, or a checkpoint file in "
                f"{given / 'checkpoints'} for the run's")
        json_path = latest_checkpoint(given)
        return json_path, json_path.with_suffix(".npz")
    json_path, npz_path = _paths(given)
    if not json_path.is_file() and given.suffix not in ("", *_SUFFIXES):
        # Older npvae replaced a dotted part ("beta0.5" -> "beta0.json").
        legacy = given.with_suffix(".json")
        if legacy.is_file():
            raise FileNotFoundError(
                f"checkpoint file {json_path} does not exist; {legacy} may be the one "
                f"an older npvae saved as {given.name!r} (or another saved over it under "
                f"a name with the same prefix): load it by its own name")
    for p in (json_path, npz_path):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file {p} does not exist")
    return json_path, npz_path


def load_checkpoint(path, return_extra=False, require_optimizer=False):
    """Rebuild a model from a checkpoint, bit for bit.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint's ``.json`` or ``.npz`` file or stem, or a run folder
        (its latest checkpoint is loaded).
    return_extra : bool
        Also return the ``extra`` dict stored with the checkpoint.
    require_optimizer : bool
        Refuse a checkpoint saved without Adam's state
        (``include_optimizer=False``): continuing it would not be the run
        that was saved.

    Returns
    -------
    model : VAE or Autoencoder
        With parameters, Adam's state, ``rng_``, ``n_iter_`` and
        ``history_`` restored, ready to predict or to continue training
        (saved without Adam's state: with a fresh Adam).
    extra : dict
        Only with ``return_extra=True``.

    Raises
    ------
    FileNotFoundError
        No such checkpoint.
    ValueError
        ``path`` names both a run folder and a checkpoint; or Adam's state
        is required and was not saved; or the checkpoint is of another
        format version or class, has metadata
        that does not fit the format, does not match the architecture its
        hyper-parameters build, holds arrays of the wrong dtype, non-finite
        values, object arrays or pickles, or its ``.npz`` is not the one
        its ``.json`` describes.
    """
    json_path, npz_path = _find(path)
    try:
        meta = json.loads(json_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        _fail(json_path, f"not valid JSON ({e})")
    except RecursionError:
        _fail(json_path, "not valid JSON (nested too deeply)")
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        _fail(json_path, "not an npvae checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        _fail(json_path, f"format version {meta.get('format_version')!r}; this npvae "
                         f"reads version {FORMAT_VERSION}")
    _check_metadata(meta, json_path)
    opt = meta["optimizer"]
    if require_optimizer and (opt is None or (opt["t"] == 0 and meta["n_iter_"] > 0)):
        _fail(json_path, "saved without Adam's state (include_optimizer=False), so its "
                         "training cannot be continued as it ran; evaluate, sample or "
                         "interpolate it, or train a new run")
    model = _restore(meta, json_path, npz_path)
    if return_extra:
        return model, meta.get("extra", {})
    return model


# ------------------------------------------------------------ metadata schema
def _show(value):
    try:
        text = repr(value)
    except ValueError:          # an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _need(json_path, key, ok, expected, value):
    if not ok:
        _fail(json_path, f"{key!r} must be {expected}, got {_show(value)}")


def _is_int(value, low, high=math.inf):
    return (isinstance(value, int) and not isinstance(value, bool)
            and low <= value <= high)


def _is_finite(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_rows(json_path, key, rows, n_epochs):
    """Per-epoch rows (``history_``, ``extra.metrics``): one per epoch,
    ``epoch`` counting from 1, every other value a finite number."""
    _need(json_path, key, isinstance(rows, list) and len(rows) == n_epochs,
          f"a list of {n_epochs} rows (one per epoch trained, n_iter_)", rows)
    for i, row in enumerate(rows):
        where = f"{key}[{i}]"
        _need(json_path, where, isinstance(row, dict), "an object", row)
        _need(json_path, f"{where}.epoch", _is_int(row.get("epoch"), i + 1, i + 1),
              f"{i + 1}", row.get("epoch"))
        for k, v in row.items():
            _need(json_path, f"{where}.{k}", _is_finite(v), "a finite number", v)


def _check_metadata(meta, json_path):
    """Refuse metadata that does not fit the format, naming the key; the
    hyper-parameters' values are checked by the model they build."""
    keys = ("class", "params", "n_features_in_", "n_iter_", "optimizer", "rng_state",
            "history_", "arrays", "npz_sha256")
    missing = [k for k in keys if k not in meta]
    if missing:
        _fail(json_path, f"malformed metadata: missing {', '.join(map(repr, missing))}")
    cls = _ESTIMATORS.get(meta["class"], (None,))[0] if isinstance(meta["class"], str) else None
    if cls is None:
        _fail(json_path, f"unknown class {_show(meta['class'])}; expected one of "
                         f"{sorted(_ESTIMATORS)}")
    params = meta["params"]
    _need(json_path, "params", isinstance(params, dict), "an object", params)
    defaults = cls().get_params()
    expected = set(defaults)
    for key in getattr(cls, "_params_added_later", ()):
        params.setdefault(key, defaults[key])     # written before the key existed
    if set(params) != expected:
        missing, unknown = sorted(expected - set(params)), sorted(set(params) - expected)
        _fail(json_path, "malformed metadata: 'params' "
                         + (f"is missing {missing}" if missing else "")
                         + (" and " if missing and unknown else "")
                         + (f"has unknown {unknown}" if unknown else ""))
    _need(json_path, "n_features_in_", _is_int(meta["n_features_in_"], 1),
          "an integer >= 1", meta["n_features_in_"])
    n_iter = meta["n_iter_"]
    _need(json_path, "n_iter_", _is_int(n_iter, 0), "an integer >= 0", n_iter)
    opt = meta["optimizer"]
    if opt is not None:                       # None: saved without Adam's state
        _need(json_path, "optimizer", isinstance(opt, dict), "an object or null", opt)
        _need(json_path, "optimizer.name", opt.get("name") == "Adam", "'Adam'",
              opt.get("name"))
        _need(json_path, "optimizer.t", _is_int(opt.get("t"), 0, _MAX_STEPS),
              "an integer in [0, 2**53]", opt.get("t"))
        for k in ("learning_rate", "beta1", "beta2", "eps"):
            _need(json_path, f"optimizer.{k}", _is_finite(opt.get(k)), "a finite number",
                  opt.get(k))
    _need(json_path, "rng_state", isinstance(meta["rng_state"], dict),
          "a random generator's state (an object)", meta["rng_state"])
    _check_rows(json_path, "history_", meta["history_"], n_iter)
    arrays = meta["arrays"]
    _need(json_path, "arrays", isinstance(arrays, dict), "an object", arrays)
    for k, spec in arrays.items():
        ok = (isinstance(spec, dict) and isinstance(spec.get("dtype"), str)
              and isinstance(spec.get("shape"), list)
              and all(_is_int(d, 0) for d in spec["shape"]))
        _need(json_path, f"arrays.{k}", ok, "an object with a shape and a dtype", spec)
    digest = meta["npz_sha256"]
    _need(json_path, "npz_sha256",
          isinstance(digest, str) and re.fullmatch("[0-9a-f]{64}", digest) is not None,
          "a SHA-256 in hex", digest)
    _check_extra(json_path, meta.get("extra", {}), n_iter)
    _need(json_path, "init_args", isinstance(meta.get("init_args", {}), dict), "an object",
          meta.get("init_args"))


def _check_extra(json_path, extra, n_iter):
    _need(json_path, "extra", isinstance(extra, dict), "an object", extra)
    if "metrics" in extra:
        _check_rows(json_path, "extra.metrics", extra["metrics"], n_iter)


def _same_layout(value, template):
    """Whether ``value`` has the keys and value types of ``template`` (a
    random generator's state)."""
    if isinstance(template, dict):
        return (isinstance(value, dict) and value.keys() == template.keys()
                and all(_same_layout(value[k], template[k]) for k in template))
    if isinstance(template, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return type(value) is type(template)


# ------------------------------------------------------------ rebuilding
def _npz_size_range(arrays):
    """Bounds on the size of an uncompressed ``.npz`` holding ``arrays``
    (the ``.json``'s name -> shape and dtype): their bytes, plus at most
    1 kB of ``.npy`` header and zip records for each; empty for a dtype
    NumPy does not know."""
    try:
        payload = sum(math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize
                      for spec in arrays.values())
    except (TypeError, ValueError):
        return 1, 0
    return payload, payload + 1024 * (len(arrays) + 1)


def _matching_backup(npz_path, meta):
    """``(path, bytes)`` of the backup beside ``npz_path`` whose SHA-256 is
    the one ``meta`` gives, or None: the previous ``.npz`` that a save
    killed between its two renames left."""
    low, high = _npz_size_range(meta["arrays"])
    for backup in backups(npz_path):
        # Only a file the size of the arrays the .json lists can match it.
        if low <= backup.stat().st_size <= high:
            data = backup.read_bytes()
            if hashlib.sha256(data).hexdigest() == meta["npz_sha256"]:
                return backup, data
    return None


def _vouched_bytes(npz_path, json_path, meta):
    """The bytes of the ``.npz`` whose SHA-256 the ``.json`` gives: the file
    itself, or the previous one's backup that a save killed between its two
    renames left beside it."""
    data = npz_path.read_bytes()
    if hashlib.sha256(data).hexdigest() == meta["npz_sha256"]:
        return data
    found = _matching_backup(npz_path, meta)
    if found is None:
        _fail(npz_path, f"its SHA-256 does not match the one in {json_path.name}: the file "
                        "was changed or replaced")
    backup, data = found
    warnings.warn(f"checkpoint {npz_path} does not match {json_path.name} (a save may "
                  f"have been stopped between writing the two): loading the arrays "
                  f"{json_path.name} describes from the backup {backup.name}; save the "
                  f"model again to repair the pair", RuntimeWarning, stacklevel=4)
    return data


def vouched_backup(path):
    """The backup file that loading checkpoint ``path`` would take its
    arrays from, because a save killed between its two renames left a
    ``.npz`` the ``.json`` does not describe; None if there is none (or the
    checkpoint cannot be read).  Whoever sweeps temporary files keeps it."""
    try:
        json_path, npz_path = _paths(path)
        meta = json.loads(json_path.read_bytes())
        _check_metadata(meta, json_path)
        if hashlib.sha256(npz_path.read_bytes()).hexdigest() == meta["npz_sha256"]:
            return None
    except (OSError, ValueError, RecursionError):
        return None
    found = _matching_backup(npz_path, meta)
    return None if found is None else found[0]


def _restore(meta, json_path, npz_path):
    cls, key = _ESTIMATORS[meta["class"]]
    params = dict(meta["params"])
    if isinstance(params["hidden_dims"], list):
        params["hidden_dims"] = tuple(params["hidden_dims"])
    try:
        model = cls(**params).initialize(meta["n_features_in_"], **meta.get("init_args", {}))
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        given = ("'params', 'n_features_in_' and 'init_args'" if "init_args" in meta
                 else "'params' and 'n_features_in_'")
        _fail(json_path, f"{given} do not build a {cls.__name__}: {e}")

    data = _vouched_bytes(npz_path, json_path, meta)
    expected = {f"param/{k}": v for k, v in model.params_.items()}
    opt = meta["optimizer"]
    if opt is not None and opt["t"] > 0:
        expected.update({f"adam_{m}/{k}": v for m in "mv" for k, v in model.params_.items()})
    try:
        # The bytes whose hash was checked, not the file again: it may have
        # been replaced in between.
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {name: loaded[name] for name in loaded.files}
        else:
            arrays = None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
        # np.load refuses object arrays and pickles with a ValueError.
        _fail(npz_path, f"cannot be read safely ({e})")
    if arrays is None:
        _fail(npz_path, "not an .npz archive")
    if set(arrays) != set(expected):
        # Without the param/ and adam_m/ prefixes: one name per parameter.
        missing = sorted({n.split("/", 1)[-1] for n in set(expected) - set(arrays)})
        unknown = sorted({n.split("/", 1)[-1] for n in set(arrays) - set(expected)})
        _fail(npz_path, f"arrays do not match a {cls.__name__} with "
                        f"hidden_dims={params['hidden_dims']}, latent_dim="
                        f"{params['latent_dim']}: missing {missing}, unexpected {unknown}")
    for name, arr in arrays.items():
        ref = expected[name]
        if arr.dtype != ref.dtype:
            _fail(npz_path, f"array {name!r} is {arr.dtype}, the model's dtype is {ref.dtype}")
        if arr.shape != ref.shape:
            _fail(npz_path, f"array {name!r} has shape {arr.shape}, the architecture "
                            f"needs {ref.shape}")
        if not np.isfinite(arr).all():
            _fail(npz_path, f"array {name!r} has NaN or infinite values")
    described = {name: {"shape": list(arr.shape), "dtype": str(arr.dtype)}
                 for name, arr in arrays.items()}
    if meta["arrays"] != described:
        _fail(json_path, f"'arrays' does not describe the arrays of {npz_path.name}")

    # Copy into the live arrays: the layers hold references to them.
    for name, p in model.params_.items():
        p[...] = arrays[f"param/{name}"]
    if opt is not None:     # else the fresh Adam that initialize made stays
        try:
            adam = Adam(learning_rate=opt["learning_rate"], beta1=opt["beta1"],
                        beta2=opt["beta2"], eps=opt["eps"])
        except ValueError as e:
            _fail(json_path, f"'optimizer': {e}")
        adam.t = opt["t"]
        if adam.t > 0:
            adam.m, adam.v = ({key: np.concatenate([arrays[f"adam_{moment}/{k}"].ravel()
                                                    for k in model.params_])}
                              for moment in "mv")
        model.optimizer_ = adam
    state, generator = meta["rng_state"], model.rng_.bit_generator
    if state.get("bit_generator") != type(generator).__name__:
        _fail(json_path, f"random generator {_show(state.get('bit_generator'))} is not "
                         f"{type(generator).__name__}")
    if not _same_layout(state, generator.state):
        _fail(json_path, f"'rng_state' is not the state of a {type(generator).__name__}")
    try:
        generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        _fail(json_path, f"'rng_state' is not a valid {type(generator).__name__} state ({e})")
    if generator.state != state:
        _fail(json_path, f"'rng_state' is not a valid {type(generator).__name__} state "
                         "(values out of range)")
    model.n_iter_ = meta["n_iter_"]
    model.history_ = meta["history_"]
    return model

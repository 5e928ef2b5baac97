"""A fitted model's whole training state in one ``.npz`` file, without pickle.

The file holds only NumPy arrays, read back with ``allow_pickle=False``:

* ``param/<name>``: the parameters (the learned Gaussian ``obs_logvar``
  among them);
* ``adam_m/<name>``, ``adam_v/<name>``: Adam's moments, unless the model was
  saved with ``include_optimizer=False`` (a third of the size, for using
  the model rather than continuing its training);
* ``metadata``: a JSON text as ``uint8`` bytes: the format and its version,
  the class name, the hyper-parameters (``get_params()``),
  ``n_features_in_``, ``n_iter_``, Adam's step count and hyper-parameters
  (``null`` without them), the random generator's state, ``history_``,
  ``extra`` (the CLI's per-epoch ``metrics``), ``image_shape_`` when the
  model was fitted on a stack of images and, for a model with
  ``init_args()`` (the conditional VAE's ``classes_``), what ``initialize``
  needs beyond ``n_features``.

The file is written to a temporary file beside its target and renamed into
place, so a name holds either the previous checkpoint or the whole new one;
metadata and arrays are one file, so neither can change without the other.

Loading rebuilds the model from its hyper-parameters and refuses, naming
the file (and the key): a file that is not a readable ``.npz`` (truncated,
bad CRC, unknown compression, encrypted, a member that is not an array,
pickles), metadata that does not fit the format, arrays whose names, shapes
or dtypes do not match the model, and non-finite values.  The class is found
by its stored name among the class asked for and its subclasses, so this
module imports no estimator.

Checkpoints of the earlier format, a ``<stem>.json`` beside a ``<stem>.npz``
of arrays only (with the ``.npz``'s SHA-256 in the ``.json``), still load.
"""
import contextlib
import hashlib
import io
import json
import math
import numbers
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..core.optimizers import Adam
from .hyperparameters import by_value

__all__ = ["FIGURE_SOFTWARE", "FLAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint",
           "latest_checkpoint", "atomic_write", "written_by_npvae"]

# The optimizer's one key: all parameters as one vector (npvae.core.parameters).
FLAT = "parameters"
FORMAT_VERSION = 2
_FORMAT = "npvae-checkpoint"
_PAIR_VERSION = 1          # the .json + .npz pair
_METADATA = "metadata"
#: The ``Software`` text of npvae's figures (their PNG metadata), by which it knows them.
FIGURE_SOFTWARE = "npvae"
# Adam's step count is raised to the power of the betas as a float.
_MAX_STEPS = 2 ** 53


# ------------------------------------------------------------ atomic writes
def _naming(err, path):
    """``err`` as an OSError of the same kind naming ``path``: a full disk
    names no file, a failed rename the temporary one."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or str(err), str(path))


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path`` (opened for
    binary writing, named ``.<name>.<8 characters>.tmp``), flush it to disk
    and rename it to ``path``; return ``path``.  ``path`` is always either
    its old content or the whole new one; on any error the temporary file
    is removed and the error names ``path``."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _naming(err, path) from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it a plain open's permissions.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename in (None, tmp):
            raise _naming(err, path) from err
        raise
    return path


# ------------------------------------------------------------ saving
def _checkpoint_path(path, suffix=".npz"):
    """``path`` with ``suffix``, appended to the stem (``beta0.5`` ->
    ``beta0.5.npz``) after dropping a ``.json`` or ``.npz`` it ends with."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".npz") else path
    if stem.name in ("", ".", ".."):
        raise ValueError(f"{str(path)!r} is not a checkpoint name")
    return stem.parent / f"{stem.name}{suffix}"


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


def _is_json(value):
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def save_checkpoint(model, path, extra=None, include_optimizer=True):
    """Write the training state of an initialised npvae estimator to one file.

    Parameters
    ----------
    model : BaseAutoencoder
        Fitted, or at least initialised.
    path : str or os.PathLike
        The file, ``.npz`` appended unless it ends with it (a trailing
        ``.json`` is dropped first).
    extra : dict, optional
        JSON-serialisable data stored with the checkpoint, returned by
        :func:`load_checkpoint`.  Its key ``metrics``, if given, holds one
        row per epoch trained: a dict with the int ``epoch`` (1, 2, ...)
        and finite numbers.
    include_optimizer : bool
        Store Adam's moments and step count, so that training continues
        bit for bit.  Without them the file holds what predicts (about a
        third of the size); the loaded model's Adam starts afresh.

    Returns
    -------
    pathlib.Path
        The path of the ``.npz`` file.

    Raises
    ------
    TypeError
        The model is not initialised, or a hyper-parameter or ``extra``
        cannot be stored as JSON.
    ValueError
        ``extra`` is not a dict, or its ``metrics`` are not one row per
        epoch trained.
    OSError
        The file cannot be written (naming it); the previous checkpoint
        under this name is then left as it was.
    """
    if not hasattr(model, "params_"):
        raise TypeError(f"can only checkpoint an initialised npvae estimator, got "
                        f"{type(model).__name__}")
    model.check_fitted()    # its hyper-parameters still those that built its arrays
    model.check_params()    # and valid, as a load checks them
    if not isinstance(include_optimizer, bool):
        raise TypeError(f"include_optimizer must be True or False, got {include_optimizer!r}")
    path = _checkpoint_path(path)
    if os.path.lexists(path) and not written_by_npvae(path, "checkpoint"):
        raise FileExistsError(f"cannot save {path}: it exists and is not an npvae checkpoint, "
                              f"and npvae replaces only files it wrote; remove it or choose "
                              f"another path")
    opt = model.optimizer_
    # A trained model whose Adam never stepped was loaded without Adam's
    # state: there is none to store, and storing a fresh one would claim it.
    include_optimizer = include_optimizer and not (opt.t == 0 and model.n_iter_ > 0)
    arrays = {f"param/{k}": v for k, v in model.params_.items()}
    # Adam's moments are stored by parameter name whether the optimizer ran
    # on the model's one parameter vector or on the arrays one by one.
    for moment, state in (("m", opt.m), ("v", opt.v)) if include_optimizer else ():
        if FLAT in state:
            state = model.parameters_.views(state[FLAT])
        arrays.update({f"adam_{moment}/{k}": v for k, v in state.items()})
    params = {k: _json_param(k, v) for k, v in model.get_params().items()}
    meta = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
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
        "extra": extra if extra is not None else {},
    }
    if getattr(model, "image_shape_", None) is not None:
        meta["image_shape_"] = list(model.image_shape_)
    if hasattr(model, "init_args"):
        meta["init_args"] = model.init_args()
    # Checked as a load would, so that no checkpoint is saved that cannot load.
    _check_extra(path, meta["extra"], meta["n_iter_"])
    try:
        text = json.dumps(meta, indent=1, allow_nan=False)
    except (TypeError, ValueError) as e:
        bad = [f"hyper-parameter {k}={v!r}" for k, v in params.items() if not _is_json(v)]
        bad += [repr(k) for k, v in meta.items() if k != "params" and not _is_json(v)]
        raise TypeError(f"cannot save {path}: {bad[0] if bad else 'the metadata'} "
                        f"cannot be stored as JSON ({e})") from None
    arrays[_METADATA] = np.frombuffer(text.encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def written_by_npvae(path, kind):
    """Whether ``path`` is a file of ``kind`` npvae wrote, which it may replace with another:
    a ``"checkpoint"`` (an ``.npz`` of npvae's metadata or ``param/`` arrays) or a ``"figure"``
    (a PNG whose ``Software`` text is :data:`FIGURE_SOFTWARE`).  A symlink never is."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    if kind == "checkpoint":         # this format, or an earlier npvae's arrays
        names = _member_names(path)
        return f"{_METADATA}.npy" in names or any(n.startswith("param/") for n in names)
    with contextlib.suppress(OSError), open(path, "rb") as f:
        head = f.read(4096)          # matplotlib writes its text chunks before the pixels
        return head.startswith(b"\x89PNG") and b"Software\0" + FIGURE_SOFTWARE.encode() in head
    return False


# ------------------------------------------------------------ finding a checkpoint
def latest_checkpoint(run_dir):
    """The newest checkpoint of a run folder: the largest epoch among
    ``<run_dir>/checkpoints/epoch-<digits>.npz`` (or an earlier npvae's
    ``epoch-<digits>.json``)."""
    run_dir = Path(run_dir)
    found = [p for p in (run_dir / "checkpoints").glob("epoch-*")
             if p.suffix in (".npz", ".json") and p.stem[len("epoch-"):].isdigit()]
    if not found:
        raise FileNotFoundError(f"{run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    return max(found, key=lambda p: int(p.stem[len("epoch-"):]))


def _find(path):
    """The checkpoint file ``path`` names: its ``.npz``, or the ``.json`` of
    an earlier npvae's pair."""
    given = Path(path)
    if given.is_dir():
        if given.name not in ("", ".."):
            # A data file "xy.npz" beside its run folder "xy" is no checkpoint.
            for found in (_checkpoint_path(given), _checkpoint_path(given, ".json")):
                if _has_metadata(found) or (found.suffix == ".json" and found.is_file()):
                    raise ValueError(
                        f"{given} names both a run folder and the checkpoint {found}: pass "
                        f"that file for that checkpoint, or a checkpoint file in "
                        f"{given / 'checkpoints'} for the run's")
        given = latest_checkpoint(given)
    npz, pair = _checkpoint_path(given), _checkpoint_path(given, ".json")
    # A .json given, or one beside an .npz without metadata: the earlier pair.
    if pair.is_file() and (given.suffix == ".json" or not _has_metadata(npz)):
        return pair
    if npz.is_file():
        return npz
    if given.suffix not in ("", ".json", ".npz") and given.with_suffix(".npz").is_file():
        # An earlier npvae replaced a dotted part ("beta0.5" -> "beta0.npz").
        raise FileNotFoundError(
            f"checkpoint file {npz} does not exist; {given.with_suffix('.npz')} may be the "
            f"one an earlier npvae saved as {given.name!r} (or another saved over it under a "
            f"name with the same prefix): load it by its own name")
    raise FileNotFoundError(f"checkpoint file {npz} does not exist")


def _member_names(npz):
    """The names of the members of the zip archive ``npz``; none if it is no archive."""
    with contextlib.suppress(OSError, zipfile.BadZipFile), zipfile.ZipFile(npz) as z:
        return z.namelist()
    return []


def _has_metadata(npz):
    return f"{_METADATA}.npy" in _member_names(npz)


def _read_arrays(path, data):
    """The arrays of the ``.npz`` bytes ``data`` (from ``path``), refusing
    anything but a readable archive of plain arrays."""
    arrays = None
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {name: loaded[name] for name in loaded.files}
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError,
            RuntimeError, zlib.error) as e:
        # np.load refuses object arrays and pickles with a ValueError.
        _refuse(path, f"cannot be read safely ({type(e).__name__}: {e})")
    if arrays is None:
        _refuse(path, "not an .npz archive")
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            _refuse(path, f"member {name!r} is not an array")
    return arrays


def _read(path):
    """``(metadata, arrays)`` of the checkpoint file ``path``."""
    if path.suffix == ".json":
        return _read_pair(path)
    arrays = _read_arrays(path, path.read_bytes())
    text = arrays.pop(_METADATA, None)
    if text is None or text.dtype != np.uint8 or text.ndim != 1:
        _refuse(path, f"not an npvae checkpoint (no {_METADATA!r} bytes)")
    return _parse_json(path, text.tobytes()), arrays


def _read_pair(json_path):
    """``(metadata, arrays)`` of an earlier npvae's ``.json`` + ``.npz`` pair."""
    meta = _parse_json(json_path, json_path.read_bytes())
    npz = json_path.with_suffix(".npz")
    if not npz.is_file():
        raise FileNotFoundError(f"checkpoint file {npz} does not exist")
    data = npz.read_bytes()
    if isinstance(meta, dict) and meta.get("format_version") == _PAIR_VERSION:
        if hashlib.sha256(data).hexdigest() != meta.get("npz_sha256"):
            _refuse(npz, f"its SHA-256 does not match the one in {json_path.name}: the file "
                         "was changed or replaced")
        meta["format_version"] = FORMAT_VERSION      # otherwise the same metadata
    return meta, _read_arrays(npz, data)


def _parse_json(path, data):
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        _refuse(path, f"not valid JSON ({e})")
    except RecursionError:
        _refuse(path, "not valid JSON (nested too deeply)")
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        _refuse(path, "not an npvae checkpoint")
    if meta.get("format_version") not in (FORMAT_VERSION, _PAIR_VERSION):
        _refuse(path, f"format version {_short_repr(meta.get('format_version'))}; this npvae "
                      f"reads versions {_PAIR_VERSION} and {FORMAT_VERSION}")
    return meta


def _subclasses(cls):
    """``cls`` and all its subclasses, by name."""
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_subclasses(sub))
    return found


def load_checkpoint(path, base, return_extra=False, require_optimizer=False):
    """Rebuild a model from a checkpoint, bit for bit.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file or its name without ``.npz``, an earlier npvae's
        ``.json`` (with its ``.npz`` beside it), or a run folder (its latest
        checkpoint is loaded).
    base : type
        The stored class must be ``base`` or one of its subclasses (else a
        TypeError).
    return_extra : bool
        Also return the ``extra`` dict stored with the checkpoint.
    require_optimizer : bool
        Refuse a checkpoint saved without Adam's state: continuing it would
        not be the run that was saved.

    Returns
    -------
    model : base
        With parameters, Adam's state, ``rng_``, ``n_iter_`` and
        ``history_`` restored (saved without Adam's state: a fresh Adam).
    extra : dict
        Only with ``return_extra=True``.

    Raises
    ------
    FileNotFoundError
        No such checkpoint.
    ValueError
        The file cannot be read, does not fit the format or the model its
        hyper-parameters build, or Adam's state is required and absent;
        the message names the file (and the key).
    """
    path = _find(path)
    meta, arrays = _read(path)
    # Every class with this save/load, so that another one is named as such.
    root = next(c for c in reversed(base.__mro__) if "load" in vars(c))
    cls = _check_metadata(meta, path, _subclasses(root))
    if not issubclass(cls, base):
        raise TypeError(f"{path} holds a {cls.__name__}, not a {base.__name__}")
    opt = meta["optimizer"]
    if require_optimizer and (opt is None or (opt["t"] == 0 and meta["n_iter_"] > 0)):
        _refuse(path, "saved without Adam's state (include_optimizer=False), so its "
                      "training cannot be continued as it ran; evaluate, sample or "
                      "interpolate it, or train a new run")
    model = _restore(cls, meta, arrays, path)
    return (model, meta.get("extra", {})) if return_extra else model


# ------------------------------------------------------------ metadata schema
def _refuse(path, message):
    raise ValueError(f"checkpoint {path}: {message}")


def _short_repr(value):
    try:
        text = repr(value)
    except ValueError:          # an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _require(path, key, ok, expected, value):
    if not ok:
        _refuse(path, f"{key!r} must be {expected}, got {_short_repr(value)}")


def _is_int(value, low, high=math.inf):
    return (isinstance(value, int) and not isinstance(value, bool)
            and low <= value <= high)


def _is_finite(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_rows(path, key, rows, n_epochs):
    """Per-epoch rows (``history_``, ``extra.metrics``): one per epoch,
    ``epoch`` counting from 1, every other value a finite number."""
    _require(path, key, isinstance(rows, list) and len(rows) == n_epochs,
             f"a list of {n_epochs} rows (one per epoch trained, n_iter_)", rows)
    for i, row in enumerate(rows):
        where = f"{key}[{i}]"
        _require(path, where, isinstance(row, dict), "an object", row)
        _require(path, f"{where}.epoch", _is_int(row.get("epoch"), i + 1, i + 1),
                 f"{i + 1}", row.get("epoch"))
        for k, v in row.items():
            _require(path, f"{where}.{k}", _is_finite(v), "a finite number", v)


def _check_extra(path, extra, n_iter):
    _require(path, "extra", isinstance(extra, dict), "an object", extra)
    if "metrics" in extra:
        _check_rows(path, "extra.metrics", extra["metrics"], n_iter)


def _check_metadata(meta, path, classes):
    """Refuse metadata that does not fit the format, naming the key; return
    the class it names.  The hyper-parameters' values are checked by the
    model they build."""
    keys = ("class", "params", "n_features_in_", "n_iter_", "optimizer", "rng_state",
            "history_")
    missing = [k for k in keys if k not in meta]
    if missing:
        _refuse(path, f"malformed metadata: missing {', '.join(map(repr, missing))}")
    cls = classes.get(meta["class"]) if isinstance(meta["class"], str) else None
    if cls is None:
        _refuse(path, f"unknown class {_short_repr(meta['class'])}; expected one of "
                      f"{sorted(classes)}")
    params = meta["params"]
    _require(path, "params", isinstance(params, dict), "an object", params)
    defaults = cls().get_params()
    for key in getattr(cls, "params_added_later", ()):
        params.setdefault(key, defaults[key])     # written before the key existed
    if set(params) != set(defaults):
        missing, unknown = sorted(set(defaults) - set(params)), sorted(set(params) - set(defaults))
        _refuse(path, "malformed metadata: 'params' "
                      + (f"is missing {missing}" if missing else "")
                      + (" and " if missing and unknown else "")
                      + (f"has unknown {unknown}" if unknown else ""))
    _require(path, "n_features_in_", _is_int(meta["n_features_in_"], 1),
             "an integer >= 1", meta["n_features_in_"])
    n_iter = meta["n_iter_"]
    _require(path, "n_iter_", _is_int(n_iter, 0), "an integer >= 0", n_iter)
    opt = meta["optimizer"]
    if opt is not None:                       # None: saved without Adam's state
        _require(path, "optimizer", isinstance(opt, dict), "an object or null", opt)
        _require(path, "optimizer.name", opt.get("name") == "Adam", "'Adam'", opt.get("name"))
        _require(path, "optimizer.t", _is_int(opt.get("t"), 0, _MAX_STEPS),
                 "an integer in [0, 2**53]", opt.get("t"))
        for k in ("learning_rate", "beta1", "beta2", "eps"):
            _require(path, f"optimizer.{k}", _is_finite(opt.get(k)), "a finite number",
                     opt.get(k))
    _require(path, "rng_state", isinstance(meta["rng_state"], dict),
             "a random generator's state (an object)", meta["rng_state"])
    _check_rows(path, "history_", meta["history_"], n_iter)
    _check_extra(path, meta.get("extra", {}), n_iter)
    _require(path, "init_args", isinstance(meta.get("init_args", {}), dict), "an object",
             meta.get("init_args"))
    shape = meta.get("image_shape_")
    _require(path, "image_shape_", shape is None or (
        isinstance(shape, list) and len(shape) == 2 and all(_is_int(v, 1) for v in shape)
        and shape[0] * shape[1] == meta["n_features_in_"]),
        "[height, width] of the n_features_in_ features", shape)
    return cls


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
def _restore(cls, meta, arrays, path):
    params = dict(meta["params"])
    for key in ("hidden_dims", "latent_dims"):       # JSON has lists; the models take tuples
        if isinstance(params.get(key), list):
            params[key] = by_value(params[key])
    try:
        model = cls(**params).initialize(meta["n_features_in_"], **meta.get("init_args", {}))
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        given = ("'params', 'n_features_in_' and 'init_args'" if "init_args" in meta
                 else "'params' and 'n_features_in_'")
        _refuse(path, f"{given} do not build a {cls.__name__}: {e}")
    expected = {f"param/{k}": v for k, v in model.params_.items()}
    opt = meta["optimizer"]
    if opt is not None and opt["t"] > 0:
        expected.update({f"adam_{m}/{k}": v for m in "mv" for k, v in model.params_.items()})
    if set(arrays) != set(expected):
        # Without the param/ and adam_m/ prefixes: one name per parameter.
        missing = sorted({n.split("/", 1)[-1] for n in set(expected) - set(arrays)})
        unknown = sorted({n.split("/", 1)[-1] for n in set(arrays) - set(expected)})
        sizes = ", ".join(f"{k}={params[k]}" for k in ("hidden_dims", "latent_dim", "latent_dims")
                          if k in params)       # one layer of codes, or two
        _refuse(path, f"arrays do not match a {cls.__name__} with {sizes}: "
                      f"missing {missing}, unexpected {unknown}")
    for name, arr in arrays.items():
        ref = expected[name]
        if arr.dtype != ref.dtype:
            _refuse(path, f"array {name!r} is {arr.dtype}, the model's dtype is {ref.dtype}")
        if arr.shape != ref.shape:
            _refuse(path, f"array {name!r} has shape {arr.shape}, the architecture "
                          f"needs {ref.shape}")
        if not np.isfinite(arr).all():
            _refuse(path, f"array {name!r} has NaN or infinite values")

    # Copy into the live arrays: the layers hold references to them.
    for name, p in model.params_.items():
        p[...] = arrays[f"param/{name}"]
    if opt is not None:     # else the fresh Adam that initialize made stays
        try:
            adam = Adam(learning_rate=opt["learning_rate"], beta1=opt["beta1"],
                        beta2=opt["beta2"], eps=opt["eps"])
        except ValueError as e:
            _refuse(path, f"'optimizer': {e}")
        adam.t = opt["t"]
        if adam.t > 0:
            adam.m, adam.v = ({FLAT: np.concatenate([arrays[f"adam_{moment}/{k}"].ravel()
                                                     for k in model.params_])}
                              for moment in "mv")
        model.optimizer_ = adam
    state, generator = meta["rng_state"], model.rng_.bit_generator
    if state.get("bit_generator") != type(generator).__name__:
        _refuse(path, f"random generator {_short_repr(state.get('bit_generator'))} is not "
                      f"{type(generator).__name__}")
    if not _same_layout(state, generator.state):
        _refuse(path, f"'rng_state' is not the state of a {type(generator).__name__}")
    try:
        generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        _refuse(path, f"'rng_state' is not a valid {type(generator).__name__} state ({e})")
    if generator.state != state:
        _refuse(path, f"'rng_state' is not a valid {type(generator).__name__} state "
                      "(values out of range)")
    model.n_iter_ = meta["n_iter_"]
    model.history_ = meta["history_"]
    model.image_shape_ = tuple(meta["image_shape_"]) if meta.get("image_shape_") else None
    return model

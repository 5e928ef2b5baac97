"""Checkpoints: a fitted model's whole training state on disk, without pickle.

A checkpoint is two files beside each other:

* ``<stem>.npz`` holds only numeric arrays: the parameters
  (``param/<name>``, the learned Gaussian ``obs_logvar`` among them) and
  Adam's moments (``adam_m/<name>``, ``adam_v/<name>``);
* ``<stem>.json`` holds everything else: the format version, the class
  name, the hyper-parameters (``get_params()``), ``n_features_in_``,
  ``n_iter_``, Adam's step count and hyper-parameters, the state of the
  random generator ``rng_``, ``history_``, the name, shape and dtype of
  every array and the SHA-256 of the ``.npz``.

Each file is written to a temporary file and renamed into place, the
``.npz`` first.  The ``npvae`` command saves every epoch under a new stem
and deletes the previous checkpoint only once the new ``.json`` is in
place, so a run killed at any moment keeps a whole checkpoint.  Saving over
an existing stem that is killed between the two renames leaves a ``.json``
whose SHA-256 no longer matches the ``.npz``: loading then fails with that
message instead of mixing two checkpoints.
Loading rebuilds the model from its hyper-parameters and refuses any
array whose name, shape or dtype does not match it, non-finite values,
object arrays and pickles, and an ``.npz`` that is not the one the
``.json`` describes.
"""
import contextlib
import hashlib
import io
import json
import numbers
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .models import FLAT, VAE, Autoencoder
from .optimizers import Adam

__all__ = ["FORMAT_VERSION", "save_checkpoint", "load_checkpoint",
           "latest_checkpoint", "atomic_write"]

FORMAT_VERSION = 1
_FORMAT = "npvae-checkpoint"
_CLASSES = {cls.__name__: cls for cls in (VAE, Autoencoder)}
_SUFFIXES = (".json", ".npz")


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path`` opened for
    binary writing, then rename it to ``path``; return ``path``.

    The rename is atomic, so ``path`` is always either its old content or
    the complete new one; the temporary file is removed on any error.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the usual permissions.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        # A Ctrl-C can land just after the rename, when tmp is gone.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _stem(path):
    path = Path(path)
    return path.with_suffix("") if path.suffix in _SUFFIXES else path


def _json_param(name, value):
    if name == "random_state" and value is not None:
        # A seed is data (a NumPy integer or a sequence of ints as well as
        # an int); a Generator is not: what continues training is rng_'s state.
        seed = np.asarray(value) if isinstance(value, (numbers.Integral, list, tuple,
                                                       np.ndarray)) else None
        if seed is not None and seed.dtype.kind in "iu" and seed.ndim <= 1:
            return seed.tolist()
        return None
    if isinstance(value, tuple):
        return list(value)
    return value


def save_checkpoint(model, path, extra=None):
    """Write the training state of a fitted ``VAE`` or ``Autoencoder``.

    Parameters
    ----------
    model : VAE or Autoencoder
        Fitted, or at least initialised.
    path : str or os.PathLike
        The checkpoint's stem; ``.npz`` and ``.json`` are added (a given
        ``.npz``/``.json`` suffix is replaced).
    extra : dict, optional
        JSON-serialisable data stored with the checkpoint (the CLI keeps
        the per-epoch metrics there), returned by :func:`load_checkpoint`.

    Returns
    -------
    pathlib.Path
        The path of the ``.json`` file.
    """
    if type(model).__name__ not in _CLASSES or not hasattr(model, "params_"):
        raise TypeError(f"can only checkpoint an initialised VAE or Autoencoder, "
                        f"got {type(model).__name__}")
    stem = _stem(path)
    opt = model.optimizer_
    arrays = {f"param/{k}": v for k, v in model.params_.items()}
    # Adam's moments are stored by parameter name whether the optimizer ran
    # on the model's one parameter vector or on the arrays one by one.
    for moment, state in (("m", opt.m), ("v", opt.v)):
        if FLAT in state:
            state = model.parameters_.views(state[FLAT])
        arrays.update({f"adam_{moment}/{k}": v for k, v in state.items()})
    npz_path = atomic_write(stem.with_suffix(".npz"), lambda f: np.savez(f, **arrays))
    meta = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
        "params": {k: _json_param(k, v) for k, v in model.get_params().items()},
        "n_features_in_": int(model.n_features_in_),
        "n_iter_": int(model.n_iter_),
        "optimizer": {"name": "Adam", "t": int(opt.t), "learning_rate": opt.learning_rate,
                      "beta1": opt.beta1, "beta2": opt.beta2, "eps": opt.eps},
        "rng_state": model.rng_.bit_generator.state,
        "history_": model.history_,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in arrays.items()},
        "npz_sha256": hashlib.sha256(npz_path.read_bytes()).hexdigest(),
        "extra": extra if extra is not None else {},
    }
    text = json.dumps(meta, indent=1, allow_nan=False)
    return atomic_write(stem.with_suffix(".json"), lambda f: f.write(text.encode()))


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


def load_checkpoint(path, return_extra=False):
    """Rebuild a model from a checkpoint, bit for bit.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint's ``.json`` or ``.npz`` file or stem, or a run folder
        (its latest checkpoint is loaded).
    return_extra : bool
        Also return the ``extra`` dict stored with the checkpoint.

    Returns
    -------
    model : VAE or Autoencoder
        With parameters, Adam's state, ``rng_``, ``n_iter_`` and
        ``history_`` restored, ready to predict or to continue training.
    extra : dict
        Only with ``return_extra=True``.

    Raises
    ------
    FileNotFoundError
        No such checkpoint.
    ValueError
        The checkpoint is of another format version or class, does not
        match the architecture its hyper-parameters build, holds arrays of
        the wrong dtype, non-finite values, object arrays or pickles, or
        its ``.npz`` is not the one its ``.json`` describes.
    """
    path = Path(path)
    json_path = latest_checkpoint(path) if path.is_dir() else _stem(path).with_suffix(".json")
    npz_path = json_path.with_suffix(".npz")
    for p in (json_path, npz_path):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file {p} does not exist")
    try:
        meta = json.loads(json_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        _fail(json_path, f"not valid JSON ({e})")
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        _fail(json_path, "not an npvae checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        _fail(json_path, f"format version {meta.get('format_version')!r}; this npvae "
                         f"reads version {FORMAT_VERSION}")
    try:
        return _restore(meta, json_path, npz_path, return_extra)
    except (KeyError, TypeError) as e:
        _fail(json_path, f"malformed metadata ({type(e).__name__}: {e})")


def _restore(meta, json_path, npz_path, return_extra):
    cls = _CLASSES.get(meta["class"])
    if cls is None:
        _fail(json_path, f"unknown class {meta['class']!r}; expected one of {sorted(_CLASSES)}")
    params = dict(meta["params"])
    params["hidden_dims"] = tuple(params["hidden_dims"])
    model = cls(**params).initialize(meta["n_features_in_"])

    data = npz_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["npz_sha256"]:
        _fail(npz_path, "its SHA-256 does not match the one in "
                        f"{json_path.name}: the file was changed or replaced")
    expected = {f"param/{k}": v for k, v in model.params_.items()}
    opt = meta["optimizer"]
    if opt["t"] > 0:
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

    # Copy into the live arrays: the layers hold references to them.
    for name, p in model.params_.items():
        p[...] = arrays[f"param/{name}"]
    adam = Adam(learning_rate=opt["learning_rate"], beta1=opt["beta1"],
                beta2=opt["beta2"], eps=opt["eps"])
    adam.t = int(opt["t"])
    if adam.t > 0:
        adam.m, adam.v = ({FLAT: np.concatenate([arrays[f"adam_{moment}/{k}"].ravel()
                                                 for k in model.params_])}
                          for moment in "mv")
    model.optimizer_ = adam
    state = meta["rng_state"]
    if state.get("bit_generator") != type(model.rng_.bit_generator).__name__:
        _fail(json_path, f"random generator {state.get('bit_generator')!r} is not "
                         f"{type(model.rng_.bit_generator).__name__}")
    model.rng_.bit_generator.state = state
    model.n_iter_ = int(meta["n_iter_"])
    model.history_ = list(meta["history_"])
    if return_extra:
        return model, meta.get("extra", {})
    return model

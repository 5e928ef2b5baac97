"""Data sets for npvae: the named data sets, where they live, downloads, splits.

Every loader returns a :class:`Dataset` whose ``X`` arrays are float32,
2-D ``(n_samples, n_features)`` and, for the named data sets, in [0, 1].
Files are located in the data folder, downloaded from a mirror through
``pooch`` with their md5 checked (one process at a time per data set
folder), parsed by :mod:`npvae.app.formats`, and split into a training and a
test part; :func:`binarize` draws binary data from probabilities.

Randomness only comes from :class:`numpy.random.Generator` objects passed in
or built from a seed; the fixed train/test splits use internal seeds so that
test scores are comparable across runs.
"""
from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pooch

from .formats import ARRAY_FILE_SUFFIXES, DataError, read_amat, read_array_file, read_idx, read_mat
from .locks import hold_lock
from ..core.rng import as_generator

__all__ = ["DATASETS", "CLASS_NAMES", "MIRRORS", "MD5SUMS", "DOWNLOAD_TIMEOUT", "DataError",
           "MissingDataError", "Dataset", "load_dataset", "load_binarized_mnist", "download",
           "resolve_data_dir", "train_val_split", "binarize"]

DATASETS = ("digits", "mnist", "fashion-mnist", "binarized-mnist", "frey-face")

#: Names of the classes 0-9, where they are not the digits themselves.
CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
}

#: Base URLs tried in order by :func:`download`, per data set.
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "binarized-mnist": ("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",),
    "frey-face": ("https://cs.nyu.edu/~roweis/data/",),
}


def _read_registry():
    """The md5 checksums of ``registry.txt`` (beside this module, in pooch's
    registry format) as ``{data set: {file: md5}}``, in the file's order."""
    # A Pooch only to parse the file: downloads go through _fetch and MIRRORS.
    registry = pooch.create(path=".", base_url="")
    registry.load_registry(Path(__file__).with_name("registry.txt"))
    md5sums = {}
    for key, checksum in registry.registry.items():
        name, fname = key.split("/")
        md5sums.setdefault(name, {})[fname] = checksum.removeprefix("md5:")
    return md5sums


#: The files of each data set as published, with their md5 checksums.
MD5SUMS = _read_registry()

#: Seconds a mirror may take to connect or stay silent while sending a file
#: (pooch's timeout); then the next mirror is tried.
DOWNLOAD_TIMEOUT = 60.0

# The fixed seed of the built-in splits: they must not follow the user's seed.
_SPLIT_SEED = 0
_HELD_OUT_FRACTION = 0.2
# A data file's test part has 2+ rows (`npvae train` draws interpolations between
# test pairs), and its training part 2+ (the CLI splits a validation set off it).
_MIN_TEST_ROWS = 2
_MIN_FILE_ROWS = 4


class MissingDataError(FileNotFoundError):
    """The files of a named data set are not in the data folder."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set split into a training and a test part.

    Attributes
    ----------
    name : str
        Data set name, or the file path it was read from.
    X_train, X_test : numpy.ndarray
        float32 arrays of shape ``(n, n_features)``.
    y_train, y_test : numpy.ndarray or None
        int64 class labels of shape ``(n,)``, or None when unlabelled.
    image_shape : tuple of int or None
        ``(height, width)`` of one sample viewed as an image, row-major, or
        None when the features are not an image.
    binary : bool
        True when every value is exactly 0 or 1.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray | None
    image_shape: tuple[int, ...] | None
    binary: bool

    def __post_init__(self):
        # Catch inconsistent parts where they are made, not deep in training.
        for X, y in ((self.X_train, self.y_train), (self.X_test, self.y_test)):
            if X.ndim != 2 or X.shape[1] != self.X_train.shape[1]:
                raise ValueError(f"{self.name}: inconsistent X shapes "
                                 f"{self.X_train.shape} and {self.X_test.shape}")
            if y is not None and y.shape != (X.shape[0],):
                raise ValueError(f"{self.name}: y of shape {y.shape} for X of shape {X.shape}")
        if len(self.X_train) < 2 or len(self.X_test) < 1:
            raise ValueError(f"{self.name}: {len(self.X_train)} training and {len(self.X_test)} "
                             "test samples; need 2+ training samples (a validation set is split "
                             "off them) and 1+ test sample")
        if self.image_shape is not None and np.prod(self.image_shape) != self.X_train.shape[1]:
            raise ValueError(f"{self.name}: image_shape {self.image_shape} does not "
                             f"match {self.X_train.shape[1]} features")


# --------------------------------------------------------------------------
# Public entry points


def load_dataset(name_or_path, data_dir=None, download=False, mirror=None):
    """Load a named data set or a data file.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        One of :data:`DATASETS`, or a path ending in ``.npy``, ``.npz`` or
        ``.csv``.
    data_dir : str or os.PathLike, optional
        Folder holding one sub-folder per data set (``<data_dir>/mnist/`` ...),
        or the data set's own folder (``.../mnist``): see
        :func:`resolve_data_dir`. Defaults to ``$NPVAE_DATA_DIR``, else
        ``~/.npvae/data``.
    download : bool, default False
        Fetch missing files of a named data set (md5-checked). Ignored for
        ``digits`` (bundled with scikit-learn) and for file paths.
    mirror : str, optional
        Base URL to download from instead of :data:`MIRRORS`; files are
        fetched from ``<mirror>/<name>/<file>``. Defaults to
        ``$NPVAE_DATA_MIRROR`` when that is set.

    Returns
    -------
    Dataset

    Raises
    ------
    MissingDataError
        The files of a named data set are missing and ``download`` is False.
    DataError
        A file is corrupt or malformed, or a download failed its md5 check.
    ValueError
        ``name_or_path`` is neither a known name nor a supported file type.

    Notes
    -----
    The splits:

    - ``digits``: scikit-learn's 1797 8x8 digits scaled by 1/16, split 80/20
      at random with a fixed internal seed.
    - ``mnist``, ``fashion-mnist``: the official 60000/10000 split, pixels /255.
    - ``binarized-mnist``: Larochelle's train (50000) and test (10000) files;
      the valid split is available through :func:`load_binarized_mnist`.
    - ``frey-face``: no official split exists; the last 10% of the 1965
      frames (196; in a smaller file, at least 2) are the test set. The
      frames come from one video, so neighbouring frames are near
      duplicates: a contiguous tail keeps them out of the test set, which a
      random split would not. The file must be the published one (its md5
      is checked before it is read: SciPy's MAT-file reader is not safe on
      corrupt files).
    - a ``.npy``/``.npz``/``.csv`` file of 4 rows or more: a fixed-seed
      random 20% (at least 2 rows) is held out as the test set. Values are
      kept as they are (no rescaling), so they may lie outside [0, 1]. An
      ``.npz`` supplies ``X`` (or its only array) and optional integer labels
      ``y``; a ``.csv`` is numbers separated by commas, with an optional
      header row, and has no labels. An ``X`` of shape ``(n, height, width)``
      is a set of images: it is flattened, and its ``image_shape`` is
      ``(height, width)``.
    """
    name = str(name_or_path)
    if name.lower() in DATASETS:
        name = name.lower()
        if name == "digits":
            return _load_digits()
        if name == "binarized-mnist":
            train, test = (load_binarized_mnist(data_dir, s, download, mirror)
                           for s in ("train", "test"))
            return Dataset(name, train, None, test, None, (28, 28), True)
        if name == "frey-face":
            return _load_frey(data_dir, download, mirror)
        return _load_idx_dataset(name, data_dir, download, mirror)
    if Path(name).suffix.lower() in ARRAY_FILE_SUFFIXES:
        return _load_file(Path(name))
    raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)} "
                     "or a path to a .npy, .npz or .csv file")


def load_binarized_mnist(data_dir=None, split="train", download=False, mirror=None):
    """Load one split of Larochelle & Murray's statically binarized MNIST.

    Parameters
    ----------
    data_dir, download, mirror
        As in :func:`load_dataset`.
    split : {"train", "valid", "test"}
        50000, 10000 and 10000 images respectively.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(n, 784)`` holding 0 and 1.
    """
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', not {split!r}")
    (path,) = _require("binarized-mnist", [f"binarized_mnist_{split}.amat"],
                       data_dir, download, mirror)
    return read_amat(path)


def download(name, data_dir=None, mirror=None):
    """Fetch every missing file of a named data set into ``<data_dir>/<name>/``.

    Each file is fetched by ``pooch`` (with its progress bar on a terminal, and
    :data:`DOWNLOAD_TIMEOUT` for connecting and for each read) into a
    temporary file beside its target, its md5 is checked against
    :data:`MD5SUMS`, and only then is it renamed into place: a failed or
    interrupted download leaves nothing behind. One whose process is killed
    leaves its temporary file (``.<file>.<8 characters>.part``); the next
    download of the file removes it.

    While fetching, a process holds the lock ``.npvae-download.lock`` in the
    data set's folder (:mod:`npvae.app.locks`); another process downloading
    the same data set into the same folder waits for it, then fetches only
    what is still missing. Nothing is written when no file is missing.

    Parameters
    ----------
    name : str
        A key of :data:`MIRRORS`.
    data_dir, mirror
        As in :func:`load_dataset`.

    Returns
    -------
    list of pathlib.Path
        The local files, downloaded or already present.

    Raises
    ------
    DataError
        No mirror delivered a file with the right md5; the message names
        each mirror's URL of the file and what went wrong there.
    """
    if name not in MD5SUMS:
        raise ValueError(f"nothing to download for {name!r}: expected one of {', '.join(MD5SUMS)}")
    return _require(name, list(MD5SUMS[name]), data_dir, True, mirror)


def resolve_data_dir(data_dir=None, name=None):
    """Return the data folder: ``data_dir``, else ``$NPVAE_DATA_DIR``, else ``~/.npvae/data``.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
    name : str, optional
        A data set's name: return that data set's folder instead, which is
        ``<data folder>/<name>``, or the data folder itself when it is named
        ``name`` and has no sub-folder ``name`` (so that both ``~/data`` and
        ``~/data/mnist`` find MNIST).

    Returns
    -------
    pathlib.Path
    """
    if data_dir is None:
        data_dir = os.environ.get("NPVAE_DATA_DIR") or Path.home() / ".npvae" / "data"
    root = Path(data_dir).expanduser()
    own = name is None or (root.name == name and not (root / name).is_dir())
    return root if own else root / name


def train_val_split(X, y=None, val_fraction=0.1, random_state=None):
    """Split samples at random into a training and a validation part.

    Parameters
    ----------
    X : numpy.ndarray
        Samples along the first axis.
    y : numpy.ndarray, optional
        Labels, split alongside ``X``.
    val_fraction : float, default 0.1
        Fraction of samples for validation, in (0, 1); rounded to a whole
        number of samples, with at least one sample in each part.
    random_state : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Seed or generator; the split is deterministic for a given seed.

    Returns
    -------
    X_train, X_val : numpy.ndarray
        The two parts, each in the original order of ``X``.
    y_train, y_val : numpy.ndarray or None
        The matching labels, or None when ``y`` is None.
    """
    X = np.asarray(X)
    n = X.shape[0]
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got {n}")
    if y is not None and len(y) != n:
        raise ValueError(f"X has {n} samples but y has {len(y)}")
    n_val = min(max(int(round(val_fraction * n)), 1), n - 1)
    perm = as_generator(random_state).permutation(n)
    # Sorting keeps each part in file order (e.g. Frey's frames stay in sequence).
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    if y is None:
        return X[train], X[val], None, None
    y = np.asarray(y)
    return X[train], X[val], y[train], y[val]


def binarize(X, rng):
    """Draw a dynamic binarisation: each value becomes 1 with probability ``X``.

    Parameters
    ----------
    X : numpy.ndarray
        Floating-point probabilities in [0, 1].
    rng : numpy.random.Generator or int
        Generator (or seed for one) to draw from.

    Returns
    -------
    numpy.ndarray
        0/1 values of the same shape and dtype as ``X``.
    """
    X = np.asarray(X)
    if X.dtype.kind != "f":
        raise ValueError(f"binarize needs floating-point probabilities, got dtype {X.dtype}")
    if X.size and (X.min() < 0 or X.max() > 1):
        raise ValueError("binarize needs values in [0, 1]")
    # Draw in float32 for float32 data: half the memory, same distribution to 2**-24.
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    u = as_generator(rng, "rng").random(X.shape, dtype=dtype)
    return (u < X).astype(X.dtype)


# --------------------------------------------------------------------------
# Loaders of the named data sets


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_val_split(X, digits.target.astype(np.int64),
                                             _HELD_OUT_FRACTION, _SPLIT_SEED)
    return Dataset("digits", X_tr, y_tr, X_te, y_te, (8, 8), False)


def _load_idx_dataset(name, data_dir, download, mirror):
    paths = _require(name, list(MD5SUMS[name]), data_dir, download, mirror)
    parts = []
    # MD5SUMS lists the training images and labels, then the test ones.
    for images_path, labels_path in (paths[:2], paths[2:]):
        images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
        if images.shape[1:] != (28, 28):
            raise DataError(f"{images_path}: images of shape {images.shape[1:]}, expected (28, 28)")
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images")
        if labels.size and labels.max() > 9:
            raise DataError(f"{labels_path}: label {labels.max()} outside 0-9")
        parts += [_scale_bytes(images.reshape(len(images), -1)), labels.astype(np.int64)]
    return Dataset(name, *parts, image_shape=(28, 28), binary=False)


def _load_frey(data_dir, download, mirror):
    (path,) = _require("frey-face", ["frey_rawface.mat"], data_dir, download, mirror)
    # SciPy's MAT reader can crash on a corrupt file: let it read only the published one.
    _check_md5(path, MD5SUMS["frey-face"]["frey_rawface.mat"])
    ff = read_mat(path).get("ff")
    if ff is None or ff.dtype != np.uint8 or ff.ndim != 2 or ff.shape[0] != 28 * 20:
        what = "no variable 'ff'" if ff is None else f"'ff' is {ff.dtype} {ff.shape}"
        raise DataError(f"{path}: {what}, expected uint8 of shape (560, n)")
    if ff.shape[1] < _MIN_FILE_ROWS:
        raise DataError(f"{path}: {ff.shape[1]} image(s) are too few: "
                        f"need {_MIN_FILE_ROWS} or more")
    X = _scale_bytes(ff.T)  # one column per 28x20 image, row-major
    n_test = max(X.shape[0] // 10, _MIN_TEST_ROWS)
    return Dataset("frey-face", X[:-n_test], None, X[-n_test:], None, (28, 20), False)


def _load_file(path):
    X, y, image_shape = read_array_file(path)
    if len(X) < _MIN_FILE_ROWS:
        raise DataError(f"{path}: {len(X)} row(s) are too few: need {_MIN_FILE_ROWS} or more "
                        "(2 for the test set, 2 for training and validation)")
    # From 8 rows on, this is the 20% alone (round(0.2 n) >= 2).
    fraction = max(_HELD_OUT_FRACTION, _MIN_TEST_ROWS / len(X))
    X_tr, X_te, y_tr, y_te = train_val_split(X, y, fraction, _SPLIT_SEED)
    binary = bool(np.all((X == 0) | (X == 1)))
    return Dataset(str(path), X_tr, y_tr, X_te, y_te, image_shape, binary)


def _scale_bytes(a):
    return a.astype(np.float32) / np.float32(255)


# --------------------------------------------------------------------------
# Locating and downloading files


# Held while a data set's missing files are fetched.
_LOCK_NAME = ".npvae-download.lock"


def _require(name, files, data_dir, download_missing, mirror):
    """Return local paths of ``files`` of data set ``name``, downloading if asked."""
    folder = resolve_data_dir(data_dir, name)
    missing = [f for f in files if _local_file(folder, f) is None]
    if missing and not download_missing:
        raise MissingDataError(
            f"{name}: missing {', '.join(missing)} in {folder}; put the official files "
            f"there (from {_mirrors(name, mirror)[0]}), gzipped or not, or pass "
            "download=True (CLI: npvae train --download) to fetch them, or give the "
            "folder that has them (CLI: --data-dir)")
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / _LOCK_NAME

        def busy():
            warnings.warn(f"waiting for another process downloading into {folder} "
                          f"(it holds {lock})")
        with hold_lock(lock, busy, error=DataError):
            for f in missing:
                _remove_stale_parts(folder, f)
                if _local_file(folder, f) is None:  # else another process fetched it meanwhile
                    _fetch(name, f, folder, mirror)
    return [_local_file(folder, f) for f in files]


def _remove_stale_parts(folder, fname):
    """Remove the temporary files of downloads of ``fname`` that were killed.

    Call it holding the download lock: a live download holds it too, so every
    such file is a leftover. Only regular files named as :func:`_fetch` names
    them (by :func:`tempfile.mkstemp`: 8 of ``a-z0-9_`` in the middle) go.
    """
    stale = re.compile(re.escape(f".{fname}.") + r"[a-z0-9_]{8}\.part")
    for entry in folder.iterdir():
        if stale.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink()


def _check_md5(path, expected):
    md5 = pooch.file_hash(str(path), alg="md5")
    if md5 != expected:
        raise DataError(f"{path}: md5 {md5}, expected {expected}: not the "
                        "published file (corrupt or replaced); remove it and fetch it "
                        "again (download=True, CLI: npvae train --download)")


def _local_file(folder, fname):
    # Accept the file gzipped or not, whichever way it was published.
    alt = fname[:-3] if fname.endswith(".gz") else fname + ".gz"
    return next((p for p in (folder / fname, folder / alt) if p.is_file()), None)


def _mirrors(name, mirror):
    mirror = mirror or os.environ.get("NPVAE_DATA_MIRROR")
    return [f"{mirror.rstrip('/')}/{name}/"] if mirror else list(MIRRORS[name])


# Errors of the local disk while a download is written (a socket never has these).
_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _fetch(name, fname, folder, mirror):
    """Download one file into ``folder`` after checking its md5.

    pooch's own placement (``pooch.retrieve``) names its temporary file
    ``tmp<8 characters>``, which no sweep can tell from a user's file, so
    the file goes to a temporary name of npvae's, as :func:`_remove_stale_parts`
    knows it."""
    expected = MD5SUMS[name][fname]
    # A progress bar only for a terminal, as the training's: in a log it is noise.
    fetch = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=DOWNLOAD_TIMEOUT,
                                 headers={"User-Agent": "npvae"})
    errors = []
    for base in _mirrors(name, mirror):
        url = base + fname
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
        os.close(fd)
        try:
            fetch(url, tmp, None)
            md5 = pooch.file_hash(tmp, alg="md5")
            if md5 == expected:
                os.replace(tmp, folder / fname)
                return
            errors.append(f"{url}: md5 {md5}, expected {expected}")
        # requests' errors are OSErrors too; an ImportError is an https URL in
        # a Python built without ssl.
        except (OSError, ImportError) as e:
            if getattr(e, "errno", None) in _DISK_ERRNOS:  # no other mirror can help
                raise OSError(e.errno, f"cannot save {url}: {e.strerror}",
                              str(folder / fname)) from None
            errors.append(f"{url}: {e}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise DataError(f"could not download {name}/{fname}: {'; '.join(errors)}")

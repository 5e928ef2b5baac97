"""The file formats npvae reads, each parsed into NumPy arrays.

IDX (MNIST, Fashion-MNIST), Larochelle's ``.amat`` (binarized MNIST) and
MATLAB MAT-files (Frey faces, read by SciPy) hold the named data sets;
``.npy``, ``.npz`` and ``.csv`` hold the user's own data. Every reader raises
:class:`DataError` naming the file when it is corrupt, malformed or of the
wrong kind. Where the files live and how they are split is
:mod:`npvae.app.datasets`' business.
"""

import gzip
import math
import os
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import scipy.io

__all__ = ["DataError", "ARRAY_FILE_SUFFIXES", "read_idx", "read_amat", "read_mat",
           "read_array_file"]

#: Suffixes of the user's data files that :func:`read_array_file` reads.
ARRAY_FILE_SUFFIXES = (".npy", ".npz", ".csv")


class DataError(ValueError):
    """A data file or array is corrupt, malformed or of the wrong kind."""


def read_idx(path, ndim=None):
    """Read an IDX file of unsigned bytes (plain or gzip-compressed).

    Parameters
    ----------
    path : str or os.PathLike
    ndim : int, optional
        Expected number of dimensions: 3 for images (magic 0x00000803),
        1 for labels (magic 0x00000801).

    Returns
    -------
    numpy.ndarray
        uint8 array with the dimensions from the header.

    Raises
    ------
    DataError
        Wrong magic number, a dimension of 0, or a byte count that does not
        match the header.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    # 0x08 in the third byte means unsigned bytes; the fourth is the rank.
    if data[:3] != b"\x00\x00\x08" or (ndim is not None and data[3] != ndim):
        expected = f"0x{0x800 + ndim:08x}" if ndim is not None else "0x000008NN"
        raise DataError(f"{path}: wrong IDX magic number 0x{data[:4].hex()}, expected {expected}")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    # Unsigned: a corrupt sign bit shows as a size the file cannot hold.
    dims = struct.unpack(f">{data[3]}I", data[4:header])
    if 0 in dims:  # a data set of no images is no data set
        raise DataError(f"{path}: holds no data (IDX dimensions {dims})")
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: {len(data)} bytes, expected {expected} for dims {dims}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_amat(path, n_features=784):
    """Read a Larochelle ``.amat`` file of 0/1 values (plain or gzip-compressed).

    Parameters
    ----------
    path : str or os.PathLike
    n_features : int, default 784
        Number of values each line must have.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(n_lines, n_features)``.

    Raises
    ------
    DataError
        A line with the wrong number of values, or a value other than 0 or 1.
    """
    data = _read_bytes(path)
    line_len = 2 * n_features
    raw = np.frombuffer(data, np.uint8)
    # Fast path for the exact published layout: "d d ... d\n", one char per digit.
    if data and raw.size % line_len == 0:
        rows = raw.reshape(-1, line_len)
        digits, seps = rows[:, 0::2], rows[:, 1::2]
        if ((seps[:, :-1] == ord(" ")).all() and (seps[:, -1] == ord("\n")).all()
                and (digits <= ord("1")).all() and (digits >= ord("0")).all()):
            return (digits - ord("0")).astype(np.float32)
    # Slow path: any whitespace; also finds the first bad line for the message.
    # Line by line, so a large file never becomes millions of token objects.
    lines = data.rstrip().splitlines()
    if not lines:
        raise DataError(f"{path}: no data")
    out = np.empty((len(lines), n_features), np.float32)
    for i, line in enumerate(lines):
        tokens = line.split()
        if len(tokens) != n_features:
            raise DataError(f"{path}: line {i + 1} has {len(tokens)} values, expected {n_features}")
        bad = set(tokens) - {b"0", b"1"}
        if bad:
            raise DataError(f"{path}: line {i + 1} has a value other than 0 or 1: "
                            f"{min(bad).decode(errors='replace')!r}")
        out[i] = np.frombuffer(b"".join(tokens), np.uint8) - ord("0")
    return out


def read_mat(path):
    """Read the variables of a MAT-file (MATLAB ``-v4``, ``-v6`` or ``-v7``).

    A thin wrapper of :func:`scipy.io.loadmat` that names the file in its
    errors. SciPy's reader is not hardened against hostile files: some
    corrupt files crash the interpreter instead of raising. Read only files
    you trust; :mod:`npvae.app.datasets` checks the md5 of Frey's file first.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of str to numpy.ndarray
        Each variable as ``scipy.io.loadmat`` returns it (at least 2-D, in
        MATLAB's dimensions, of its MATLAB class's dtype in native byte
        order; a sparse one is a SciPy sparse matrix), without the
        ``__header__``-style entries.

    Raises
    ------
    DataError
        Not a MAT-file, a MATLAB 7.3 (HDF5) one, or a corrupt one.
    """
    try:
        # mat_dtype: a double matrix MATLAB stored as bytes comes back as doubles.
        variables = scipy.io.loadmat(os.fspath(path), mat_dtype=True, appendmat=False)
    except FileNotFoundError:
        raise
    except NotImplementedError:
        raise DataError(f"{path}: MATLAB 7.3 (HDF5) MAT-files are not supported; "
                        "save it with -v7") from None
    except Exception as e:  # loadmat raises a dozen kinds of error on corrupt files
        raise DataError(f"{path}: not a MAT-file, or a corrupt one "
                        f"({type(e).__name__}: {e})") from None
    return {k: v.astype(v.dtype.newbyteorder("="), copy=False)  # a big-endian file's too
            for k, v in variables.items() if not k.startswith("__")}


# --------------------------------------------------------------------------
# The user's data files


_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}  # .npz is a zip archive


def read_array_file(path):
    """Read a data set from a ``.npy``, ``.npz`` or ``.csv`` file.

    An ``.npz`` supplies ``X`` (or its only array) and optional integer
    labels ``y``; a ``.csv`` is numbers separated by commas, with an optional
    header row, and has no labels. An ``X`` of shape ``(n, height, width)`` is
    a set of images: it is flattened row by row.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    X : numpy.ndarray
        float32 array of shape ``(n_samples, n_features)``, finite, values as
        they are in the file.
    y : numpy.ndarray or None
        int64 labels of shape ``(n_samples,)``, or None.
    image_shape : tuple of int or None
        ``(height, width)`` when the file held images, else None.

    Raises
    ------
    FileNotFoundError
        No such file.
    DataError
        The file is not of the kind its suffix says, or its arrays are not
        numeric, finite and of a usable shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    y = None
    suffix = path.suffix.lower()
    if suffix in _MAGIC:
        # np.load picks the format by content, not name: a zip called .npy
        # came back as an NpzFile, and a file with neither magic got numpy's
        # advice to load it as a pickle.
        with open(path, "rb") as f:
            if f.read(len(_MAGIC[suffix])) != _MAGIC[suffix]:
                raise DataError(f"{path}: not a {suffix} file (it does not start with "
                                f"the {suffix} signature)")
    try:
        if suffix == ".csv":
            X = _read_csv(path)
        elif suffix == ".npy":
            with open(path, "rb") as f:
                _check_npy_header(f, path.stat().st_size, path)
            X = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if "X" not in keys and len(keys) != 1:
                    raise DataError(f"{path}: holds arrays {keys}; expected one named 'X' "
                                    "or a single array")
                X = _npz_array(npz, "X" if "X" in keys else keys[0], path)
                y = _npz_array(npz, "y", path) if "X" in keys and "y" in keys else None
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile,
            NotImplementedError, RuntimeError) as e:
        # np.load refuses pickled (object) arrays with a ValueError; zipfile
        # an unknown compression method or an encrypted member with the last two.
        raise DataError(f"{path}: cannot read: {e}") from None
    except MemoryError as e:
        raise MemoryError(f"{path}: {e}") from None
    image_shape = tuple(map(int, X.shape[1:])) if X.ndim == 3 else None  # (height, width)
    if image_shape:
        X = X.reshape(X.shape[0], math.prod(image_shape))
    X = _check_features(X, path)
    if y is not None:
        y = _check_labels(y, X.shape[0], path)
    return X, y, image_shape


def _check_npy_header(f, size, where):
    """Refuse an .npy stream of ``size`` bytes whose header promises more data.

    np.load allocates what the header says before it reads: a crafted header
    in a file of a few bytes asked for terabytes.
    """
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read_header(f)
    if dtype.hasobject:
        return  # np.load refuses it without allow_pickle
    promised, held = math.prod(shape) * dtype.itemsize, size - f.tell()
    if promised > held:
        raise DataError(f"{where}: truncated or corrupt: its header promises an array of "
                        f"shape {shape} and dtype {dtype} ({promised} bytes), but the file "
                        f"holds {held} bytes of data")


def _npz_array(npz, key, path):
    member = key + ".npy"
    if member not in npz.zip.namelist():
        raise DataError(f"{path}: {key!r} is not an .npy array in the archive")
    with npz.zip.open(member) as f:
        _check_npy_header(f, npz.zip.getinfo(member).file_size, f"{path} (array {key!r})")
    return npz[key]


def _read_csv(path):
    # utf-8-sig drops a byte-order mark, which made the first row look like a header.
    with open(path, newline="", encoding="utf-8-sig") as f:
        first = f.readline()
    try:
        [float(v) for v in first.split(",")]
        skip = 0
    except ValueError:
        skip = 1  # a header row
    with warnings.catch_warnings():
        # An empty file warns; _check_features reports it as an error instead.
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64,
                          encoding="utf-8-sig")


def _check_features(X, path):
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise DataError(f"{path}: X must be 2-D (samples, features) or 3-D (samples, "
                        f"height, width), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise DataError(f"{path}: X of shape {X.shape} is too small (need 1+ rows, 1+ columns)")
    if not np.isfinite(X).all():
        raise DataError(f"{path}: X has NaN or infinite values")
    with np.errstate(over="ignore"):    # reported below, by name
        X32 = X.astype(np.float32)
    if not np.isfinite(X32).all():
        raise DataError(f"{path}: X has values too large for float32 (largest magnitude "
                        f"{float(np.abs(X).max()):.4g}); rescale them")
    return X32


def _check_labels(y, n, path):
    if y.dtype.kind not in "biuf" or y.shape != (n,):
        raise DataError(f"{path}: y must be numeric of shape ({n},), got {y.dtype} {y.shape}")
    if not np.array_equal(y, np.round(y)):
        raise DataError(f"{path}: y must hold integer class labels")
    return y.astype(np.int64)


def _read_bytes(path):
    """Read a file, gunzipping it when its name ends in .gz."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read: {e}") from None


"""The file formats npvae reads, each parsed into NumPy arrays.

IDX (MNIST, Fashion-MNIST), Larochelle's ``.amat`` (binarized MNIST) and
MATLAB 5 MAT-files (Frey faces) hold the named data sets; ``.npy``, ``.npz``
and ``.csv`` hold the user's own data. Every reader raises :class:`DataError`
naming the file when it is corrupt, malformed or of the wrong kind. Where the
files live and how they are split is :mod:`npvae.datasets`' business.
"""
from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

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
        Wrong magic number, or a byte count that does not match the header.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    # 0x08 in the third byte means unsigned bytes; the fourth is the rank.
    if data[:3] != b"\x00\x00\x08" or (ndim is not None and data[3] != ndim):
        expected = f"0x{0x800 + ndim:08x}" if ndim is not None else "0x000008NN"
        raise DataError(f"{path}: wrong IDX magic number 0x{magic:08x}, expected {expected}")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{data[3]}i", data[4:header])
    if any(d < 0 for d in dims):
        raise DataError(f"{path}: negative IDX dimensions {dims}")
    expected = header + int(np.prod(dims, dtype=np.int64))
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


# MAT-file data types (miXXX) and array classes (mxXXX_CLASS) as NumPy dtypes.
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4",
              7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2",
              12: "i4", 13: "u4", 14: "i8", 15: "u8"}
_MI_UINT32, _MI_INT32, _MI_MATRIX, _MI_COMPRESSED = 6, 5, 14, 15
_MX_COMPLEX_FLAG = 0x0800


def read_mat(path):
    """Read the numeric arrays of a MATLAB 5 (``-v6``/``-v7``) MAT-file.

    A minimal reader for real numeric matrices, compressed or not, in either
    byte order. Variables of other kinds (char, cell, struct, sparse,
    complex) are skipped. MATLAB 7.3 files (HDF5) are not supported.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of str to numpy.ndarray
        Each variable with its MATLAB dimensions (at least 2-D), like
        ``scipy.io.loadmat`` returns it.

    Raises
    ------
    DataError
        Not a MATLAB 5 MAT-file, or a corrupt one.
    """
    data = Path(path).read_bytes()
    order = {b"IM": "little", b"MI": "big"}.get(data[126:128])
    if len(data) < 128 or order is None:
        raise DataError(f"{path}: not a MATLAB 5 MAT-file (no 'MI' marker in its header)")
    version = int.from_bytes(data[124:126], order)
    if version != 0x0100:
        raise DataError(f"{path}: unsupported MAT-file version 0x{version:04x} "
                        "(MATLAB 7.3/HDF5 files are not supported; save with -v7)")
    arrays = {}
    pos = 128
    try:
        while pos < len(data):
            mtype, body, pos = _mat_element(data, pos, order)
            if mtype == _MI_COMPRESSED:
                mtype, body, _ = _mat_element(zlib.decompress(body), 0, order)
            if mtype == _MI_MATRIX and body:
                name, array = _mat_matrix(body, order)
                if array is not None:
                    arrays[name] = array
    except (ValueError, zlib.error) as e:
        raise DataError(f"{path}: corrupt MAT-file: {e}") from None
    return arrays


def _mat_element(buf, pos, order):
    """Return ``(type, payload, next_pos)`` of the data element at ``pos``."""
    if pos + 8 > len(buf):
        raise DataError(f"truncated element tag at byte {pos}")
    word = int.from_bytes(buf[pos:pos + 4], order)
    if word >> 16:
        # Small data element: size in the upper half, payload in the next 4 bytes.
        mtype, size = word & 0xFFFF, word >> 16
        if size > 4:
            raise DataError(f"small data element of {size} bytes at byte {pos}")
        return mtype, buf[pos + 4:pos + 4 + size], pos + 8
    mtype, size = word, int.from_bytes(buf[pos + 4:pos + 8], order)
    start, end = pos + 8, pos + 8 + size
    if end > len(buf):
        raise DataError(f"element at byte {pos} needs {size} bytes, only {len(buf) - start} left")
    # Elements are padded to 8 bytes, except compressed ones.
    next_pos = end if mtype == _MI_COMPRESSED else start + -(-size // 8) * 8
    return mtype, buf[start:end], next_pos


def _mat_matrix(body, order):
    """Decode an miMATRIX payload into ``(name, array)``; array is None if unsupported."""
    e = "<" if order == "little" else ">"
    ftype, flags, pos = _mat_element(body, 0, order)
    dims_type, dims, pos = _mat_element(body, pos, order)
    _, name, pos = _mat_element(body, pos, order)
    if ftype != _MI_UINT32 or dims_type != _MI_INT32:
        raise DataError("miMATRIX without array flags and dimensions")
    flags = int.from_bytes(flags[:4], order)
    dims = tuple(int(d) for d in np.frombuffer(dims, e + "i4"))
    name = name.decode("latin-1")
    mx_class = flags & 0xFF
    if mx_class not in _MX_DTYPES or flags & _MX_COMPLEX_FLAG:
        return name, None
    rtype, real, _ = _mat_element(body, pos, order)
    if rtype not in _MI_DTYPES:
        raise DataError(f"variable {name!r}: unsupported data type {rtype}")
    values = np.frombuffer(real, e + _MI_DTYPES[rtype])
    if values.size != np.prod(dims):
        raise DataError(f"variable {name!r}: {values.size} values for dimensions {dims}")
    # MATLAB may store e.g. a double array as bytes; the class is what it means.
    return name, values.astype(_MX_DTYPES[mx_class]).reshape(dims, order="F")


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
            X = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if "X" not in keys and len(keys) != 1:
                    raise DataError(f"{path}: holds arrays {keys}; expected one named 'X' "
                                    "or a single array")
                X = npz["X" if "X" in keys else keys[0]]
                y = npz["y"] if "X" in keys and "y" in keys else None
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zlib.error) as e:
        # np.load refuses pickled (object) arrays with a ValueError.
        raise DataError(f"{path}: cannot read: {e}") from None
    image_shape = None
    if X.ndim == 3:  # images: (samples, height, width)
        image_shape = (int(X.shape[1]), int(X.shape[2]))
        X = X.reshape(X.shape[0], X.shape[1] * X.shape[2])
    X = _check_features(X, path)
    if y is not None:
        y = _check_labels(y, X.shape[0], path)
    return X, y, image_shape


def _read_csv(path):
    with open(path, newline="") as f:
        first = f.readline()
    try:
        [float(v) for v in first.split(",")]
        skip = 0
    except ValueError:
        skip = 1  # a header row
    with warnings.catch_warnings():
        # An empty file warns; _check_features reports it as an error instead.
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)


def _check_features(X, path):
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise DataError(f"{path}: X must be 2-D (samples, features) or 3-D (samples, "
                        f"height, width), got shape {X.shape}")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise DataError(f"{path}: X of shape {X.shape} is too small (need 2+ rows, 1+ columns)")
    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise DataError(f"{path}: X has NaN or infinite values (or values too large for float32)")
    return X


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
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read: {e}") from None


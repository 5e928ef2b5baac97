"""Tests of npvae.app.formats: the IDX, .amat, MAT-file and .npy/.npz/.csv readers."""
import gzip
import struct

import numpy as np
import pytest
import scipy.io

from npvae.app import formats
from npvae.app.formats import DataError


# --------------------------------------------------------------------------
# Helpers (test_datasets.py builds its small data sets with them too)


def idx_bytes(array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}i", magic, *array.shape) + array.tobytes()


def write(path, data, gz=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def amat_bytes(bits, sep=" ", newline="\n"):
    return "".join(sep.join(str(int(v)) for v in row) + newline for row in bits).encode()


def mat_bytes(order, name, values, mx_class, mi_type):
    """A hand-made uncompressed MAT-file with one matrix, in either byte order.

    Lets the tests cover what scipy.io.savemat never writes: big-endian
    files and a double matrix stored as bytes (as MATLAB does).
    """
    e = "<" if order == "little" else ">"

    def element(mtype, payload):
        padded = payload + b"\0" * (-len(payload) % 8)
        return struct.pack(e + "II", mtype, len(payload)) + padded

    values = np.asarray(values)
    body = (element(6, struct.pack(e + "II", mx_class, 0))
            + element(5, np.asarray(values.shape, e + "i4").tobytes())
            + element(1, name.encode())
            + element(mi_type, values.astype(e + {2: "u1", 9: "f8"}[mi_type]).tobytes(order="F")))
    header = b"MATLAB 5.0 MAT-file".ljust(116) + b"\0" * 8
    header += struct.pack(e + "H", 0x0100) + (b"IM" if order == "little" else b"MI")
    return header + element(14, body)


# --------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write(tmp_path / ("a.idx.gz" if gz else "a.idx"), idx_bytes(a))
    out = formats.read_idx(p, ndim=3)
    assert out.dtype == np.uint8 and np.array_equal(out, a)


def test_idx_wrong_magic(tmp_path):
    p = write(tmp_path / "x.gz", idx_bytes(np.zeros((2, 28, 28)), magic=0x801))
    with pytest.raises(DataError, match=r"x\.gz: wrong IDX magic.*0x00000801.*0x00000803"):
        formats.read_idx(p, ndim=3)


@pytest.mark.parametrize("cut, message", [(-1, "truncated"), (-784, "truncated"),
                                          (5, "has trailing bytes")])
def test_idx_byte_count_must_match(tmp_path, cut, message):
    data = idx_bytes(np.zeros((3, 28, 28)))
    data = data[:cut] if cut < 0 else data + b"\0" * cut
    p = write(tmp_path / "x.gz", data)
    with pytest.raises(DataError, match=f"x.gz: {message}"):
        formats.read_idx(p, ndim=3)


@pytest.mark.parametrize("shape", [(0, 28, 28), (0,), (3, 0, 28)])
def test_idx_holding_no_items_is_an_error(tmp_path, shape):
    p = write(tmp_path / "empty.gz", idx_bytes(np.zeros(shape)))
    with pytest.raises(DataError, match=r"empty.gz: holds no data \(IDX dimensions \(%d"
                                        % shape[0]):
        formats.read_idx(p, ndim=len(shape))


def test_truncated_gzip_stream(tmp_path):
    p = write(tmp_path / "x.gz", idx_bytes(np.ones((3, 28, 28))))
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DataError, match="x.gz: cannot read"):
        formats.read_idx(p, ndim=3)


# --------------------------------------------------------------------------
# .amat


@pytest.mark.parametrize("name", ["b.amat", "b.amat.gz"])
def test_amat_round_trip(tmp_path, name):
    bits = np.random.default_rng(1).integers(0, 2, (5, 784))
    out = formats.read_amat(write(tmp_path / name, amat_bytes(bits)))
    assert out.dtype == np.float32 and np.array_equal(out, bits)


def test_amat_other_whitespace_reads_the_same(tmp_path):
    bits = np.random.default_rng(2).integers(0, 2, (4, 784))
    p = write(tmp_path / "b.amat", amat_bytes(bits, sep="  ", newline="\r\n"))
    assert np.array_equal(formats.read_amat(p), bits)


@pytest.mark.parametrize("line, message", [
    (" ".join(["0"] * 783 + ["2"]), "line 2 has a value other than 0 or 1: '2'"),
    (" ".join(["1"] * 783), "line 2 has 783 values, expected 784"),
    (" ".join(["0.5"] * 784), "line 2 has a value other than 0 or 1"),
])
def test_amat_bad_lines(tmp_path, line, message):
    good = " ".join(["0"] * 784)
    p = write(tmp_path / "b.amat", f"{good}\n{line}\n{good}\n".encode())
    with pytest.raises(DataError, match=f"b.amat: {message}"):
        formats.read_amat(p)


def test_amat_empty(tmp_path):
    with pytest.raises(DataError, match="no data"):
        formats.read_amat(write(tmp_path / "b.amat", b"\n"))


# --------------------------------------------------------------------------
# MAT-files


@pytest.mark.parametrize("compress", [False, True])
def test_read_mat_returns_the_variables(tmp_path, compress):
    rng = np.random.default_rng(4)
    variables = {
        "ff": rng.integers(0, 256, (56, 7), dtype=np.uint8),
        "x": rng.normal(size=(3, 5)),
        "a_longer_name": rng.normal(size=(2, 3, 4)).astype(np.float32),
    }
    p = tmp_path / "v.mat"
    scipy.io.savemat(p, variables, do_compression=compress)
    out = formats.read_mat(p)
    assert set(out) == set(variables)  # without loadmat's __header__ and the like
    for name, array in variables.items():
        assert out[name].dtype == array.dtype and np.array_equal(out[name], array), name


@pytest.mark.parametrize("order", ["little", "big"])
def test_read_mat_byte_order_and_stored_type(tmp_path, order):
    values = np.array([[1.0, 2.0, 250.0], [4.0, 5.0, 6.0]])
    # mxDOUBLE_CLASS (6) stored as miUINT8 (2): the reader must return doubles.
    p = write(tmp_path / "m.mat", mat_bytes(order, "abcdefghij", values, 6, 2))
    out = formats.read_mat(p)["abcdefghij"]
    assert out.dtype == np.float64 and np.array_equal(out, values)
    p = write(tmp_path / "d.mat", mat_bytes(order, "d", values / 7, 6, 9))
    assert np.array_equal(formats.read_mat(p)["d"], values / 7)


def test_read_mat_rejects_bad_files(tmp_path):
    good = mat_bytes("little", "a", np.ones((4, 4)), 6, 9)
    for name, data in (("m.mat", good[:-40]), ("n.mat", b"hello" * 40), ("e.mat", b"")):
        with pytest.raises(DataError, match=f"{name}: not a MAT-file, or a corrupt one"):
            formats.read_mat(write(tmp_path / name, data))
    v73 = good[:124] + struct.pack("<H", 0x0200) + good[126:]
    with pytest.raises(DataError, match="h.mat: MATLAB 7.3"):
        formats.read_mat(write(tmp_path / "h.mat", v73))
    with pytest.raises(FileNotFoundError):
        formats.read_mat(tmp_path / "absent.mat")

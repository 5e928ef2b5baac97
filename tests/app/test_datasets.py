"""Tests of npvae.app.datasets: real data sanity values, named data sets from small files,
the user's data files, downloads, splits."""
import concurrent.futures
import configparser
import errno
import functools
import gzip
import hashlib
import http.server
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pooch
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae.app import cli
from npvae.app import datasets as ds
from npvae.app.datasets import DataError, MissingDataError
from npvae.app.formats import read_idx, read_mat
from test_formats import amat_bytes, idx_bytes, write


# --------------------------------------------------------------------------
# Helpers


def shared_data_dir():
    """The shared real-data folder beside the repo clone, or $NPVAE_DATA_DIR."""
    for candidate in (os.environ.get("NPVAE_DATA_DIR"),
                      Path(__file__).resolve().parents[3] / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def real_dir(name):
    root = shared_data_dir()
    if root is None or not (root / name).is_dir():
        pytest.skip(f"real data folder {name}/ not available")
    return root


def write_fake_mnist(folder, n_train=30, n_test=10, seed=0):
    """Write a small IDX data set; return the uint8 images and labels written."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write(folder / f"{split}-images-idx3-ubyte.gz", idx_bytes(images))
        write(folder / f"{split}-labels-idx1-ubyte.gz", idx_bytes(labels))
        out[split] = images, labels
    return out


def md5(data):
    return hashlib.md5(data).hexdigest()


LOCK = ".npvae-download.lock"  # held while a data set's missing files are fetched


def names(folder):
    """The sorted names in ``folder`` besides the download lock file."""
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK)


# --------------------------------------------------------------------------
# Real data (skipped when the shared folder is absent)


@pytest.fixture(scope="module")
def real_mnist():
    return ds.load_dataset("mnist", real_dir("mnist"))


def test_real_mnist_matches_readme_sanity_values(real_mnist):
    d = real_mnist
    assert d.X_train.shape == (60000, 784) and d.X_test.shape == (10000, 784)
    assert d.X_train.dtype == np.float32 and d.image_shape == (28, 28) and not d.binary
    assert d.X_train.min() == 0 and d.X_train.max() == 1
    assert np.round(d.X_train * 255).sum(dtype=np.int64) == 1_567_298_545
    assert np.round(d.X_test * 255).sum(dtype=np.int64) == 264_923_200
    assert np.bincount(d.y_train).tolist() == [5923, 6742, 5958, 6131, 5842,
                                               5421, 5918, 6265, 5851, 5949]
    assert np.bincount(d.y_test).tolist() == [980, 1135, 1032, 1010, 982,
                                              892, 958, 1028, 974, 1009]


def test_real_mnist_raw_idx_pixel_sum():
    raw = read_idx(real_dir("mnist") / "mnist" / "train-images-idx3-ubyte.gz", ndim=3)
    assert raw.shape == (60000, 28, 28) and raw.dtype == np.uint8
    assert raw.sum(dtype=np.int64) == 1_567_298_545


def test_real_fashion_mnist_matches_readme_sanity_values():
    d = ds.load_dataset("fashion-mnist", real_dir("fashion-mnist"))
    assert d.X_train.shape == (60000, 784) and d.X_test.shape == (10000, 784)
    assert np.round(d.X_train * 255).sum(dtype=np.int64) == 3_431_114_169
    assert np.round(d.X_test * 255).sum(dtype=np.int64) == 573_469_082
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10


def test_real_binarized_mnist_matches_readme_sanity_values():
    root = real_dir("binarized-mnist")
    d = ds.load_dataset("binarized-mnist", root)
    assert d.X_train.shape == (50000, 784) and d.X_test.shape == (10000, 784)
    assert d.binary and d.y_train is None and d.X_train.dtype == np.float32
    assert np.isin(d.X_train, (0, 1)).all()
    assert d.X_train.sum(dtype=np.int64) == 5_118_041
    assert d.X_test.sum(dtype=np.int64) == 1_038_896
    valid = ds.load_binarized_mnist(root, "valid")
    assert valid.shape == (10000, 784) and valid.sum(dtype=np.int64) == 1_028_036


def test_real_frey_face_matches_readme_and_scipy():
    root = real_dir("frey-face")
    d = ds.load_dataset("frey-face", root)
    X = np.vstack([d.X_train, d.X_test])
    assert X.shape == (1965, 560) and d.image_shape == (28, 20)
    assert d.X_test.shape == (196, 560)  # the last 10% of the frames
    assert np.round(X * 255).sum(dtype=np.int64) == 169_968_741
    ff = read_mat(root / "frey-face" / "frey_rawface.mat")["ff"]
    assert ff.dtype == np.uint8 and ff.shape == (560, 1965)
    # Each column is one image stored row-major: the first test image is column 1769.
    assert np.array_equal(np.round(d.X_test[0] * 255).reshape(28, 20), ff[:, 1769].reshape(28, 20))


# --------------------------------------------------------------------------
# digits (bundled with scikit-learn)


def test_digits_fixed_split():
    d = ds.load_dataset("digits")
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    assert d.X_train.dtype == np.float32 and d.image_shape == (8, 8)
    X = np.vstack([d.X_train, d.X_test])
    assert X.min() == 0 and X.max() == 1 and np.array_equal(X * 16, np.round(X * 16))
    # Pinned so that test scores stay comparable across runs and NumPy versions.
    assert d.y_test[:12].tolist() == [2, 2, 3, 0, 8, 8, 7, 8, 3, 4, 0, 2]
    assert int(d.y_test.sum()) == 1662
    again = ds.load_dataset("DIGITS")
    assert np.array_equal(again.X_test, d.X_test) and np.array_equal(again.y_train, d.y_train)


# --------------------------------------------------------------------------
# IDX data sets (mnist, fashion-mnist)


def test_mnist_from_small_idx_files(tmp_path):
    written = write_fake_mnist(tmp_path / "mnist")
    d = ds.load_dataset("mnist", tmp_path)
    images, labels = written["train"]
    assert d.X_train.shape == (30, 784) and d.X_test.shape == (10, 784)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert np.array_equal(np.round(d.X_train * 255), images.reshape(30, -1))
    assert np.array_equal(d.y_train, labels)
    assert np.array_equal(d.y_test, written["t10k"][1])


def test_unzipped_idx_files_are_accepted(tmp_path):
    folder = tmp_path / "fashion-mnist"
    written = write_fake_mnist(folder)
    for p in folder.iterdir():
        p.with_suffix("").write_bytes(gzip.decompress(p.read_bytes()))
        p.unlink()
    d = ds.load_dataset("fashion-mnist", tmp_path)
    assert np.array_equal(d.y_test, written["t10k"][1])


def test_mnist_with_zero_test_images_names_the_file(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_test=0)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: holds no data"):
        ds.load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("bad", ["image_size", "label_count", "label_value"])
def test_mnist_inconsistent_files(tmp_path, bad):
    folder = tmp_path / "mnist"
    write_fake_mnist(folder)
    if bad == "image_size":
        write(folder / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((10, 27, 28))))
    elif bad == "label_count":
        write(folder / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(9)))
    else:
        write(folder / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.full(10, 10)))
    target = "images" if bad == "image_size" else "labels"
    with pytest.raises(DataError, match=f"t10k-{target}-idx"):
        ds.load_dataset("mnist", tmp_path)


# --------------------------------------------------------------------------
# binarized-mnist (.amat)


def test_binarized_mnist_from_small_files(tmp_path):
    rng = np.random.default_rng(3)
    splits = {s: rng.integers(0, 2, (n, 784)) for s, n in (("train", 6), ("valid", 3), ("test", 2))}
    for s, bits in splits.items():
        write(tmp_path / "binarized-mnist" / f"binarized_mnist_{s}.amat.gz", amat_bytes(bits))
    d = ds.load_dataset("binarized-mnist", tmp_path)
    assert d.binary and d.image_shape == (28, 28) and d.y_train is None
    assert np.array_equal(d.X_train, splits["train"]) and np.array_equal(d.X_test, splits["test"])
    assert np.array_equal(ds.load_binarized_mnist(tmp_path, "valid"), splits["valid"])
    with pytest.raises(ValueError, match="split"):
        ds.load_binarized_mnist(tmp_path, "validation")


# --------------------------------------------------------------------------
# frey-face (MAT-file)


def write_frey(folder, ff, monkeypatch):
    """Write ``ff`` as a small frey_rawface.mat and make its md5 the expected one."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"ff": ff})
    write(folder / "frey-face" / "frey_rawface.mat", buf.getvalue())
    monkeypatch.setitem(ds.MD5SUMS["frey-face"], "frey_rawface.mat", md5(buf.getvalue()))
    return buf.getvalue()


def test_frey_face_from_small_mat_file(tmp_path, monkeypatch):
    ff = np.random.default_rng(5).integers(0, 256, (560, 30), dtype=np.uint8)
    write_frey(tmp_path, ff, monkeypatch)
    d = ds.load_dataset("frey-face", tmp_path)
    assert d.X_train.shape == (27, 560) and d.X_test.shape == (3, 560)
    assert np.array_equal(np.round(d.X_test * 255), ff[:, 27:].T)
    write_frey(tmp_path, ff.astype(float), monkeypatch)
    with pytest.raises(DataError, match="'ff' is float64"):
        ds.load_dataset("frey-face", tmp_path)
    # Fewer than 20 frames still leave two for the test set (the last).
    write_frey(tmp_path, ff[:, :5], monkeypatch)
    d = ds.load_dataset("frey-face", tmp_path)
    assert len(d.X_train) == 3 and np.array_equal(np.round(d.X_test * 255), ff[:, 3:5].T)
    write_frey(tmp_path, ff[:, :3], monkeypatch)
    with pytest.raises(DataError, match=r"frey_rawface.mat: 3 image\(s\) are too few"):
        ds.load_dataset("frey-face", tmp_path)


def test_frey_face_file_not_as_published_is_not_parsed(tmp_path, monkeypatch):
    # SciPy's MAT reader dies of a segmentation fault on this file (a data element
    # of type 0, scipy PR 25349): the md5 check must refuse it before any parsing.
    good = write_frey(tmp_path, np.ones((560, 3), np.uint8), monkeypatch)
    tag = len(good) - 8 - 560 * 3  # the tag of ff's values, the last element
    path = write(tmp_path / "frey-face" / "frey_rawface.mat",
                 good[:tag] + b"\0\0\0\0" + good[tag + 4:])

    def parse(_):
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(ds, "read_mat", parse)
    with pytest.raises(DataError, match=f"{path}: md5 [0-9a-f]{{32}}, expected .*not the publ"):
        ds.load_dataset("frey-face", tmp_path)


# --------------------------------------------------------------------------
# .npy / .npz / .csv files


def assert_rows_kept(d, X):
    got = np.vstack([d.X_train, d.X_test])
    assert got.dtype == np.float32 and len(d.X_test) == round(0.2 * len(X))
    assert np.array_equal(np.sort(got, axis=0), np.sort(X.astype(np.float32), axis=0))


def test_npy_file_values_kept_and_split_fixed(tmp_path):
    X = np.random.default_rng(6).normal(scale=3, size=(50, 4))
    np.save(tmp_path / "x.npy", X)
    d = ds.load_dataset(tmp_path / "x.npy")
    assert_rows_kept(d, X)
    assert d.X_train.max() > 1 and d.X_train.min() < 0  # not rescaled
    assert d.y_train is None and d.image_shape is None and not d.binary
    again = ds.load_dataset(str(tmp_path / "x.npy"))
    assert np.array_equal(again.X_test, d.X_test)


def test_npz_with_labels(tmp_path):
    X = np.random.default_rng(7).integers(0, 2, (40, 3))
    y = np.arange(40)
    np.savez(tmp_path / "d.npz", X=X, y=y, other=np.zeros(2))
    d = ds.load_dataset(tmp_path / "d.npz")
    assert d.binary and d.y_train.dtype == np.int64
    assert_rows_kept(d, X)
    assert np.array_equal(d.X_test, X[d.y_test].astype(np.float32))  # labels follow rows


def test_npz_single_array_of_any_name(tmp_path):
    X = np.linspace(0, 1, 30).reshape(10, 3)
    np.savez_compressed(tmp_path / "d.npz", data=X)
    assert_rows_kept(ds.load_dataset(tmp_path / "d.npz"), X)


def test_three_d_array_file_is_images(tmp_path):
    images = np.random.default_rng(0).random((10, 3, 5))
    np.savez(tmp_path / "i.npz", X=images, y=np.arange(10) % 2)
    d = ds.load_dataset(tmp_path / "i.npz")
    assert d.image_shape == (3, 5) and d.X_train.shape[1] == 15
    # Each row is one image, flattened row by row, with its own label.
    flat = images.reshape(10, 15).astype(np.float32)
    for X, y in ((d.X_train, d.y_train), (d.X_test, d.y_test)):
        rows = [int(np.flatnonzero((flat == x).all(axis=1))[0]) for x in X]
        assert list(y) == [r % 2 for r in rows]


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p / "f.npz", a=np.ones((3, 2)), b=np.ones((3, 2))), "expected one named 'X'"),
    (lambda p: np.savez(p / "f.npz", X=np.array([[1, None]], dtype=object)), "cannot read"),
    (lambda p: np.save(p / "f.npy", np.array([[1, "a"]], dtype=object)), "cannot read"),
    (lambda p: np.save(p / "f.npy", np.ones(5)), "must be 2-D .* or 3-D"),
    (lambda p: np.save(p / "f.npy", np.ones((3, 2, 2, 2))), r"got shape \(3, 2, 2, 2\)"),
    (lambda p: np.save(p / "f.npy", np.ones((3, 0, 4))), "too small"),
    (lambda p: np.save(p / "f.npy", np.ones((0, 5))), "too small"),
    (lambda p: np.save(p / "f.npy", np.ones((1, 5))), r"1 row\(s\) are too few: need 4 or more"),
    (lambda p: np.save(p / "f.npy", np.ones((3, 5))), r"3 row\(s\) are too few: need 4 or more"),
    (lambda p: np.save(p / "f.npy", np.array([["a", "b"], ["c", "d"]])), "must be numeric"),
    (lambda p: np.save(p / "f.npy", np.array([[1.0, np.inf], [0, 0]])), "NaN or infinite"),
    (lambda p: np.savez(p / "f.npz", X=np.ones((3, 2)), y=[0.5, 1, 2]), "integer class labels"),
    (lambda p: np.savez(p / "f.npz", X=np.ones((3, 2)), y=[0, 1]), r"shape \(3,\)"),
    (lambda p: (p / "f.npy").write_bytes(b"not numpy"), "not a .npy file"),
    (lambda p: (p / "f.npz").write_bytes(b"not numpy"), "not a .npz file"),
    (lambda p: np.savez(p / "f.npy", X=np.ones((3, 2))) or (p / "f.npy.npz").rename(p / "f.npy"),
     "not a .npy file"),
    (lambda p: np.save(p / "f.npy", np.ones((3, 2))) or (p / "f.npy").rename(p / "f.npz"),
     "not a .npz file"),
])
def test_bad_array_files(tmp_path, make, message):
    make(tmp_path)
    (path,) = tmp_path.iterdir()
    with pytest.raises(DataError, match=f"{path.name}: .*{message}"):
        ds.load_dataset(path)


@pytest.mark.parametrize("name, write", [
    ("huge.npy", lambda path: np.save(path, np.full((20, 4), 1e300))),
    ("huge.csv", lambda path: path.write_text("\n".join(["1e300,2,3,4"] * 20))),
    ("inf.csv", lambda path: path.write_text("\n".join(["1e400,2,3,4"] * 20))),
])
def test_values_too_large_are_one_error_and_no_warning(tmp_path, name, write, capsys):
    write(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a NumPy RuntimeWarning would fail here
        with pytest.raises(DataError, match=f"{name}: X has (values too large for float32 "
                                            f"\\(largest magnitude 1e\\+300\\)|NaN or infinite)"):
            ds.load_dataset(tmp_path / name)
    assert cli.main(["train", "--dataset", str(tmp_path / name), "--out",
                     str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("npvae: error: ")


def npy_header(shape, descr="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def write_zip(path, member, data):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)


TERABYTES = (1 << 20, 1 << 19)  # 4 TiB of float64


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "f.npy").write_bytes(npy_header(TERABYTES) + bytes(64)),
     r"f.npy: truncated or corrupt: its header promises an array of shape \(1048576, 524288\) "
     r"and dtype float64 \(4398046511104 bytes\), but the file holds 64 bytes of data"),
    (lambda p: (p / "f.npy").write_bytes(npy_header((10, 3)) + bytes(8 * 29)),
     r"f.npy: truncated or corrupt: .*\(240 bytes\), but the file holds 232"),
    (lambda p: write_zip(p / "f.npz", "X.npy", npy_header(TERABYTES)),
     r"f.npz \(array 'X'\): truncated or corrupt: .*but the file holds 0 bytes"),
    (lambda p: write_zip(p / "f.npz", "X", b"1234"),
     r"f.npz: 'X' is not an .npy array in the archive"),
])
def test_array_file_promising_more_than_it_holds(tmp_path, make, message):
    make(tmp_path)
    (path,) = tmp_path.iterdir()
    with pytest.raises(DataError, match=message):
        ds.load_dataset(path)


def _damaged_npz(path, damage):
    """A compressed .npz of X, then damaged: cut in half, one byte of its data
    flipped, an unknown compression method or the encrypted flag set (in the
    local header at offset 8/6 and the central directory at 10/8)."""
    np.savez_compressed(path, X=np.random.default_rng(0).random((50, 16)))
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    if damage == "truncated":
        del data[len(data) // 2:]
    elif damage == "crc":
        data[local + 60] ^= 0xFF
    elif damage == "method":
        data[local + 8] = data[central + 10] = 99
    else:
        data[local + 6] |= 1
        data[central + 8] |= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "crc", "method", "encrypted"])
def test_a_damaged_npz_file_is_one_error_naming_it(tmp_path, capsys, damage):
    _damaged_npz(tmp_path / "f.npz", damage)
    with pytest.raises(DataError, match="f.npz: cannot read"):
        ds.load_dataset(tmp_path / "f.npz")
    assert cli.main(["train", "--dataset", str(tmp_path / "f.npz"), "--out",
                     str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npvae: error: ") and err.count("\n") == 1 and "f.npz" in err


@pytest.mark.parametrize("bom", ["", "\ufeff"])  # a UTF-8 byte-order mark, as Excel writes
@pytest.mark.parametrize("header", ["", "a,b,c\n"])
def test_csv(tmp_path, header, bom):
    X = np.arange(30, dtype=float).reshape(10, 3) / 4
    text = bom + header + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X)
    (tmp_path / "d.csv").write_text(text, encoding="utf-8")
    d = ds.load_dataset(tmp_path / "d.csv")
    assert_rows_kept(d, X)
    assert d.y_train is None


@pytest.mark.parametrize("text, message", [
    ("1,2\nnan,3\n", "NaN or infinite"),
    ("1,2\n3,x\n", "cannot read"),
    ("1,2\n3\n", "cannot read"),
    ("", "too small"),
    ("a,b\n", "too small"),
])
def test_bad_csv(tmp_path, text, message):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataError, match=f"d.csv: .*{message}"):
        ds.load_dataset(tmp_path / "d.csv")


@pytest.mark.parametrize("n, n_test", [(4, 2), (7, 2), (8, 2), (10, 2), (13, 3)])
def test_small_files_keep_two_test_rows_and_two_to_split(tmp_path, n, n_test):
    np.save(tmp_path / "x.npy", np.arange(2.0 * n).reshape(n, 2))
    d = ds.load_dataset(tmp_path / "x.npy")
    assert len(d.X_test) == n_test and len(d.X_train) == n - n_test
    X_tr, X_val, _, _ = ds.train_val_split(d.X_train, None, 0.1, 0)  # as the CLI splits it
    assert len(X_tr) >= 1 and len(X_val) >= 1


def test_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        ds.load_dataset("cifar")
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        ds.load_dataset(tmp_path / "nope.npy")


def test_dataset_checks_consistency():
    with pytest.raises(ValueError, match="image_shape"):
        ds.Dataset("t", np.zeros((2, 6)), None, np.zeros((1, 6)), None, (2, 2), False)
    with pytest.raises(ValueError, match="inconsistent X shapes"):
        ds.Dataset("t", np.zeros((2, 6)), None, np.zeros((1, 5)), None, None, False)
    for n_train, n_test in ((1, 1), (2, 0)):
        with pytest.raises(ValueError, match=f"t: {n_train} training and {n_test} test samples"):
            ds.Dataset("t", np.zeros((n_train, 6)), None, np.zeros((n_test, 6)), None, None, False)


# --------------------------------------------------------------------------
# Missing files, data folder, downloads


def test_missing_files_message(tmp_path):
    with pytest.raises(MissingDataError) as info:
        ds.load_dataset("fashion-mnist", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "fashion-mnist") in message
    for name in ds.MD5SUMS["fashion-mnist"]:
        assert name in message
    assert "download=True" in message and "--download" in message and "\n" not in message


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("NPVAE_DATA_DIR", str(tmp_path / "env"))
    assert ds.resolve_data_dir() == tmp_path / "env"
    assert ds.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("NPVAE_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ds.resolve_data_dir() == tmp_path / "home" / ".npvae" / "data"
    write_fake_mnist(tmp_path / "env" / "mnist", n_train=3, n_test=2)
    monkeypatch.setenv("NPVAE_DATA_DIR", str(tmp_path / "env"))
    assert ds.load_dataset("mnist").X_train.shape == (3, 784)


def test_data_dir_may_be_the_data_sets_own_folder(tmp_path, monkeypatch):
    written = write_fake_mnist(tmp_path / "data" / "mnist", n_train=5, n_test=3)
    for data_dir in (tmp_path / "data", tmp_path / "data" / "mnist", str(tmp_path / "data/mnist/")):
        d = ds.load_dataset("mnist", data_dir)
        assert np.array_equal(d.y_test, written["t10k"][1]), data_dir
        assert ds.resolve_data_dir(data_dir, "mnist") == tmp_path / "data" / "mnist"
    monkeypatch.setenv("NPVAE_DATA_DIR", str(tmp_path / "data" / "mnist"))
    assert ds.load_dataset("mnist").X_train.shape == (5, 784)
    # Another data set's folder is not taken for this one's.
    with pytest.raises(MissingDataError, match=str(tmp_path / "data" / "mnist" / "fashion-mnist")):
        ds.load_dataset("fashion-mnist", tmp_path / "data" / "mnist")
    # A sub-folder of the same name wins over the folder itself.
    nested = write_fake_mnist(tmp_path / "data" / "mnist" / "mnist", n_train=4, n_test=2)
    assert np.array_equal(ds.load_dataset("mnist", tmp_path / "data" / "mnist").y_test,
                          nested["t10k"][1])


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving tmp_path/mirror; yields (root, url)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "NPVAE_DATA_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "mirror"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


class TrickleHandler(http.server.BaseHTTPRequestHandler):
    """Promises 1000 bytes, then sends one every 0.1 s: a mirror that never quite
    stalls. With ``stall`` it sends its headers, then nothing."""
    stop = threading.Event()
    stall = False

    def do_GET(self):
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n")
        self.wfile.flush()
        try:
            for _ in range(1000):
                if self.stop.wait(10 if self.stall else 0.1):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def trickling_server(tmp_path, monkeypatch):
    """A local mirror that trickles; yields its URL."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "NPVAE_DATA_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    TrickleHandler.stop.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    TrickleHandler.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_a_silent_mirror_times_out_and_the_next_is_tried(tmp_path, server, trickling_server,
                                                         monkeypatch):
    root, url = server
    ff = serve_frey(root, monkeypatch)
    monkeypatch.setattr(TrickleHandler, "stall", True)
    monkeypatch.setattr(ds, "DOWNLOAD_TIMEOUT", 0.5)
    monkeypatch.setitem(ds.MIRRORS, "frey-face", (f"{trickling_server}/a/", f"{url}/frey-face/"))
    start = time.monotonic()
    d = ds.load_dataset("frey-face", tmp_path, download=True)
    assert np.array_equal(np.round(d.X_test * 255), ff[:, 18:].T)
    assert time.monotonic() - start < 5
    monkeypatch.setitem(ds.MIRRORS, "frey-face", (f"{trickling_server}/a/",))
    with pytest.raises(DataError, match=rf"could not download frey-face/frey_rawface.mat: "
                                        rf"{trickling_server}/a/frey_rawface.mat: .*timed out"):
        ds.download("frey-face", tmp_path / "other")
    assert names(tmp_path / "other" / "frey-face") == []  # no .part file left


def test_md5sums_are_read_from_the_registry_installed_with_the_package():
    """MD5SUMS comes from registry.txt beside the module, which setup.cfg installs."""
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[2] / "setup.cfg")
    assert "registry.txt" in setup["options.package_data"]["npvae.app"].split()
    assert {name: len(files) for name, files in ds.MD5SUMS.items()} == {
        "mnist": 4, "fashion-mnist": 4, "binarized-mnist": 3, "frey-face": 1}
    assert all(re.fullmatch("[0-9a-f]{32}", md5)
               for files in ds.MD5SUMS.values() for md5 in files.values())
    # The IDX loader reads the training images and labels, then the test ones.
    assert list(ds.MD5SUMS["fashion-mnist"]) == [
        f"{part}-{kind}-idx{ndim}-ubyte.gz" for part in ("train", "t10k")
        for kind, ndim in (("images", 3), ("labels", 1))]
    assert ds.MD5SUMS["frey-face"]["frey_rawface.mat"] == "5aeb024d42b8a6091f30e5eb18c8a48d"


def serve_frey(root, monkeypatch, n=20):
    ff = np.random.default_rng(8).integers(0, 256, (560, n), dtype=np.uint8)
    write_frey(root, ff, monkeypatch)
    return ff


def test_download_good_file_lands(tmp_path, server, monkeypatch):
    root, url = server
    ff = serve_frey(root, monkeypatch)
    data = tmp_path / "data"
    d = ds.load_dataset("frey-face", data, download=True, mirror=url)
    assert np.array_equal(np.round(d.X_test * 255), ff[:, 18:].T)
    # The lock file stays (see test_download_waits_for_a_download_in_progress).
    assert sorted(p.name for p in (data / "frey-face").iterdir()) == [LOCK, "frey_rawface.mat"]
    # Present now: loads without downloading, even with the server's file gone.
    (root / "frey-face" / "frey_rawface.mat").unlink()
    assert ds.load_dataset("frey-face", data).X_train.shape == (18, 560)


def test_without_ssl_npvae_imports_and_downloads_over_http(tmp_path, server, monkeypatch):
    # A Python built without ssl (Pyodide's default) has no HTTPS classes in the stdlib.
    root, url = server
    serve_frey(root, monkeypatch)
    code = f"""
import sys; sys.modules["ssl"] = None     # import ssl now fails, as in such a Python
from npvae.app import cli, datasets
datasets.MD5SUMS["frey-face"] = {dict(ds.MD5SUMS["frey-face"])!r}
print(datasets.load_dataset("frey-face", {str(tmp_path / "a")!r}, download=True,
                            mirror={url!r}).X_train.shape)
try:
    datasets.download("frey-face", {str(tmp_path / "b")!r}, mirror="https://127.0.0.1:9/")
except datasets.DataError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    shape, error = out.stdout.splitlines()
    assert shape == "(18, 560)"
    assert error == ("could not download frey-face/frey_rawface.mat: "
                     "https://127.0.0.1:9/frey-face/frey_rawface.mat: Can't connect to HTTPS "
                     "URL because the SSL module is not available.")
    assert [p.name for p in (tmp_path / "b" / "frey-face").iterdir()] == [LOCK]  # no .part


def test_a_symlink_in_place_of_the_lock_file_is_refused(tmp_path, server, monkeypatch):
    root, url = server
    serve_frey(root, monkeypatch)
    (tmp_path / "frey-face").mkdir()
    (tmp_path / "frey-face" / LOCK).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match=f"{re.escape(str(tmp_path / 'frey-face' / LOCK))} is a "
                                        "symbolic link, not npvae's lock file"):
        ds.download("frey-face", tmp_path, mirror=url)
    assert not (tmp_path / "elsewhere").exists()


def test_download_bad_md5_leaves_nothing(tmp_path, server, monkeypatch):
    root, url = server
    serve_frey(root, monkeypatch)
    monkeypatch.setitem(ds.MD5SUMS["frey-face"], "frey_rawface.mat", "0" * 32)
    with pytest.raises(DataError, match=r"frey-face/frey_rawface.mat: .*md5 [0-9a-f]{32}, expected 0{32}"):
        ds.load_dataset("frey-face", tmp_path / "data", download=True, mirror=url)
    assert names(tmp_path / "data" / "frey-face") == []


def test_download_falls_back_to_next_mirror(tmp_path, server, monkeypatch):
    root, url = server
    serve_frey(root, monkeypatch)
    monkeypatch.setitem(ds.MIRRORS, "frey-face", (f"{url}/missing/", f"{url}/frey-face/"))
    paths = ds.download("frey-face", tmp_path / "data")
    assert paths == [tmp_path / "data" / "frey-face" / "frey_rawface.mat"]
    monkeypatch.setitem(ds.MIRRORS, "frey-face", (f"{url}/missing/",))
    with pytest.raises(DataError, match="404"):
        ds.download("frey-face", tmp_path / "other")
    assert names(tmp_path / "other" / "frey-face") == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_download_onto_a_full_disk_names_the_path(tmp_path, server, monkeypatch, code):
    root, url = server
    serve_frey(root, monkeypatch)

    class FullDisk(io.FileIO):
        def write(self, b):
            raise OSError(code, os.strerror(code))

    # pooch's downloader opens the temporary file by its name.
    monkeypatch.setattr(pooch.downloaders, "open", lambda path, mode: FullDisk(path, "wb"),
                        raising=False)
    target = tmp_path / "data" / "frey-face" / "frey_rawface.mat"
    with pytest.raises(OSError, match=f"cannot save {url}/frey-face/frey_rawface.mat: "
                                      f"{os.strerror(code)}: '{target}'") as info:
        ds.download("frey-face", tmp_path / "data", mirror=url)
    assert info.value.errno == code
    assert names(target.parent) == []  # the partial file is gone


def test_download_idx_set_through_env_mirror(tmp_path, server, monkeypatch):
    root, url = server
    written = write_fake_mnist(root / "mnist", n_train=4, n_test=3)
    for p in (root / "mnist").iterdir():
        monkeypatch.setitem(ds.MD5SUMS["mnist"], p.name, md5(p.read_bytes()))
    # Pretend one file is already here: only the missing ones are fetched.
    present = tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    write(present, (root / "mnist" / present.name).read_bytes(), gz=False)
    monkeypatch.setenv("NPVAE_DATA_MIRROR", url + "/")
    d = ds.load_dataset("mnist", tmp_path / "data", download=True)
    assert np.array_equal(d.y_train, written["train"][1])
    assert names(present.parent) == sorted(ds.MD5SUMS["mnist"])


def make_part(folder, fname="frey_rawface.mat"):
    """A temporary file named as a download of ``fname`` names its own."""
    fd, path = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
    os.close(fd)
    return Path(path)


def killed_download(data_dir, url):
    """Download frey-face from ``url`` in another process, SIGKILL it once its
    .part file exists, and return that file."""
    code = f"from npvae.app import datasets; datasets.download('frey-face', {str(data_dir)!r}, " \
           f"mirror={url!r})"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        give_up = time.monotonic() + 60
        while not list((data_dir / "frey-face").glob("*.part")) and time.monotonic() < give_up:
            assert proc.poll() is None, "the download ended"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    (part,) = (data_dir / "frey-face").glob("*.part")
    return part


def test_download_removes_the_parts_killed_downloads_left(tmp_path, server, trickling_server,
                                                          monkeypatch):
    root, url = server
    serve_frey(root, monkeypatch)
    folder = tmp_path / "data" / "frey-face"
    stale = [killed_download(tmp_path / "data", trickling_server), make_part(folder)]
    # Nothing else goes: other names, a folder, a symlink, or what it points to.
    others = [".frey_rawface.mat.part", "frey_rawface.mat.abcd1234.part",
              ".frey_rawface.mat.abcd12345.part", ".frey_rawface.mat.ABCD1234.part",
              ".frey_rawface.mat.abcd1234.part.keep", ".frey_rawface.abcd1234.part"]
    for name in others:
        (folder / name).write_bytes(b"mine")
    (folder / ".frey_rawface.mat.dir_1234.part").mkdir()
    mine = write(tmp_path / "mine.txt", b"mine")
    (folder / ".frey_rawface.mat.link1234.part").symlink_to(mine)
    ds.download("frey-face", tmp_path / "data", mirror=url)
    assert not any(p.exists() for p in stale)
    assert names(folder) == sorted(others + [".frey_rawface.mat.dir_1234.part",
                                             ".frey_rawface.mat.link1234.part", "frey_rawface.mat"])
    assert (folder / ".frey_rawface.mat.link1234.part").is_symlink()
    assert mine.read_bytes() == b"mine"


def test_download_waits_for_a_download_in_progress(tmp_path, server, monkeypatch):
    # This test plays another process downloading into the same folder: it
    # holds the lock and has a .part file; the file it then delivers is kept.
    fcntl = pytest.importorskip("fcntl")
    root, url = server  # without the file: a download that tried would fail (404)
    folder = tmp_path / "frey-face"
    folder.mkdir()
    warning = re.escape(f"waiting for another process downloading into {folder} "
                        f"(it holds {folder / LOCK})")
    with concurrent.futures.ThreadPoolExecutor(1) as pool, \
            pytest.warns(UserWarning, match=warning):
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT)
        try:  # closing fd releases the lock: the pool's thread ends even if this test fails
            fcntl.flock(fd, fcntl.LOCK_EX)
            live = make_part(folder)
            waiting = pool.submit(ds.download, "frey-face", tmp_path, mirror=url)
            time.sleep(0.5)
            assert not waiting.done() and live.exists()
            live.write_bytes(b"frey")
            os.replace(live, folder / "frey_rawface.mat")
        finally:
            os.close(fd)
        assert waiting.result(timeout=30) == [folder / "frey_rawface.mat"]
    assert (folder / "frey_rawface.mat").read_bytes() == b"frey"


def test_download_of_present_files_writes_nothing(tmp_path):
    # A read-only shared data folder must do: no lock file when nothing is missing.
    folder = tmp_path / "frey-face"
    write(folder / "frey_rawface.mat", b"frey")
    assert ds.download("frey-face", tmp_path) == [folder / "frey_rawface.mat"]
    assert [p.name for p in folder.iterdir()] == ["frey_rawface.mat"]


# --------------------------------------------------------------------------
# train_val_split and binarize


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), frac=st.floats(0.01, 0.99), seed=st.integers(0, 2**32 - 1))
def test_train_val_split_partitions(n, frac, seed):
    X = np.arange(n)[:, None] * np.ones((1, 2))
    y = np.arange(n) * 10
    X_tr, X_val, y_tr, y_val = ds.train_val_split(X, y, frac, seed)
    ids = np.concatenate([X_tr[:, 0], X_val[:, 0]])
    assert np.array_equal(np.sort(ids), np.arange(n))  # disjoint and covering
    assert len(X_val) == min(max(round(frac * n), 1), n - 1)
    assert np.array_equal(y_tr, X_tr[:, 0] * 10) and np.array_equal(y_val, X_val[:, 0] * 10)
    again = ds.train_val_split(X, y, frac, np.random.default_rng(seed))
    assert np.array_equal(again[1], X_val)


def test_train_val_split_depends_on_seed():
    X = np.arange(1000)
    a, b, c = (ds.train_val_split(X, val_fraction=0.1, random_state=s)[1] for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert ds.train_val_split(X, random_state=1)[2] is None


@pytest.mark.parametrize("kwargs", [dict(val_fraction=0), dict(val_fraction=1),
                                    dict(y=np.arange(3))])
def test_train_val_split_rejects(kwargs):
    with pytest.raises(ValueError):
        ds.train_val_split(np.zeros((5, 2)), **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binarize_statistics(dtype):
    X = np.random.default_rng(9).random((400, 250)).astype(dtype)
    X[0] = 0
    X[1] = 1
    B = ds.binarize(X, np.random.default_rng(10))
    assert B.dtype == dtype and B.shape == X.shape
    assert set(np.unique(B)) == {0, 1}
    assert (B[0] == 0).all() and (B[1] == 1).all()
    # Var of the mean is sum(p(1-p))/N^2; allow 5 standard deviations.
    sd = np.sqrt((X * (1 - X)).sum()) / X.size
    assert abs(B.mean() - X.mean()) < 5 * sd
    # Per-column frequencies follow the column means, not a global rate.
    cols = np.linspace(0.05, 0.95, 10)
    B = ds.binarize(np.tile(cols, (4000, 1)), np.random.default_rng(11))
    assert np.allclose(B.mean(axis=0), cols, atol=5 * np.sqrt(0.25 / 4000))
    assert np.array_equal(ds.binarize(X, np.random.default_rng(3)),
                          ds.binarize(X, np.random.default_rng(3)))


def test_binarize_rejects_non_probabilities():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ds.binarize(np.array([0.5, 1.5]), rng)
    with pytest.raises(ValueError, match="floating-point"):
        ds.binarize(np.array([0, 1]), rng)

"""Shared test settings.

* hypothesis runs derandomized with no deadline, so CI is deterministic;
* BLAS runs on one thread: the tests' matrices are small, and on a loaded
  machine OpenBLAS's threads made a 10-epoch digits fit take 7 s instead
  of 0.2 s.
"""

import hashlib
import io
import json
from pathlib import Path

import numpy as np  # (loads its BLAS, so that the limit below reaches it)
import pytest
from hypothesis import HealthCheck, settings
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

settings.register_profile(
    "npvae", derandomize=True, deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("npvae")

threadpool_limits(limits=1, user_api="blas")


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 1797 8x8 digits scaled to [0, 1] (X, float64), and
    their labels y."""
    data = load_digits()
    return data.data / 16, data.target


@pytest.fixture(scope="session")
def digits_split(digits):
    """A fixed split of the digits' rows: 1500 to train, 297 to test."""
    X = digits[0]
    perm = np.random.default_rng(0).permutation(X.shape[0])
    return X[perm[:1500]], X[perm[1500:]]


def metadata_of(path):
    """The JSON metadata inside checkpoint ``path`` (an ``.npz``)."""
    with np.load(path, allow_pickle=False) as f:
        return json.loads(f["metadata"].tobytes())


def rewrite_checkpoint(path, arrays=None, meta=None, text=None):
    """Write checkpoint ``path`` again with ``arrays(dict)`` / ``meta(dict)``
    applied to its arrays and metadata (or its metadata replaced by
    ``text``), as someone editing it by hand would."""
    with np.load(path, allow_pickle=False) as f:
        stored = {k: f[k] for k in f.files}
    content = json.loads(stored.pop("metadata").tobytes())
    if arrays is not None:
        arrays(stored)
    if meta is not None:
        meta(content)
    text = json.dumps(content) if text is None else text
    np.savez(path, **stored, metadata=np.frombuffer(text.encode(), np.uint8))


def as_earlier_pair(path):
    """Turn checkpoint ``path`` (``<stem>.npz``) into the ``<stem>.json`` +
    ``<stem>.npz`` pair an earlier npvae wrote: the arrays alone in the
    ``.npz``, the metadata with the format version 1, a description of the
    arrays and their file's SHA-256 in the ``.json``."""
    path = Path(path)
    meta = metadata_of(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "metadata"}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    meta.update(format_version=1,
                arrays={k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                        for k, v in arrays.items()},
                npz_sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return path.with_suffix(".json")


def paired_z_scores(estimate, reference, names=None):
    r"""Per parameter array of ``names`` (default: all of ``estimate``), the
    z-score :math:`\bar d / (s_d / \sqrt B)` of the paired difference
    :math:`d_b = \langle u, g_b - g^{\rm ref}_b\rangle` along a fixed random
    direction :math:`u`, over the :math:`B` batch means stacked on axis 0
    of each array, both estimators run on the same noise."""
    scores = {}
    for name in estimate if names is None else names:
        u = np.random.default_rng(9).standard_normal(estimate[name].shape[1:])
        d = np.tensordot(estimate[name] - reference[name], u, axes=u.ndim)
        scores[name] = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
    return scores

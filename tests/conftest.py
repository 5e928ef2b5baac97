"""Shared test settings.

* hypothesis runs derandomized with no deadline, so CI is deterministic;
* BLAS runs on one thread: the tests' matrices are small, and on a loaded
  machine OpenBLAS's threads made a 10-epoch digits fit take 7 s instead
  of 0.2 s.
"""
import signal
import subprocess
import sys
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


_KILLED_BETWEEN_RENAMES = """
import os, signal, sys
import numpy as np
from npvae.app import files
from npvae.app.checkpoints import load_checkpoint
model = load_checkpoint(sys.argv[1])
model.fit_epoch(np.load(sys.argv[2]))
def replace(src, dst, real=os.replace):
    if str(dst).endswith(".json"):           # the .npz is already in place
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
files.os.replace = replace
model.save(sys.argv[1])
"""


def save_killed_between_renames(stem, X, scratch):
    """In another process: load checkpoint ``stem``, train one epoch on
    ``X`` and save it under the same name, SIGKILLed between renaming the
    new ``.npz`` and the new ``.json`` into place (``X`` goes through
    ``scratch``, a folder)."""
    np.save(Path(scratch) / "X.npy", X)
    done = subprocess.run([sys.executable, "-c", _KILLED_BETWEEN_RENAMES, str(stem),
                           str(Path(scratch) / "X.npy")],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr

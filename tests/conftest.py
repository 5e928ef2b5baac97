"""Shared test settings.

* hypothesis runs derandomized with no deadline, so CI is deterministic;
* BLAS runs on one thread: the tests' matrices are small, and on a loaded
  machine OpenBLAS's threads made a 10-epoch digits fit take 7 s instead
  of 0.2 s.
"""
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

"""Shared test settings.

* hypothesis runs derandomized with no deadline, so CI is deterministic;
* BLAS runs on one thread: the tests' matrices are small, and on a loaded
  machine OpenBLAS's threads made a 10-epoch digits fit take 7 s instead
  of 0.2 s.
"""
import numpy  # noqa: F401  (load its BLAS, so that the limit below reaches it)
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

settings.register_profile(
    "npvae", derandomize=True, deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("npvae")

threadpool_limits(limits=1, user_api="blas")

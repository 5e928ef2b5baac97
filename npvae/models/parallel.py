"""Independent blocks of an evaluation on several cores, with the same
answer on any number of them.

A block's result must depend on the block alone: its rows, and a random
stream derived from the seed and the block's position
(:func:`block_streams`), never from which thread runs it or when.  BLAS
runs on one thread in every block, however many workers there are, so that
its arithmetic is the same on one core as on many; NumPy releases the GIL
in the matrix products and the elementwise work on large arrays, so the
workers are threads.
"""
import numbers
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from joblib import effective_n_jobs
from sklearn.utils import check_scalar
from threadpoolctl import threadpool_limits

from ..core.rng import as_generator

__all__ = ["check_n_jobs", "block_streams", "one_blas_thread", "Progress", "map_blocks"]


def check_n_jobs(n_jobs):
    """The number of workers ``n_jobs`` asks for, in scikit-learn's meaning:
    None is 1, -1 every core, -2 all but one, and so on.

    Raises
    ------
    TypeError
        For a bool, a float, a string or anything else not an integer.
    ValueError
        For 0, which asks for no worker at all.
    """
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, (bool, np.bool_)):
        raise TypeError(f"n_jobs must be None or an integer, got the bool {n_jobs!r}")
    check_scalar(n_jobs, "n_jobs", numbers.Integral)
    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0: None or 1 for one core, -1 for every core "
                         "(-2 for all but one, ...)")
    return effective_n_jobs(int(n_jobs))


def block_streams(random_state, n_blocks):
    """One generator per block, :math:`b = 0, \\dots, n_\\text{blocks}-1`:
    the children of ``random_state``'s seed sequence, as
    ``numpy.random.SeedSequence(seed).spawn(n_blocks)`` makes them for an
    integer seed.  Block ``b``'s noise thus depends on the seed and ``b``
    only.  A Generator or SeedSequence passed in spawns new children at
    every call (``Generator.spawn``'s rule), as drawing from it would move on.
    """
    seeds = as_generator(random_state).bit_generator.seed_seq.spawn(n_blocks)
    return [np.random.default_rng(seed) for seed in seeds]


def one_blas_thread():
    """A context in which BLAS runs on one thread (for the whole process):
    what it computes then does not depend on how many cores it would use."""
    return threadpool_limits(limits=1, user_api="blas")


class Stopped(Exception):
    """Raised in a worker at its next progress report once the evaluation
    is stopping (an error or Ctrl-C elsewhere): the block is abandoned."""


class Progress:
    """Counts the work done across workers and reports it.

    A block calls ``progress(amount)`` after each piece of its work; the
    count and ``callback(done, total)`` run under a lock, so the callback
    sees ``done`` strictly increasing and is never called twice at once
    (it may be called from a worker thread).
    """

    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, total, 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, amount):
        if self.stopping.is_set():
            raise Stopped
        with self._lock:
            self.done += amount
            if self.callback is not None:
                self.callback(self.done, self.total)


def map_blocks(function, n_blocks, n_jobs, progress):
    """``[function(b) for b in range(n_blocks)]`` on ``n_jobs`` threads (the
    calling thread alone when 1), BLAS limited to one thread throughout.

    An exception in a block, or Ctrl-C in the calling thread, stops the
    rest: blocks not started are cancelled, running ones stop at their next
    ``progress`` report, and the exception is raised once every worker has
    ended.
    """
    with one_blas_thread():
        if n_jobs == 1 or n_blocks <= 1:
            return [function(b) for b in range(n_blocks)]
        executor = ThreadPoolExecutor(max_workers=min(n_jobs, n_blocks))
        try:
            futures = [executor.submit(function, b) for b in range(n_blocks)]
            return [future.result() for future in futures]
        finally:
            progress.stopping.set()     # a no-op once every block is done
            executor.shutdown(wait=True, cancel_futures=True)

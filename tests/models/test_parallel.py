"""Tests of npvae.models.parallel: n_jobs, the blocks' streams, the pool."""
import threading
import time

import numpy as np
import pytest
from joblib import cpu_count
from threadpoolctl import threadpool_info

from npvae.models.parallel import Progress, block_streams, check_n_jobs, map_blocks


def blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_n_jobs_has_scikit_learns_meaning():
    assert check_n_jobs(None) == 1
    assert check_n_jobs(1) == 1
    assert check_n_jobs(np.int64(3)) == 3
    assert check_n_jobs(-1) == cpu_count()
    assert check_n_jobs(-2) == max(1, cpu_count() - 1)


@pytest.mark.parametrize("n_jobs, error", [(0, ValueError), (True, TypeError),
                                           (False, TypeError), (np.bool_(True), TypeError),
                                           (1.5, TypeError), (2.0, TypeError),
                                           ("2", TypeError)])
def test_n_jobs_refuses_what_is_not_a_nonzero_integer(n_jobs, error):
    with pytest.raises(error, match="n_jobs"):
        check_n_jobs(n_jobs)


def test_each_block_draws_from_its_child_of_the_seed():
    draws = [g.standard_normal(4) for g in block_streams(7, 3)]
    expected = [np.random.default_rng(s).standard_normal(4)
                for s in np.random.SeedSequence(7).spawn(3)]
    np.testing.assert_array_equal(draws, expected)
    # The first blocks' streams do not depend on how many blocks follow.
    np.testing.assert_array_equal(block_streams(7, 1)[0].standard_normal(4), draws[0])
    assert len({d.tobytes() for d in draws}) == 3
    # A Generator spawns new children at every call, as its draws move on.
    rng = np.random.default_rng(7)
    first = block_streams(rng, 2)[0].standard_normal(4)
    assert not np.array_equal(block_streams(rng, 2)[0].standard_normal(4), first)
    with pytest.raises(TypeError, match="random_state"):
        block_streams("x", 2)


@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_map_blocks_keeps_the_order_and_runs_blas_on_one_thread(n_jobs):
    before = blas_threads()
    seen = []

    def block(b):
        seen.append(threading.get_ident())
        return b * b, blas_threads()

    results = map_blocks(block, 20, n_jobs, Progress(None, 0))
    assert [r for r, _ in results] == [b * b for b in range(20)]
    assert all(set(threads) == {1} for _, threads in results)
    assert blas_threads() == before
    assert len(set(seen)) <= n_jobs
    if n_jobs == 1:
        assert set(seen) == {threading.get_ident()}     # no pool for one job


def test_an_error_in_a_block_stops_the_others():
    started = []

    def block(b):
        started.append(b)
        if b == 0:              # the block the main thread waits for first
            raise ZeroDivisionError("block 0")
        for _ in range(50):
            progress(1)
            threading.Event().wait(0.001)
        return b

    progress = Progress(None, 0)
    with pytest.raises(ZeroDivisionError, match="block 0"):
        map_blocks(block, 100, 2, progress)
    assert len(started) < 10
    assert progress.stopping.is_set()


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_stops_every_worker(n_jobs):
    """Ctrl-C reaches the main thread as a KeyboardInterrupt where it waits
    for a block's result (here block 0's, raised in it once the others are
    under way; the CLI's test sends a real SIGINT): every other worker stops
    at its next report."""
    threads, before = threading.active_count(), blas_threads()
    calls, interrupted = [], threading.Event()

    def callback(done, total):
        calls.append(done)
        if interrupted.is_set():
            # Hold the count's lock until the main thread has seen it, so
            # that no worker reports meanwhile however slowly it wakes.
            progress.stopping.wait(timeout=30)

    progress = Progress(callback, 0)

    def block(b):
        if b == 0:
            deadline = time.monotonic() + 1      # with one job nothing else runs
            while progress.done < 3 and time.monotonic() < deadline:
                threading.Event().wait(0.001)
            interrupted.set()
            raise KeyboardInterrupt
        for _ in range(50):
            threading.Event().wait(0.001)
            progress(1)
        return b

    with pytest.raises(KeyboardInterrupt):
        map_blocks(block, 200, n_jobs, progress)
    # A few reports of block 1, none of the 197 blocks after it.
    assert len(calls) < 20
    assert threading.active_count() == threads
    assert blas_threads() == before


def test_progress_counts_across_threads_one_call_at_a_time():
    calls, inside = [], []

    def callback(done, total):
        inside.append(1)
        assert len(inside) == 1           # never two calls at once
        calls.append((done, total))
        threading.Event().wait(0.0005)
        inside.pop()

    progress = Progress(callback, 400)
    map_blocks(lambda b: [progress(2) for _ in range(10)], 20, 4, progress)
    assert [d for d, _ in calls] == list(range(2, 401, 2))
    assert {t for _, t in calls} == {400}

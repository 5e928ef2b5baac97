"""The importance-weighted estimate of log p(x) on one core and on every
core, against its floor: the decoder's matrix products alone.

``npvae.models.evaluation.importance_weighted_log_likelihood`` sends the n·k
(example, sample) rows through the decoder in blocks of at most
``batch_rows``; everything it does besides the products of the decoder's
Dense layers (drawing ε, biases and activations, the likelihood, the
log-sum-exp) is time above that floor.  In one process and in alternating
rounds, for each model, this times (wall clock):

* ``1 core``: the whole estimate with ``n_jobs=1`` (BLAS on one thread);
* ``all cores``: the same with ``n_jobs=-1``, one block of rows per core,
  each on one BLAS thread (the same numbers bit for bit);
* ``floor 1``: the decoder's products ``h W`` alone on one BLAS thread,
  into preallocated outputs, for exactly the blocks the estimate sent
  through the decoder (recorded from its calls);
* ``floor all``: the same products with BLAS on every core, the best
  that spreading the products alone over the cores could do;
* with ``--rev REV``: the estimate as npvae had it at a git revision
  (imported as ``revisions.py`` does), with BLAS on every core.

Models (random weights: the time does not depend on them, float32):
784-400-20 on MNIST's first n test images (random binary images when MNIST
is not in ``--data-dir``) and 64-128-8 on the digits' test images.
Reported: samples (rows) per second, best of ``--rounds``; the speed-up of
all cores over one; one core's fraction of ``floor 1`` and all cores'
fraction of ``floor all``.  Only ratios within one run compare on a
shared machine.

Usage::

    python benchmarks/evaluation.py [--k 5000] [--n 20] [--rev fe30f97]
    python benchmarks/evaluation.py --smoke      # seconds: that it runs
"""
import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import npvae  # noqa: E402
import npvae.models.evaluation  # noqa: E402
from npvae.app.datasets import MissingDataError, load_dataset  # noqa: E402
from npvae.models.parallel import check_n_jobs  # noqa: E402

MODELS = {"mnist": (784, (400,), 20), "digits": (64, (128,), 8)}


def test_images(name, n, data_dir):
    """The first ``n`` test images of MNIST or the digits, float32 in [0, 1]."""
    try:
        X = load_dataset(name, data_dir=data_dir).X_test[:n]
        return X, name
    except MissingDataError:
        d = MODELS[name][0]
        return (np.random.default_rng(0).random((n, d)) < 0.3).astype(np.float32), "random"


def decoder_blocks(estimate, model, X, k, **kwargs):
    """Rows of every decoder call the estimate makes, in order."""
    blocks, decoder = [], model.decoder_
    for method in ("forward", "predict"):
        if hasattr(decoder, method):
            def recording(z, call=getattr(decoder, method)):
                blocks.append(z.shape[0])
                return call(z)
            setattr(decoder, method, recording)       # on this instance only
    try:
        estimate(model, X, k=k, **kwargs)
    finally:
        for method in ("forward", "predict"):
            decoder.__dict__.pop(method, None)
    return blocks


def floor_operands(model, blocks, rng):
    """``{rows: [(input, W, output), ...]}``: the decoder's products for each
    block size, chained as in its forward pass."""
    weights = [layer.params["W"] for layer in model.decoder_.layers if "W" in layer.params]
    ops = {}
    for rows in set(blocks):
        a = rng.standard_normal((rows, weights[0].shape[0]), dtype=weights[0].dtype)
        ops[rows] = []
        for W in weights:
            out = np.empty((rows, W.shape[1]), dtype=W.dtype)
            ops[rows].append((a, W, out))
            a = out
    return ops


def floor_pass(ops, blocks, threads=None):
    with threadpool_limits(limits=threads, user_api="blas"):
        for rows in blocks:
            for a, W, out in ops[rows]:
                np.matmul(a, W, out=out)


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(args, rev=None):
    rows_out = []
    # Each estimate at its own default block size unless one is given.
    kwargs = {} if args.batch_rows is None else {"batch_rows": args.batch_rows}
    estimate = npvae.models.evaluation.importance_weighted_log_likelihood
    cores = check_n_jobs(-1)
    print(f"float32, k = {args.k}, {cores} cores, samples/s (best of {args.rounds}, wall time)")
    print(f"{'model':7s} {'n':>5s} {'rows/block':>10s} {'1 core':>9s} {'all cores':>9s} "
          f"{'speed-up':>8s} {'floor 1':>9s} {'of it':>6s} {'floor all':>9s} {'of it':>6s}"
          + (f" {args.rev:>9s}" if rev else ""))
    for name in args.models:
        d, hidden, latent = MODELS[name]
        X, source = test_images(name, args.n, args.data_dir)
        model = npvae.VAE(latent_dim=latent, hidden_dims=hidden, dtype="float32",
                          random_state=0).initialize(d)
        blocks = decoder_blocks(estimate, model, X, args.k, **kwargs)
        ops = floor_operands(model, blocks, np.random.default_rng(0))
        runs = {"1 core": lambda: estimate(model, X, k=args.k, n_jobs=1, **kwargs),
                "all cores": lambda: estimate(model, X, k=args.k, n_jobs=-1, **kwargs)}
        runs["floor 1"] = lambda: floor_pass(ops, blocks, threads=1)
        runs["floor all"] = lambda: floor_pass(ops, blocks, threads=cores)
        if rev is not None:
            old = rev[0](latent_dim=latent, hidden_dims=hidden, dtype="float32",
                         random_state=0).initialize(d)
            runs["rev"] = lambda: rev[1](old, X, k=args.k, **kwargs)
        best = dict.fromkeys(runs, np.inf)
        for _ in range(args.rounds):
            for label, run in runs.items():
                best[label] = min(best[label], timed(run))
        speed = {label: sum(blocks) / seconds for label, seconds in best.items()}
        row = {"model": name, "data": source, "n": len(X), "k": args.k, "cores": cores,
               "block": max(blocks), **speed,
               "speedup": speed["all cores"] / speed["1 core"],
               "of_floor_1": speed["1 core"] / speed["floor 1"],
               "of_floor_all": speed["all cores"] / speed["floor all"]}
        rows_out.append(row)
        print(f"{name:7s} {len(X):5d} {max(blocks):10d} {speed['1 core']:9.0f} "
              f"{speed['all cores']:9.0f} {row['speedup']:7.2f}x {speed['floor 1']:9.0f} "
              f"{row['of_floor_1']:6.0%} {speed['floor all']:9.0f} {row['of_floor_all']:6.0%}"
              + (f" {speed['rev']:9.0f}" if rev else ""), flush=True)
    return rows_out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--k", type=int, default=5000, help="importance samples per image")
    p.add_argument("--n", type=int, default=20, help="test images")
    p.add_argument("--batch-rows", type=int, default=None,
                   help="rows per decoder block (default: each estimate's own default)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rev", default=None, help="also time the estimate at this git revision")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--smoke", action="store_true", help="a few seconds: check that it runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.k, args.n, args.rounds = 200, 3, 1
    with tempfile.TemporaryDirectory() as folder:
        rev = None
        if args.rev is not None:
            import revisions
            revisions.import_revision(args.rev, folder)
            try:                        # the layout since the split into core/models/app
                module = importlib.import_module("npvae_at_rev.models.evaluation")
            except ModuleNotFoundError:
                module = importlib.import_module("npvae_at_rev.evaluation")
            rev = (sys.modules["npvae_at_rev"].VAE, module.importance_weighted_log_likelihood)
        return measure(args, rev)


if __name__ == "__main__":
    main()

"""How close the importance-weighted estimate of log p(x) comes to its
floor: the decoder's matrix products alone.

``npvae.models.evaluation.importance_weighted_log_likelihood`` sends the n·k
(example, sample) rows through the decoder in blocks of at most
``batch_rows``; everything it does besides the products of the decoder's
Dense layers (drawing ε, biases and activations, the likelihood, the
log-sum-exp) is time above that floor.  In one process and in alternating
rounds, for each model, this times:

* ``estimate``: the whole estimate on n test images, k samples each;
* ``floor``: the decoder's products ``h W`` alone, into preallocated
  outputs, for exactly the blocks the estimate sent through the decoder
  (recorded from its calls);
* with ``--rev REV``: the same two for the estimate as npvae had it at a git
  revision (imported as ``revisions.py`` does), with its own blocks.

Models (random weights: the time does not depend on them, float32):
784-400-20 on MNIST's first n test images (random binary images when MNIST
is not in ``--data-dir``) and 64-128-8 on the digits' test images.
Reported: samples (rows) per second, best of ``--rounds``, and the
estimate's fraction of its floor.  With ``--threads 1`` the clock is the
process's CPU time, which other load on a shared machine barely moves;
otherwise wall time.

Usage::

    python benchmarks/evaluation.py [--k 5000] [--n 20] [--threads 1] [--rev fe30f97]
    python benchmarks/evaluation.py --smoke      # seconds: that it runs
"""
import argparse
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


def floor_pass(ops, blocks):
    for rows in blocks:
        for a, W, out in ops[rows]:
            np.matmul(a, W, out=out)


def variants(args, rev_package):
    """``[(label, estimate, package)]``: this tree, and the revision's."""
    found = [("this tree", npvae.models.evaluation.importance_weighted_log_likelihood, npvae)]
    if rev_package is not None:
        found.append((args.rev, rev_package.evaluation.importance_weighted_log_likelihood,
                      rev_package))
    return found


def measure(args, rev_package=None, clock=time.perf_counter):
    rows_out = []
    # Each estimate at its own default block size unless one is given.
    kwargs = {} if args.batch_rows is None else {"batch_rows": args.batch_rows}
    print(f"float32, k = {args.k}, samples/s (best of {args.rounds}; "
          f"{'CPU' if clock is time.process_time else 'wall'} time)")
    print(f"{'model':7s} {'npvae':>10s} {'n':>5s} {'rows/block':>10s} {'estimate':>10s} "
          f"{'floor':>10s} {'of floor':>8s}")
    for name in args.models:
        d, hidden, latent = MODELS[name]
        X, source = test_images(name, args.n, args.data_dir)
        rng = np.random.default_rng(0)
        timed = []
        for label, estimate, package in variants(args, rev_package):
            model = package.VAE(latent_dim=latent, hidden_dims=hidden, dtype="float32",
                                random_state=0).initialize(d)
            blocks = decoder_blocks(estimate, model, X, args.k, **kwargs)
            timed.append((label, estimate, model, blocks, floor_operands(model, blocks, rng)))
        best = {}
        for _ in range(args.rounds):
            for label, estimate, model, blocks, ops in timed:
                start = clock()
                estimate(model, X, k=args.k, **kwargs)
                middle = clock()
                floor_pass(ops, blocks)
                end = clock()
                old = best.get(label, (np.inf, np.inf))
                best[label] = (min(old[0], middle - start), min(old[1], end - middle))
        for label, _, _, blocks, _ in timed:
            total = sum(blocks)
            est, flo = total / best[label][0], total / best[label][1]
            row = {"model": name, "data": source, "npvae": label, "n": len(X), "k": args.k,
                   "block": max(blocks), "estimate": est, "floor": flo, "fraction": est / flo}
            rows_out.append(row)
            print(f"{name:7s} {label:>10s} {len(X):5d} {max(blocks):10d} {est:10.0f} "
                  f"{flo:10.0f} {est / flo:8.0%}", flush=True)
    return rows_out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--k", type=int, default=5000, help="importance samples per image")
    p.add_argument("--n", type=int, default=20, help="test images")
    p.add_argument("--batch-rows", type=int, default=None,
                   help="rows per decoder block (default: each estimate's own default)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    p.add_argument("--rev", default=None, help="also time the estimate at this git revision")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--smoke", action="store_true", help="a few seconds: check that it runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.k, args.n, args.rounds = 200, 3, 1
    clock = time.process_time if args.threads == 1 else time.perf_counter
    with threadpool_limits(limits=args.threads, user_api="blas"), \
            tempfile.TemporaryDirectory() as folder:
        rev_package = None
        if args.rev is not None:
            import revisions
            revisions.import_revision(args.rev, folder)
            import npvae_at_rev.evaluation
            rev_package = sys.modules["npvae_at_rev"]
        return measure(args, rev_package, clock)


if __name__ == "__main__":
    main()

"""Training speed of npvae at another git revision against this checkout,
measured in one process.

Two runs of ``throughput.py`` minutes apart differ by 20 % or more on a
shared machine, which hides a change's own effect.  Here the package as it
was at ``--rev`` is exported (``git archive``) into a temporary folder under
the name ``npvae_at_rev`` (its imports are relative, so it runs as it did),
and the two packages train the same model on the same data in alternating
short epochs, ``--rounds`` pairs.  Reported: the best epoch of each and
their ratio.

Usage::

    python benchmarks/revisions.py --rev 256a63d
    python benchmarks/revisions.py --rev HEAD~3 --models digits --batch-sizes 32
"""
import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import npvae  # noqa: E402

MODELS = {"mnist": (784, (400,), 20), "digits": (64, (128,), 8)}


def import_revision(rev, folder):
    """Import ``npvae/`` as it is at ``rev`` under the name ``npvae_at_rev``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "npvae"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        # The "data" filter (refusing links out of the folder) is in
        # Python >= 3.9.17 / 3.10.12 / 3.11.4; older ones extract as before.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(folder, **safe)
    Path(folder, "npvae").rename(Path(folder, "npvae_at_rev"))
    sys.path.insert(0, str(folder))
    import npvae_at_rev
    return npvae_at_rev


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="git revision to compare against")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mnist", "digits"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64, 128, 512])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--n", type=int, default=5000, help="examples per epoch")
    parser.add_argument("--rounds", type=int, default=10, help="alternating epoch pairs")
    args = parser.parse_args(argv)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev],
                         check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as folder:
        old = import_revision(rev, folder)
        print(f"samples/s, {args.dtype}, N = {args.n}, best of {args.rounds} alternating epochs")
        print(f"{'model':7s} {'batch':>5s} {rev:>10s} {'this tree':>10s}  ratio")
        for name in args.models:
            d, hidden, latent = MODELS[name]
            X = (np.random.default_rng(0).random((args.n, d)) < 0.3).astype(args.dtype)
            for bs in args.batch_sizes:
                models = [package.VAE(latent_dim=latent, hidden_dims=hidden, batch_size=bs,
                                      dtype=args.dtype, random_state=0).initialize(d)
                          for package in (old, npvae)]
                for model in models:          # warm-up: allocations, BLAS threads
                    model.fit_epoch(X)
                best = [np.inf, np.inf]
                for _ in range(args.rounds):
                    for i, model in enumerate(models):
                        start = time.perf_counter()
                        model.fit_epoch(X)
                        best[i] = min(best[i], time.perf_counter() - start)
                before, after = args.n / best[0], args.n / best[1]
                print(f"{name:7s} {bs:5d} {before:10.0f} {after:10.0f}  {after / before:.2f}x",
                      flush=True)


if __name__ == "__main__":
    main()

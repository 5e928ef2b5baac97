"""How npvae's training time and memory grow with N, batch size, width and
latent size.

Each sweep varies one quantity from a base configuration (the MNIST-size
VAE, 784-400-20, float32, batch 128, N = 8000) and measures one
``fit_epoch``:

* time per epoch (best of ``--repeats``), expected linear in N;
* peak memory that NumPy allocates beyond the data while the model is
  built and trains one epoch (``tracemalloc`` sees NumPy's allocations),
  expected independent of N: parameters, gradients, Adam's three buffers
  (about five times the parameters) and one batch's activations.

Writes a JSON file and a PNG plot (to ``benchmarks/results/`` by default).

Usage::

    python benchmarks/scaling.py [--quick] [--threads 1] [--out-dir DIR]
"""
import argparse
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from npvae import VAE  # noqa: E402
from npvae.models.saving import atomic_write  # noqa: E402

BASE = {"n": 8000, "batch": 128, "width": 400, "latent": 20}
SWEEPS = {
    "n": [2000, 4000, 8000, 16000, 32000],
    "batch": [16, 32, 64, 128, 256, 512, 1024],
    "width": [50, 100, 200, 400, 800, 1600],
    "latent": [2, 5, 10, 20, 50, 100],
}
N_FEATURES = 784


def measure(n, batch, width, latent, repeats, rng):
    """Seconds per epoch (best of ``repeats``) and the peak bytes NumPy
    allocates beyond the data while building the model and training one
    epoch (parameters, gradients, Adam's state and the step's temporaries)."""
    X = rng.random((n, N_FEATURES), dtype=np.float32)
    tracemalloc.start()
    model = VAE(latent_dim=latent, hidden_dims=(width,), batch_size=batch,
                dtype="float32", random_state=0).initialize(N_FEATURES)
    model.fit_epoch(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.fit_epoch(X)
        best = min(best, time.perf_counter() - t0)
    n_params = sum(p.size for p in model.params_.values())
    return {"seconds": best, "samples_per_s": n / best, "peak_bytes": peak,
            "params": n_params, "param_bytes": 4 * n_params}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(SWEEPS), figsize=(4 * len(SWEEPS), 6.5))
    for j, (key, rows) in enumerate(results.items()):
        x = [r[key] for r in rows]
        axes[0, j].loglog(x, [r["seconds"] for r in rows], "o-")
        axes[0, j].set_title(f"varying {key}")
        axes[0, j].set_ylabel("seconds per epoch")
        axes[1, j].loglog(x, [r["peak_bytes"] / 2**20 for r in rows], "o-",
                          label="peak beyond the data")
        axes[1, j].loglog(x, [r["param_bytes"] / 2**20 for r in rows], "--",
                          label="parameters")
        axes[1, j].set_ylabel("MiB")
        axes[1, j].set_xlabel(key)
        axes[1, j].legend(fontsize=8)
    fig.suptitle(f"npvae float32 VAE 784-width-latent, base {BASE}")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sweeps, one repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="BLAS threads (default: NumPy's)")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    sweeps = SWEEPS
    if args.quick:
        args.repeats = 1
        sweeps = {k: v[:3] for k, v in SWEEPS.items()}
    rng = np.random.default_rng(0)
    results = {}
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for key, values in sweeps.items():
            results[key] = []
            for value in values:
                config = {**BASE, key: value}
                row = {**config, **measure(**config, repeats=args.repeats, rng=rng)}
                results[key].append(row)
                print(f"{key:7}={value:6}  {row['seconds']:8.3f} s/epoch  "
                      f"{row['samples_per_s']:8.0f} samples/s  peak "
                      f"{row['peak_bytes'] / 2**20:7.1f} MiB  (params "
                      f"{row['param_bytes'] / 2**20:5.1f} MiB)", flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = args.out_dir / f"scaling-{stamp}.json"
    text = json.dumps({"base": BASE, "load_average": os.getloadavg(), "results": results},
                      indent=1)
    atomic_write(out, lambda f: f.write(text.encode()))
    png = args.out_dir / f"scaling-{stamp}.png"
    plot(results, png)
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()

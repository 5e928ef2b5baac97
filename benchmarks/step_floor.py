"""How fast could a NumPy training step be?  The step's matrix products
alone, then with Adam, against npvae's whole step and PyTorch's.

In one process and in alternating rounds, each loop runs N / batch steps of:

* ``products``: the step's matrix products (those of ``throughput.py``'s
  roofline, with the same shapes and memory layouts) back to back;
* ``products+adam``: the same, then ``npvae.core.optimizers.Adam`` on a vector
  with the model's number of parameters, as ``fit_epoch`` steps it;
* ``npvae``: ``VAE.fit_epoch``;
* ``torch`` (when installed): the same model in PyTorch (``throughput.py``'s).

Whatever npvae's step does beyond the products and Adam (the loss, the
activations, the gather of the batch) can at most close the gap between
``npvae`` and ``products+adam``; a target above ``products+adam`` cannot be
met by any elementwise code.  Best whole epoch of ``--rounds``, samples/s.

Usage::

    python benchmarks/step_floor.py [--batch-sizes 128 512] [--n 10000] [--rounds 4]
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402
from npvae.core.optimizers import Adam  # noqa: E402


def operands(gemms, dtype, rng):
    """``(a, b, out)`` for every product, laid out as in the step."""
    return [throughput.gemm_operands(*gemm, dtype, rng) for gemm in gemms]


def floor_epoch(ops, steps, adam=None, theta=None, grad=None):
    start = time.perf_counter()
    for _ in range(steps):
        for a, b, out in ops:
            np.matmul(a, b, out=out)
        if adam is not None:
            adam.step({"p": theta}, {"p": grad})
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=list(throughput.MODELS), default="mnist")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[128, 512])
    p.add_argument("--n", type=int, default=10000, help="examples per epoch")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    n_features, hidden, latent = throughput.MODELS[args.model]
    dtype = np.float32
    rng = np.random.default_rng(0)
    X = rng.random((args.n, n_features), dtype=dtype)
    use_torch = not args.no_torch and throughput.have_torch()
    if use_torch:
        import torch
        torch.set_num_threads(throughput.blas_threads())
    print(f"{args.model}, float32, N = {args.n}, best of {args.rounds} epochs; samples/s")
    print(f"{'batch':>5} {'products':>9} {'+adam':>9} {'npvae':>9} {'torch':>9}")
    results = []
    for batch in args.batch_sizes:
        model = throughput.make_npvae(n_features, hidden, latent, batch, "float32")
        model.fit_epoch(X[:max(batch, args.n // 10)])
        ops = operands(throughput.step_gemms(n_features, hidden, latent, batch), dtype, rng)
        theta, grad = np.zeros_like(model.parameters_.theta), np.full_like(model.parameters_.theta, 1e-3)
        adam, steps = Adam(), max(1, args.n // batch)
        loops = {"products": lambda: steps * batch / floor_epoch(ops, steps),
                 "products+adam": lambda: steps * batch / floor_epoch(ops, steps, adam,
                                                                      theta, grad),
                 "npvae": lambda: args.n / timed(model.fit_epoch, X)}
        if use_torch:
            torch_epoch = throughput.make_torch(n_features, hidden, latent, batch, "float32")
            Xt = torch.from_numpy(X)
            torch_epoch(Xt[:max(batch, args.n // 10)])
            loops["torch"] = lambda: args.n / timed(torch_epoch, Xt)
        best = {}
        for _ in range(args.rounds):
            for key, loop in loops.items():
                best[key] = max(best.get(key, 0.0), loop())
        results.append({"batch": batch, **best})
        print(f"{batch:5d} " + " ".join(f"{best[k]:9.0f}" if k in best else f"{'-':>9}"
                                        for k in ("products", "products+adam", "npvae", "torch")),
              flush=True)
    return results


def timed(fn, X):
    start = time.perf_counter()
    fn(X)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

"""What a two-stochastic-layer training step costs against the one-layer
step, and against what their matrix products predict.

Burda et al.'s two architectures on MNIST-sized rows (784 binary pixels,
batch 20 as in the paper): one layer 784-200-200-50 and two layers
784-100-100-100-50-50-50 (docs/math.md §9c), each as the VAE (k = 1) and the
IWAE (k = 5).  For each model the script

* counts the floating-point operations of the step's matrix products (every
  ``Dense`` forward :math:`2 R\\,n_{in} n_{out}`, backward the same for the
  weight gradient and again for the input gradient when it is formed),
  by running one step with ``Dense`` instrumented;
* times whole steps (``forward_backward`` and Adam, as ``fit_epoch`` runs
  them) in alternating rounds in one process, keeping each model's best
  round.

It prints, for each two-layer model against the one-layer model of the same
kind, the measured time ratio, the ratio the products predict, and
measured / predicted: above 1, the two-layer step spends more than its
products' share on everything else (activations, densities, reshapes).
Timings on a shared machine are noisy: compare ratios from one run only.
``--blas-threads 1`` keeps BLAS on one thread (threadpoolctl): on a loaded
machine its threads' waiting for each other swamps the small products.

Usage::

    python benchmarks/two_layer_step.py [--batch-size 20] [--rounds 5] [--steps 200]
    python benchmarks/two_layer_step.py --blas-threads 1
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import npvae  # noqa: E402
from npvae.core import layers  # noqa: E402
from npvae.models.base import Batch  # noqa: E402

D = 784


def models(batch_size):
    common = dict(activation="tanh", batch_size=batch_size, random_state=0, dtype="float32")
    one = dict(latent_dim=50, hidden_dims=(200, 200), **common)
    two = dict(latent_dims=(100, 50), hidden_dims=((100, 100), (50, 50)), **common)
    return {"VAE": (npvae.VAE(**one), npvae.TwoLayerVAE(**two)),
            "IWAE k=5": (npvae.IWAE(k=5, **one), npvae.TwoLayerIWAE(k=5, **two))}


def gemm_flops(model, batch):
    """Floating-point operations of the matrix products of one step."""
    count = [0]
    forward, backward = layers.Dense.forward, layers.Dense.backward

    def counted_forward(self, x):
        count[0] += 2 * x.shape[0] * self.params["W"].size
        return forward(self, x)

    def counted_backward(self, grad_out, input_grad=True):
        count[0] += (2 + 2 * bool(input_grad)) * grad_out.shape[0] * self.params["W"].size
        return backward(self, grad_out, input_grad)
    layers.Dense.forward, layers.Dense.backward = counted_forward, counted_backward
    try:
        model.forward_backward(batch)
    finally:
        layers.Dense.forward, layers.Dense.backward = forward, backward
    return count[0]


def steps_time(model, batches, steps):
    start = time.perf_counter()
    for i in range(steps):
        model.step(batches[i % len(batches)], 1.0, model.optimizer_)
    return (time.perf_counter() - start) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--blas-threads", type=int, help="BLAS threads (default: as configured)")
    args = p.parse_args(argv)
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        return measure(args)


def measure(args):
    rng = np.random.default_rng(0)
    X = (rng.random((8 * args.batch_size, D)) < 0.3).astype(np.float32)
    runs = {}
    for kind, pair in models(args.batch_size).items():
        for model in pair:
            model.initialize(D, X)
            batches = [Batch(X[i:i + args.batch_size], None, model.draw_noise(args.batch_size))
                       for i in range(0, X.shape[0], args.batch_size)]
            runs[kind, model.stochastic_layers] = [model, batches, gemm_flops(model, batches[0]),
                                                   np.inf]
    for _ in range(args.rounds):
        for run in runs.values():
            run[3] = min(run[3], steps_time(run[0], run[1], args.steps))
    print(f"batch {args.batch_size}, best of {args.rounds} rounds of {args.steps} steps, "
          f"BLAS threads {args.blas_threads or 'as configured'}")
    print(f"{'model':<10} {'layers':>6} {'GEMM MFLOP':>10} {'ms/step':>8}")
    for (kind, n_layers), (_, _, flops, seconds) in runs.items():
        print(f"{kind:<10} {n_layers:>6} {flops / 1e6:>10.2f} {1e3 * seconds:>8.3f}")
    ratios = {}
    for kind in models(1):
        one, two = runs[kind, 1], runs[kind, 2]
        measured, predicted = two[3] / one[3], two[2] / one[2]
        ratios[kind] = measured / predicted
        print(f"{kind}: two layers / one layer: measured {measured:.3f}, products predict "
              f"{predicted:.3f}, measured / predicted {measured / predicted:.2f}")
    return ratios


if __name__ == "__main__":
    main()

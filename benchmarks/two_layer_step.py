"""What a two-stochastic-layer training step costs against the one-layer
step, against what their matrix products predict, and where the difference
goes.

Burda et al.'s two architectures on MNIST-sized rows (784 binary pixels,
batch 20 as in the paper): one layer 784-200-200-50 and two layers
784-100-100-100-50-50-50 (docs/math.md §9c), each as the VAE (k = 1) and the
IWAE (k = 5).  The rows are binarized MNIST's first training images when
``--data-dir`` (or ``$NPVAE_DATA_DIR``) holds them, else random pixels
(``--synthetic`` forces these), on which a fresh IWAE's gradients hold more
subnormal numbers (those of codes with a tiny importance weight), where the
processor's arithmetic is many times slower.  For each model the script

* lists the step's matrix products by running one step with ``Dense``
  instrumented, and counts their floating-point operations (every
  ``Dense`` forward :math:`2 R\\,n_{in} n_{out}`, backward the same for the
  weight gradient and again for the input gradient when it is formed);
* times whole steps (``forward_backward`` and Adam, as ``fit_epoch`` runs
  them), each round the same steps from the same state, in alternating
  rounds in one process, keeping each model's best round; in rounds of
  their own, the time inside the ``Dense`` calls (the products in the step,
  with the share of subnormal entries in the gradients they take) and
  inside Adam, the rest being the step's time less both; and the products
  alone, on random operands of the same shapes.

It prints, for each two-layer model against the one-layer model of the same
kind, the measured time ratio, the ratio the products' flops predict, and
measured / predicted: above 1, the two-layer step spends more than its
products' share.  That factor is the product of three: BLAS on these shapes
(the products alone: their time ratio over their flop ratio, the physics
of small matrices), the products in the step (their time ratio there over
alone: the ``Dense`` calls' Python, cache, subnormal numbers), and
everything else (the step's time ratio over the products' in the step:
Adam, which scales with the parameters, and the rest -- activations,
densities, reshapes, Python).
The models start fresh, so the steps are early training's; ``--checkpoints``
times two checkpoints instead (a one-layer and a two-layer model of one
kind, say two reproduction runs' stages), whose trained weights give far
fewer subnormal numbers.
Timings on a shared machine are noisy: compare ratios from one run only.
``--blas-threads 1`` keeps BLAS on one thread (threadpoolctl): on a loaded
machine its threads' waiting for each other swamps the small products.

Usage::

    python benchmarks/two_layer_step.py [--batch-size 20] [--rounds 5] [--steps 200]
    python benchmarks/two_layer_step.py --blas-threads 1 --data-dir /path/to/data
    python benchmarks/two_layer_step.py --checkpoints iwae/stage-2.npz 2l-iwae/stage-2.npz
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import npvae  # noqa: E402
from npvae.app.checkpoints import load_checkpoint  # noqa: E402
from npvae.app.datasets import MissingDataError, load_binarized_mnist  # noqa: E402
from npvae.core import layers  # noqa: E402
from npvae.models.base import Batch  # noqa: E402

D = 784


def models(batch_size):
    common = dict(activation="tanh", batch_size=batch_size, random_state=0, dtype="float32")
    one = dict(latent_dim=50, hidden_dims=(200, 200), **common)
    two = dict(latent_dims=(100, 50), hidden_dims=((100, 100), (50, 50)), **common)
    return {"VAE": (npvae.VAE(**one), npvae.TwoLayerVAE(**two)),
            "IWAE k=5": (npvae.IWAE(k=5, **one), npvae.TwoLayerIWAE(k=5, **two))}


def rows(args):
    """The benchmark's 64 batches of rows and what they are."""
    n = 64 * args.batch_size
    if not args.synthetic:
        try:
            return load_binarized_mnist(args.data_dir)[:n], "binarized MNIST"
        except MissingDataError as error:
            print(f"{error}\n-> random pixels instead")
    rng = np.random.default_rng(0)
    return (rng.random((n, D)) < 0.3).astype(np.float32), "random pixels, p = 0.3"


def step_products(model, batch):
    """The matrix products of one step, as ``Dense`` forms them: per product
    the shapes of its two operands as stored, each with whether the product
    reads it transposed (``x.T @ grad_out``, ``grad_out @ W.T``)."""
    found = []
    forward, backward = layers.Dense.forward, layers.Dense.backward

    def recorded_forward(self, x):
        found.append((x.shape, False, self.params["W"].shape, False))
        return forward(self, x)

    def recorded_backward(self, grad_out, input_grad=True):
        x_shape = grad_out.shape[0], self.params["W"].shape[0]     # forward's x, (R, n_in)
        found.append((x_shape, True, grad_out.shape, False))
        if input_grad:
            found.append((grad_out.shape, False, self.params["W"].shape, True))
        return backward(self, grad_out, input_grad)
    layers.Dense.forward, layers.Dense.backward = recorded_forward, recorded_backward
    try:
        model.forward_backward(batch)
    finally:
        layers.Dense.forward, layers.Dense.backward = forward, backward
    return found


def gemm_flops(model, batch):
    """Floating-point operations of the matrix products of one step: an
    (m, k) by (k, n) product takes 2 m k n."""
    return sum(2 * a[0] * a[1] * (b[0] if b_t else b[1])
               for a, _, b, b_t in step_products(model, batch))


def blas_time(products, steps, dtype=np.float32):
    """Seconds per step for the products alone, ``steps`` times over, on
    random operands of their shapes (no subnormal numbers, no Python around
    them): the rate BLAS gives these shapes."""
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal(a).astype(dtype), rng.standard_normal(b).astype(dtype))
             for a, _, b, _ in products]
    pairs = [(a.T if a_t else a, b.T if b_t else b)
             for (a, b), (_, a_t, _, b_t) in zip(pairs, products)]
    start = time.perf_counter()
    for _ in range(steps):
        for a, b in pairs:
            a @ b
    return (time.perf_counter() - start) / steps


def snapshot(model):
    """The state a step changes: the parameter vector and Adam's."""
    adam = model.optimizer_
    return model.parameters_.theta.copy(), adam.t, copies(adam.m), copies(adam.v)


def restore(model, state):
    theta, t, m, v = state
    model.parameters_.theta[...] = theta
    model.optimizer_.t, model.optimizer_.m, model.optimizer_.v = t, copies(m), copies(v)


def copies(arrays):
    return {name: a.copy() for name, a in arrays.items()}


def steps_time(model, batches, steps, start):
    """Seconds per step over ``steps`` steps from the state ``start``, the
    same trajectory every round."""
    restore(model, start)
    begin = time.perf_counter()
    for i in range(steps):
        model.step(batches[i % len(batches)], 1.0, model.optimizer_)
    return (time.perf_counter() - begin) / steps


def pieces_time(model, batches, steps, start):
    """Seconds per step inside the ``Dense`` products and inside Adam over
    the same steps, and the share of subnormal entries in the gradients the
    products take (counted outside the timers)."""
    spent = {"products": 0.0, "adam": 0.0, "entries": 0, "subnormal": 0}

    def timed(fn, piece):
        def run(*args, **kwargs):
            begin = time.perf_counter()
            result = fn(*args, **kwargs)
            spent[piece] += time.perf_counter() - begin
            return result
        return run

    def counted(backward):
        def run(self, grad_out, input_grad=True):
            spent["entries"] += grad_out.size
            spent["subnormal"] += np.count_nonzero(
                (np.abs(grad_out) < np.finfo(grad_out.dtype).tiny) & (grad_out != 0))
            return backward(self, grad_out, input_grad)
        return run
    forward, backward = layers.Dense.forward, layers.Dense.backward
    layers.Dense.forward = timed(forward, "products")
    layers.Dense.backward = counted(timed(backward, "products"))
    model.optimizer_.step = timed(model.optimizer_.step, "adam")
    try:
        steps_time(model, batches, steps, start)
    finally:
        layers.Dense.forward, layers.Dense.backward = forward, backward
        del model.optimizer_.step
    return (spent["products"] / steps, spent["adam"] / steps,
            spent["subnormal"] / spent["entries"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--blas-threads", type=int, help="BLAS threads (default: as configured)")
    p.add_argument("--data-dir", help="folder holding binarized-mnist/ (default: "
                                      "$NPVAE_DATA_DIR, else ~/.npvae/data)")
    p.add_argument("--synthetic", action="store_true", help="random pixels, not MNIST")
    p.add_argument("--checkpoints", nargs=2, metavar=("ONE", "TWO"),
                   help="time a one-layer and a two-layer checkpoint of one kind (say two "
                        "reproduction runs' stages) from their trained state, both with the "
                        "standard gradient estimator, instead of the fresh models")
    args = p.parse_args(argv)
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        return measure(args)


def trained(paths):
    """The models of two checkpoints, keyed like :func:`models`."""
    one, two = (load_checkpoint(path).set_params(gradient_estimator="standard")
                for path in paths)
    return {f"{type(one).__name__} k={one.k}" if hasattr(one, "k") else "VAE": (one, two)}


def measure(args):
    X, data = rows(args)
    runs = {}
    pairs = trained(args.checkpoints) if args.checkpoints else models(args.batch_size)
    for kind, pair in pairs.items():
        for model in pair:
            if not args.checkpoints:
                model.initialize(D, X)
            batches = [Batch(X[i:i + args.batch_size], None, model.draw_noise(args.batch_size))
                       for i in range(0, X.shape[0], args.batch_size)]
            runs[kind, model.stochastic_layers] = dict(
                model=model, batches=batches, shapes=step_products(model, batches[0]),
                flops=gemm_flops(model, batches[0]), start=snapshot(model),
                step=np.inf, products=np.inf, adam=np.inf, blas=np.inf)
    for _ in range(args.rounds):
        for run in runs.values():
            timed = run["model"], run["batches"], args.steps, run["start"]
            run["step"] = min(run["step"], steps_time(*timed))
            products, adam, run["subnormal"] = pieces_time(*timed)
            run["products"], run["adam"] = min(run["products"], products), min(run["adam"], adam)
            run["blas"] = min(run["blas"], blas_time(run["shapes"], args.steps))
    print(f"batch {args.batch_size}, best of {args.rounds} rounds of {args.steps} steps, "
          f"BLAS threads {args.blas_threads or 'as configured'}, {data}")
    print(f"{'model':<10} {'layers':>6} {'GEMM MFLOP':>10} {'ms/step':>8}")
    for (kind, n_layers), run in runs.items():
        print(f"{kind:<10} {n_layers:>6} {run['flops'] / 1e6:>10.2f} {1e3 * run['step']:>8.3f}")
    print(f"\n{'':<17} {'products in the step':>20} {'products alone':>16}"
          f"\n{'model':<10} {'layers':>6} {'ms':>7} {'GFLOP/s':>7} {'subnormal':>9} {'ms':>7} "
          f"{'GFLOP/s':>7} {'Adam ms':>7} {'rest ms':>7}")
    for (kind, n_layers), run in runs.items():
        rest = run["step"] - run["products"] - run["adam"]
        print(f"{kind:<10} {n_layers:>6} {1e3 * run['products']:>7.3f} "
              f"{run['flops'] / run['products'] / 1e9:>7.1f} {run['subnormal']:>9.2%} "
              f"{1e3 * run['blas']:>7.3f} {run['flops'] / run['blas'] / 1e9:>7.1f} "
              f"{1e3 * run['adam']:>7.3f} {1e3 * rest:>7.3f}")
    print()
    ratios = {}
    for kind in pairs:
        one, two = runs[kind, 1], runs[kind, 2]
        measured, predicted = two["step"] / one["step"], two["flops"] / one["flops"]
        ratios[kind] = measured / predicted
        print(f"{kind}: two layers / one layer: measured {measured:.3f}, products predict "
              f"{predicted:.3f}, measured / predicted {measured / predicted:.2f}")
        alone, in_step = two["blas"] / one["blas"], two["products"] / one["products"]
        rest = ((two["step"] - two["products"] - two["adam"])
                / (one["step"] - one["products"] - one["adam"]))
        print(f"{kind}: at their measured rates the products predict {in_step:.3f} in the "
              f"step, {alone:.3f} alone; measured / predicted {measured / predicted:.2f} = "
              f"BLAS on these shapes {alone / predicted:.2f} x the products in the step "
              f"{in_step / alone:.2f} x everything else {measured / in_step:.2f} "
              f"(two / one: Adam {two['adam'] / one['adam']:.3f}, the rest {rest:.3f})")
    return ratios


if __name__ == "__main__":
    main()

"""Does the fast path learn as well as PyTorch?  Test ELBO and
importance-weighted log p(x) on binarized MNIST after E epochs.

Both frameworks train the same VAE (784-400-20, ReLU, Bernoulli, Adam 1e-3,
batch 128) from the same initial weights (npvae's, copied into PyTorch) on
the same statically binarized images; only the shuffling and the noise
differ (each framework draws its own from the same seed).  Reported per
test example, in nats (higher is better):

* ELBO: one-sample :math:`\\log p(x|z) - \\mathrm{KL}` (npvae's
  ``score_samples``, and the same formula in PyTorch);
* IWAE: :math:`\\log \\frac1k \\sum_i p(x, z_i) / q(z_i|x)`
  (:func:`npvae.models.evaluation.importance_weighted_log_likelihood`, and its
  own implementation below for PyTorch).

Needs MNIST in the shared data folder (``--data-dir``, default
``../shared/data`` beside the repository); exits with a message, not an
error, when it is absent.

Usage::

    python benchmarks/quality.py [--epochs 10] [--k 1000] [--n-test 10000] [--quick]
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from npvae import VAE  # noqa: E402
from npvae.models.saving import atomic_write  # noqa: E402
from npvae.app.datasets import MissingDataError, binarize, load_dataset  # noqa: E402
from npvae.models.evaluation import importance_weighted_log_likelihood  # noqa: E402

HIDDEN, LATENT, BATCH, LR = 400, 20, 128, 1e-3


def load_mnist(data_dir, seed):
    data = load_dataset("mnist", data_dir=data_dir)
    rng = np.random.default_rng(seed)
    return binarize(data.X_train, rng), binarize(data.X_test, rng)


def train_npvae(X, epochs, seed, dtype):
    model = VAE(latent_dim=LATENT, hidden_dims=(HIDDEN,), activation="relu",
                likelihood="bernoulli", epochs=epochs, batch_size=BATCH,
                learning_rate=LR, dtype=dtype, random_state=seed)
    model.initialize(X.shape[1])
    initial = {name: p.copy() for name, p in model.params_.items()}
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.fit_epoch(X)
    return model, initial, time.perf_counter() - t0


# ---------------------------------------------------------------- PyTorch
def torch_vae(initial, dtype):
    """The same network in PyTorch, starting from npvae's initial weights."""
    import torch
    from torch import nn

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(784, HIDDEN)
            self.mu = nn.Linear(HIDDEN, LATENT)
            self.logvar = nn.Linear(HIDDEN, LATENT)
            self.dec1 = nn.Linear(LATENT, HIDDEN)
            self.dec2 = nn.Linear(HIDDEN, 784)

        def encode(self, x):
            h = torch.relu(self.enc(x))
            return self.mu(h), self.logvar(h)

        def decode(self, z):
            return self.dec2(torch.relu(self.dec1(z)))

    model = TorchVAE().to(getattr(torch, dtype))
    names = {"enc": "encoder.0", "mu": "mu", "logvar": "logvar",
             "dec1": "decoder.0", "dec2": "decoder.2"}
    with torch.no_grad():
        for layer, prefix in names.items():
            getattr(model, layer).weight.copy_(torch.from_numpy(initial[f"{prefix}.W"].T.copy()))
            getattr(model, layer).bias.copy_(torch.from_numpy(initial[f"{prefix}.b"]))
    return model


def torch_log_px(x, logits):
    import torch.nn.functional as F
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                               reduction="none").sum(-1)


def train_torch(X, initial, epochs, seed, dtype):
    import torch
    torch.manual_seed(seed)
    model = torch_vae(initial, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    Xt = torch.from_numpy(X)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for i in range(0, len(Xt), BATCH):
            x = Xt[perm[i:i + BATCH]]
            mu, logvar = model.encode(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            kl = 0.5 * torch.sum(mu * mu + torch.expm1(logvar) - logvar, dim=-1)
            loss = torch.mean(kl - torch_log_px(x, model.decode(z)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model, time.perf_counter() - t0


def torch_scores(model, X, k, seed, rows=100):
    r"""ELBO and IWAE per example:
    :math:`\log w_i = \log p(x|z_i) + \log N(z_i; 0, I) - \log N(z_i; \mu, \sigma^2)`,
    IWAE :math:`= \operatorname{logsumexp}_i \log w_i - \log k`."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    elbo, iwae = [], []
    with torch.no_grad():
        for start in range(0, len(X), rows):
            x = torch.from_numpy(X[start:start + rows])
            mu, logvar = model.encode(x)
            std = torch.exp(0.5 * logvar)
            eps = torch.randn((1, *mu.shape), generator=gen, dtype=mu.dtype)
            kl = 0.5 * torch.sum(mu * mu + torch.expm1(logvar) - logvar, dim=-1)
            elbo.append(torch_log_px(x, model.decode(mu + std * eps))[0] - kl)
            eps = torch.randn((k, *mu.shape), generator=gen, dtype=mu.dtype)
            z = mu + std * eps
            log_w = torch_log_px(x, model.decode(z)) - 0.5 * torch.sum(
                z * z - eps * eps - logvar, dim=-1)
            iwae.append(torch.logsumexp(log_w.double(), dim=0) - math.log(k))
    return torch.cat(elbo).double().numpy(), torch.cat(iwae).numpy()


def have_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--k", type=int, default=1000, help="importance samples")
    p.add_argument("--n-test", type=int, default=10000, help="test examples scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--quick", action="store_true", help="1 epoch, k=50, 1000 test images")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.k, args.n_test = 1, 50, 1000
    try:
        X_train, X_test = load_mnist(args.data_dir, args.seed)
    except MissingDataError as exc:
        print(f"skipped: MNIST is not in {args.data_dir} ({exc})")
        return 0
    X_test = X_test[:args.n_test]
    print(f"binarized MNIST, {len(X_train)} train / {len(X_test)} test, {args.epochs} "
          f"epochs, batch {BATCH}, Adam {LR}, {args.dtype}, k = {args.k}")
    rows = []
    model, initial, seconds = train_npvae(X_train, args.epochs, args.seed, args.dtype)
    elbo = model.score_samples(X_test)
    iwae = importance_weighted_log_likelihood(model, X_test, k=args.k, random_state=args.seed)
    rows.append({"framework": "npvae", "train_seconds": seconds,
                 "elbo": float(np.mean(elbo)), "iwae": float(np.mean(iwae))})
    if not args.no_torch and have_torch():
        import torch
        from threadpoolctl import threadpool_info
        torch.set_num_threads(next((lib["num_threads"] for lib in threadpool_info()
                                    if lib["user_api"] == "blas"), 1))
        tmodel, seconds = train_torch(X_train.astype(args.dtype), initial, args.epochs,
                                      args.seed, args.dtype)
        elbo, iwae = torch_scores(tmodel, X_test.astype(args.dtype), args.k, args.seed)
        rows.append({"framework": "torch", "train_seconds": seconds,
                     "elbo": float(np.mean(elbo)), "iwae": float(np.mean(iwae))})
    print(f"{'':8} {'train s':>8} {'test ELBO':>10} {'test IWAE':>10}")
    for r in rows:
        print(f"{r['framework']:8} {r['train_seconds']:8.1f} {r['elbo']:10.2f} {r['iwae']:10.2f}")
    out = args.out or ROOT / "benchmarks" / "results" / time.strftime(
        "quality-%Y%m%dT%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                      indent=1)
    atomic_write(out, lambda f: f.write(text.encode()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

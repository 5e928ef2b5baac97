r"""The whole VAE in one file: read this first.

A Bernoulli Variational Autoencoder (Kingma & Welling, 2014) with one hidden
layer, its loss, its backward pass written out step by step, Adam, and a
training loop, in NumPy alone.  The rest of npvae computes the same numbers
with more options and faster kernels; tests/models/test_textbook.py checks that the
loss, every gradient and Adam's steps here equal npvae.VAE's (to 1e-10 relative;
they agree to rounding) from the same weights and the same noise.

    encoder   h = relu(x W_enc + b_enc),  mu = h W_mu + b_mu,  logvar = h W_logvar + b_logvar
    sample    z = mu + exp(logvar / 2) * eps,                  eps ~ N(0, I)
    decoder   g = relu(z W_dec + b_dec),  logits = g W_out + b_out
    loss      mean over the batch of  -log p(x | z) + KL(N(mu, sigma^2) || N(0, I))   (nats)

Shapes: x (n, D), h and g (n, H), mu, logvar, eps and z (n, L).  The
equations are derived in docs/math.md, sections 1 to 5c.
Run it:  python -m npvae.textbook   (or python npvae/textbook.py).
"""
import argparse
import time

import numpy as np


# ---------------------------------------------------------------- the pieces
def softplus(a):
    """softplus(a) = log(1 + e^a) = max(a, 0) + log(1 + e^-|a|): no overflow."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def sigmoid(a):
    """sigmoid(a) = 1 / (1 + e^-a) = e^min(a, 0) / (1 + e^-|a|): no overflow."""
    return np.exp(np.minimum(a, 0)) / (1 + np.exp(-np.abs(a)))


def kl_standard_normal(mu, logvar):
    """KL(N(mu, sigma^2) || N(0, I)) per row = 1/2 sum_j (mu^2 + sigma^2 - log sigma^2 - 1)."""
    return 0.5 * np.sum(mu ** 2 + np.exp(logvar) - logvar - 1, axis=1)


def kl_standard_normal_backward(mu, logvar):
    """dKL/dmu = mu,  dKL/dlogvar = (sigma^2 - 1) / 2."""
    return mu, 0.5 * (np.exp(logvar) - 1)


def dense_backward(dy, x, W):
    """For y = x W + b:  dL/dW = x^T dy,  dL/db = sum over rows of dy,  dL/dx = dy W^T."""
    return x.T @ dy, dy.sum(axis=0), dy @ W.T


# ---------------------------------------------------------------- the model
def init_params(rng, D, H, L):
    """Weights of a D-H-L encoder and an L-H-D decoder; every bias starts at 0.

    A layer followed by a ReLU draws W ~ N(0, 2 / n_in) (He); the heads mu,
    logvar and the output layer draw W ~ U(-a, a), a = sqrt(6 / (n_in + n_out))
    (Glorot).  npvae.VAE draws the same, in the same order, and names these
    encoder.0, mu, logvar, decoder.0 and decoder.2 (W_enc is "encoder.0.W").
    """
    def he(n_in, n_out):
        return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))

    def glorot(n_in, n_out):
        a = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-a, a, size=(n_in, n_out))

    p = {"W_enc": he(D, H), "W_mu": glorot(H, L), "W_logvar": glorot(H, L),
         "W_dec": he(L, H), "W_out": glorot(H, D)}
    for name, W in list(p.items()):
        p["b" + name[1:]] = np.zeros(W.shape[1])
    return p


def forward(params, x, eps):
    """The mean loss over the batch, -ELBO per image, and what backward needs.

    x: (n, D) in [0, 1];  eps: (n, L) standard normal noise, an argument so
    that the loss is a deterministic function of the parameters.
    """
    p = params
    a_enc = x @ p["W_enc"] + p["b_enc"]                      # encoder pre-activation
    h = np.maximum(a_enc, 0)                                 # h = relu(a_enc)
    mu = h @ p["W_mu"] + p["b_mu"]                           # mean of q(z|x)
    logvar = h @ p["W_logvar"] + p["b_logvar"]               # log sigma^2 of q(z|x)
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps                                     # reparameterization
    a_dec = z @ p["W_dec"] + p["b_dec"]
    g = np.maximum(a_dec, 0)                                 # g = relu(a_dec)
    logits = g @ p["W_out"] + p["b_out"]                     # p(x_d = 1 | z) = sigmoid(logits_d)
    # log p(x|z) = sum_d x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = sum_d x l - softplus(l)
    log_px = np.sum(x * logits - softplus(logits), axis=1)
    kl = kl_standard_normal(mu, logvar)
    loss = np.mean(-log_px + kl)                             # the negative ELBO, in nats
    cache = dict(x=x, eps=eps, a_enc=a_enc, h=h, mu=mu, logvar=logvar, sigma=sigma,
                 z=z, a_dec=a_dec, g=g, logits=logits)
    return loss, cache


def backward(params, cache):
    """Gradients of forward's loss for every parameter: the chain rule, step by step."""
    p, c = params, cache
    n = c["x"].shape[0]
    grads = {}
    # loss = (1/n) sum_rows (-log p(x|z) + KL);  d(-log p)/dlogits = sigmoid(l) - x
    d_logits = (sigmoid(c["logits"]) - c["x"]) / n
    grads["W_out"], grads["b_out"], d_g = dense_backward(d_logits, c["g"], p["W_out"])
    d_a_dec = d_g * (c["a_dec"] > 0)                         # relu passes where its input > 0
    grads["W_dec"], grads["b_dec"], d_z = dense_backward(d_a_dec, c["z"], p["W_dec"])
    # z = mu + sigma * eps:  dz/dmu = 1,  dz/dlogvar = sigma * eps / 2; the KL adds its own
    kl_mu, kl_logvar = kl_standard_normal_backward(c["mu"], c["logvar"])
    d_mu = d_z + kl_mu / n
    d_logvar = d_z * 0.5 * c["sigma"] * c["eps"] + kl_logvar / n
    grads["W_mu"], grads["b_mu"], d_h_mu = dense_backward(d_mu, c["h"], p["W_mu"])
    grads["W_logvar"], grads["b_logvar"], d_h_lv = dense_backward(d_logvar, c["h"], p["W_logvar"])
    d_a_enc = (d_h_mu + d_h_lv) * (c["a_enc"] > 0)           # both heads read h: gradients add
    grads["W_enc"], grads["b_enc"], _ = dense_backward(d_a_enc, c["x"], p["W_enc"])
    return grads


# ---------------------------------------------------------------- training
def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step (Kingma & Ba, 2015), updating params in place:

        m = beta1 m + (1 - beta1) g,        v = beta2 v + (1 - beta2) g^2,
        m_hat = m / (1 - beta1^t),          v_hat = v / (1 - beta2^t),
        theta = theta - lr m_hat / (sqrt(v_hat) + eps)

    state: {"t": steps taken, "m": {}, "v": {}}, filled on the first step.
    """
    state["t"] += 1
    t = state["t"]
    for name, g in grads.items():
        m = beta1 * state["m"].get(name, 0.0) + (1 - beta1) * g
        v = beta2 * state["v"].get(name, 0.0) + (1 - beta2) * g ** 2
        state["m"][name], state["v"][name] = m, v
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        params[name] -= lr * m_hat / (np.sqrt(v_hat) + eps)


def train(X, H=128, L=8, epochs=50, batch_size=100, lr=3e-3, rng=None):
    """Train a VAE on the rows of X (in [0, 1]) with Adam on shuffled minibatches.

    rng: the np.random.Generator of initialisation, shuffling and noise.
    Returns the parameters and the mean training loss of each epoch.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    n, D = X.shape
    params = init_params(rng, D, H, L)
    state = {"t": 0, "m": {}, "v": {}}
    history = []
    for _ in range(epochs):
        order = rng.permutation(n)                           # a fresh shuffle each epoch
        total = 0.0
        for start in range(0, n, batch_size):
            x = X[order[start:start + batch_size]]
            eps = rng.standard_normal((x.shape[0], L))
            loss, cache = forward(params, x, eps)
            adam_step(params, backward(params, cache), state, lr)
            total += loss * x.shape[0]
        history.append(total / n)
    return params, history


def elbo(params, X, rng):
    """Mean ELBO per image in nats, one sample z per image: -forward's loss."""
    eps = rng.standard_normal((X.shape[0], params["W_mu"].shape[1]))
    return -forward(params, X, eps)[0]


def main(X, argv=None):
    """Train on 5/6 of the rows of X, print the training loss and the held-out ELBO."""
    parser = argparse.ArgumentParser(description="The whole VAE in one file, on 8x8 digits.")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(X.shape[0])
    n_train = X.shape[0] * 5 // 6
    X_train, X_test = X[order[:n_train]], X[order[n_train:]]
    start = time.perf_counter()
    params, history = train(X_train, epochs=args.epochs, rng=rng)
    seconds = time.perf_counter() - start
    for epoch in sorted({1, len(history) // 2, len(history)} - {0}):
        print(f"epoch {epoch:4d}  training loss {history[epoch - 1]:8.3f} nats per image")
    print(f"trained {args.epochs} epochs on {n_train} images in {seconds:.1f} s")
    print(f"held-out ELBO: {elbo(params, X_test, rng):.3f} nats per image "
          f"({X_test.shape[0]} images, one sample each)")


if __name__ == "__main__":
    # The one import beyond NumPy, and only when run as a script: scikit-learn's
    # 1797 digits, 8x8 pixels of 0..16, scaled to [0, 1].
    from sklearn.datasets import load_digits
    main(load_digits().data / 16.0)

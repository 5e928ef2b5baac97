"""npvae/textbook.py, the whole VAE in one file, computes what npvae.VAE
computes: the same loss, the same gradients and the same Adam step, from the
same weights and the same noise; and it runs as a script."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npvae
from npvae import textbook

ROOT = Path(__file__).resolve().parents[2]
D, H, L, N = 10, 6, 3, 13
# The textbook's parameter names and npvae.VAE's: "W_enc" is "encoder.0.W".
LAYERS = {"enc": "encoder.0", "mu": "mu", "logvar": "logvar", "dec": "decoder.0",
          "out": "decoder.2"}
NAMES = {f"{wb}_{ours}": f"{theirs}.{wb}" for ours, theirs in LAYERS.items() for wb in "Wb"}


def relative_error(a, b):
    """|a - b| / (|a| + |b|) in the Euclidean norm (0 when both are 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def make_vae():
    return npvae.VAE(latent_dim=L, hidden_dims=(H,), activation="relu", likelihood="bernoulli",
                     dtype="float64", random_state=0).initialize(D)


@pytest.fixture
def setup():
    """A float64 VAE with every parameter (biases too) set to random values,
    the textbook's copy of them, a batch X in [0, 1] and its noise eps."""
    vae = make_vae()
    assert set(NAMES.values()) == set(vae.params_)
    rng = np.random.default_rng(1)
    for p in vae.params_.values():
        p[...] = rng.normal(0.0, 0.5, size=p.shape)
    params = {ours: vae.params_[theirs].copy() for ours, theirs in NAMES.items()}
    X = rng.uniform(0.0, 1.0, size=(N, D))
    eps = rng.standard_normal((N, L))
    return vae, params, X, eps


def errors_against_npvae(vae, params, X, eps):
    """Relative errors of the textbook's loss and of each gradient (by
    npvae's name) against ``vae.loss_and_grads``."""
    loss, cache = textbook.forward(params, X, eps)
    grads = textbook.backward(params, cache)
    loss_ref, grads_ref = vae.loss_and_grads(X, eps)
    errors = {theirs: relative_error(grads[ours], grads_ref[theirs])
              for ours, theirs in NAMES.items()}
    return relative_error(loss, loss_ref), errors


def test_initialisation_is_npvaes():
    # Same generator, same draws in the same order: the same weights.
    params = textbook.init_params(np.random.default_rng(0), D, H, L)
    vae = make_vae()
    for ours, theirs in NAMES.items():
        np.testing.assert_array_equal(params[ours], vae.params_[theirs])


def test_loss_and_every_gradient_equal_npvaes(setup):
    loss_error, errors = errors_against_npvae(*setup)
    assert loss_error <= 1e-10
    assert max(errors.values()) <= 1e-10, errors


def test_a_planted_bug_is_caught(setup, monkeypatch):
    # The KL's gradient in log sigma^2 halved: the comparison must fail for
    # the parameters before it (the logvar head and the encoder body) and
    # for those only.
    right = textbook.kl_standard_normal_backward

    def halved(mu, logvar):
        grad_mu, grad_logvar = right(mu, logvar)
        return grad_mu, 0.5 * grad_logvar

    monkeypatch.setattr(textbook, "kl_standard_normal_backward", halved)
    loss_error, errors = errors_against_npvae(*setup)
    wrong = {name for name, error in errors.items() if error > 1e-10}
    assert wrong == {"logvar.W", "logvar.b", "encoder.0.W", "encoder.0.b"}, errors
    assert min(errors[name] for name in wrong) > 1e-4
    assert loss_error <= 1e-10                  # the forward pass is still right


def test_adam_steps_equal_npvaes(setup):
    # Three steps (the bias correction changes with t), each from npvae's
    # gradient at the current parameters, given to both optimizers.
    vae, params, X, eps = setup
    opt = vae.optimizer_
    state = {"t": 0, "m": {}, "v": {}}
    for _ in range(3):
        grads_ref = vae.loss_and_grads(X, eps)[1]
        opt.step(vae.params_, grads_ref)
        textbook.adam_step(params, {ours: grads_ref[theirs] for ours, theirs in NAMES.items()},
                           state, opt.learning_rate, opt.beta1, opt.beta2, opt.eps)
        errors = {theirs: relative_error(params[ours], vae.params_[theirs])
                  for ours, theirs in NAMES.items()}
        assert max(errors.values()) <= 1e-12, errors
    assert state["t"] == opt.t == 3


@pytest.mark.parametrize("command", [["-m", "npvae.textbook"], ["npvae/textbook.py"]])
def test_script_prints_a_held_out_elbo(command):
    done = subprocess.run([sys.executable, *command, "--epochs", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = re.search(r"held-out ELBO: (\S+) nats per image", done.stdout)
    assert found, done.stdout
    elbo = float(found.group(1))
    assert np.isfinite(elbo) and elbo < 0

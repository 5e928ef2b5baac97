"""The plain Autoencoder on the VAE's layers: a deterministic code."""
import numpy as np

from ..core.layers import mlp
from ..core.validation import check_finite
from .base import BaseAutoencoder, Batch, per_row

__all__ = ["Autoencoder"]


class Autoencoder(BaseAutoencoder):
    r"""A plain Autoencoder on the same layers: a deterministic code
    :math:`z = \mathrm{enc}(x)`, no KL and no sampling.

    Training minimises the reconstruction loss
    :math:`-\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))`: binary
    cross-entropy for ``likelihood="bernoulli"``, and for ``"gaussian"`` the
    squared error scaled by :math:`1/2\sigma^2` plus a constant.

    Parameters are those of :class:`VAE` without ``beta`` and ``kl_warmup``.
    """

    def __init__(self, latent_dim=2, *, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, epochs=20, batch_size=128,
                 learning_rate=1e-3, lr_schedule="constant", beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, output_bias_init="zeros", dtype="float32",
                 random_state=None, verbose=False):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.likelihood = likelihood
        self.obs_var = obs_var
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.output_bias_init = output_bias_init
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def build_encoder(self, n_features, hidden, rng, dtype):
        r"""The deterministic encoder, :math:`x \mapsto z`."""
        self.encoder_ = mlp([n_features, *hidden, self.latent_dim], self.activation,
                            rng, dtype)

    def named_encoder_layers(self):
        """The encoder's layers, named ``encoder.<index>.``."""
        return self.encoder_.named_layers("encoder.")

    def forward_backward(self, batch, beta=1.0):
        r"""Forward to the mean reconstruction loss :math:`\frac1n \sum_i
        -\log p(x_i \mid \mathrm{dec}(\mathrm{enc}(x_i)))` of ``batch.x``
        (n, D), backward through the same pieces with
        :math:`\partial L / \partial \log p_i = -1/n`, filling
        ``parameters_.grad``; ``beta`` is unused (no KL).

        Returns
        -------
        dict
            ``loss`` and ``recon``, the same batch mean in nats.
        """
        x = batch.x
        n = x.shape[0]
        code = self.encoder_.forward(x)                       # (n, L)
        out = self.decoder_.forward(code)                     # (n, D)
        recon = -float(self.likelihood_.forward(x, out).sum()) / n
        grad_out = self.likelihood_.backward(per_row(n, -1.0 / n, out.dtype))
        grad_code = self.decoder_.backward(grad_out)
        self.encoder_.backward(grad_code, input_grad=False)
        return {"loss": recon, "recon": recon}

    def train_step(self, x, optimizer=None):
        r"""One training step on the batch ``x``: :meth:`forward_backward`,
        then, given an ``optimizer``, the shared update.

        Returns
        -------
        dict
            ``loss`` and ``recon``, the same batch mean in nats.
        """
        return self.step(Batch(x), 1.0, optimizer)

    def log_px_rows(self, x):
        r""":math:`\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))` per row, shape (n,)."""
        return self.likelihood_.log_prob(x, self.decoder_.forward(self.encoder_.forward(x)))

    def loss(self, X, eps=None):
        r"""Mean reconstruction loss :math:`\frac1n \sum_i -\log p(x_i \mid
        \mathrm{dec}(\mathrm{enc}(x_i)))`; ``eps`` is ignored (no noise)."""
        X = self.check_data(X)
        return -float(np.mean(self.log_px_rows(X)))

    def loss_and_grads(self, X, eps=None):
        """The mean reconstruction loss and its gradient for every parameter
        (copies keyed like ``params_``); ``eps`` is ignored."""
        self.check_initialized()
        return self.loss_and_grads_of(Batch(self.check_data(X)), 1.0)

    def transform(self, X, y=None):
        r"""The code :math:`z = \mathrm{enc}(x)`."""
        X = self.checked_input(X, reset=False)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            return check_finite(self.in_row_blocks(self.encoder_.forward, X), "transform(X)")

    def score_samples(self, X, y=None):
        r""":math:`\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))` per example, in
        nats. Not a bound on :math:`\log p(x)`: the Autoencoder has no prior."""
        X = self.check_data(X)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            return check_finite(self.in_row_blocks(self.log_px_rows, X),
                                "log p(x | dec(enc(x)))")

r"""Two stochastic layers: the VAE and the IWAE of Burda, Grosse &
Salakhutdinov (2016, Table 1's lower half), docs/math.md §9c.

The generative model and the approximate posterior are chains of diagonal
Gaussians,

.. math::
    p(x, z_1, z_2) = p(x \mid z_1)\, p(z_1 \mid z_2)\, p(z_2), \qquad
    q(z_1, z_2 \mid x) = q(z_1 \mid x)\, q(z_2 \mid z_1),

with :math:`p(z_2) = N(0, I)`, each conditional Gaussian's mean and
log-variance from a tanh network, and :math:`p(x \mid z_1)` one of the
likelihoods of :mod:`npvae.core.likelihoods` (the paper's: Bernoulli).  With
:math:`k` codes per example drawn by two reparameterisations,
:math:`z_1 = \mu_1(x) + \sigma_1(x) \odot \varepsilon_1`,
:math:`z_2 = \mu_2(z_1) + \sigma_2(z_1) \odot \varepsilon_2`, each code has
the log-weight

.. math::
    \log w = \log p(x \mid z_1) + \log p(z_1 \mid z_2) + \log p(z_2)
        - \log q(z_1 \mid x) - \log q(z_2 \mid z_1),

and the two estimators differ only in what they make of the :math:`k`
log-weights of a row: :class:`TwoLayerVAE` their mean (the ELBO with its KL
sampled, as the authors' code trains the VAE), :class:`TwoLayerIWAE` their
log-mean-exp, :math:`\mathcal{L}_k`.  One backward pass serves both, with
the weight of each code's gradient :math:`1/k` or :math:`\tilde w_i`.
"""
import math
from collections.abc import Sequence
from functools import partial
from numbers import Integral

import numpy as np

from ..core.layers import GaussianEncoder, mlp, reparameterize, reparameterize_backward
from ..core.priors import DiagonalGaussian, SampledKL, StandardNormal
from ..core.rng import as_generator, row_normals
from ..core.validation import check_finite, check_int, check_memory
from .base import BaseAutoencoder, Batch
from .evaluation import log_prob_in_place
from .hyperparameters import check_gradient_estimator, check_number
from .iwae import dreg_factor, log_mean_exp

__all__ = ["TwoLayerVAE", "TwoLayerIWAE"]

_LOG_2PI = math.log(2 * math.pi)


def _is_sequence(value):
    """Whether ``value`` is an ordered collection of layer sizes: a list,
    tuple or array (a set or dict has no order, a generator is used up)."""
    return (isinstance(value, Sequence) and not isinstance(value, (str, bytes))) or (
        isinstance(value, np.ndarray) and value.ndim > 0)


class TwoLayerVAE(BaseAutoencoder):
    r"""A VAE with two stochastic layers (Burda et al. 2016), docs/math.md §9c.

    :math:`x \to q(z_1 \mid x) \to q(z_2 \mid z_1)` up,
    :math:`z_2 \sim N(0, I) \to p(z_1 \mid z_2) \to p(x \mid z_1)` down; the
    paper's sizes by default, x → 100 → 100 → z1 (100) → 50 → 50 → z2 (50),
    tanh, the generative networks mirroring the recognition ones.  Trained on
    the mean over ``k`` codes of the log-weight
    :math:`\log p(x, z_1, z_2) - \log q(z_1, z_2 \mid x)`: the ELBO with both
    layers' KL sampled (it has no closed form), as the authors' code trains
    its VAE.

    Parameters
    ----------
    latent_dims : pair of int, default=(100, 50)
        Widths of :math:`z_1` and :math:`z_2`, one per stochastic layer.
    hidden_dims : pair of sequences of int, default=((100, 100), (50, 50))
        Hidden widths of :math:`q(z_1 \mid x)` and of :math:`q(z_2 \mid z_1)`;
        :math:`p(x \mid z_1)` and :math:`p(z_1 \mid z_2)` mirror them.  (The
        paper's text gives these; the authors' code, yburda/iwae, uses
        ((200, 200), (100, 100)).)
    activation : str, default="tanh"
    likelihood : {"bernoulli", "gaussian", "continuous_bernoulli"}, default="bernoulli"
        :math:`p(x \mid z_1)`, as for :class:`~npvae.models.vae.VAE`.
    obs_var : float or None, default=None
        Gaussian only, as for the VAE.
    k : int, default=1
        Codes per example in training (the authors' VAE: 1).
    gradient_estimator : {"standard", "stl"}, default="standard"
        The recognition networks' gradient estimate (docs/math.md §9c).
        ``"stl"``, "sticking the landing": both recognition densities'
        parameters held fixed in the log-weight, both codes live (the score
        terms, zero on average, removed); unbiased for this model's
        objective, the decoder's and :math:`p(z_1 \mid z_2)`'s gradients
        unchanged bit for bit.  ``"dreg"`` is refused: with the weights
        :math:`1/k` it would be STL (use :class:`TwoLayerIWAE`).
    epochs, batch_size, learning_rate, lr_schedule, beta_1, beta_2, epsilon,
    output_bias_init, dtype, random_state, verbose
        As for :class:`~npvae.models.vae.VAE`.

    Attributes
    ----------
    q_z1_, q_z2_ : npvae.core.layers.GaussianEncoder
        :math:`x \mapsto (\mu_1, \log\sigma_1^2)` and
        :math:`z_1 \mapsto (\mu_2, \log\sigma_2^2)`.
    p_z1_ : npvae.core.layers.GaussianEncoder
        :math:`z_2 \mapsto` the mean and log-variance of :math:`p(z_1 \mid z_2)`.
    decoder_ : npvae.core.layers.Sequential
        :math:`z_1 \mapsto` the likelihood's parameters.
    likelihood_, parameters_, params_, optimizer_, rng_, n_features_in_, n_iter_, history_
        As for the VAE; ``history_`` holds ``loss``, ``recon``
        (:math:`-\log p(x \mid z_1)`) and ``kl`` (the sampled
        :math:`\log q(z_1, z_2 \mid x) - \log p(z_1, z_2)`) per epoch.
    prior_ : npvae.core.priors.StandardNormal
        :math:`p(z_2)`.
    kl_z2_, path_kl_z2_ : npvae.core.priors.SampledKL
        :math:`\log q(z_2 \mid z_1) - \log p(z_2)` with its score term
        (``"standard"``) and without it (STL, DReG).
    log_p_z1_ : npvae.core.priors.DiagonalGaussian
        :math:`\log p(z_1 \mid z_2)` at the mean and log-variance
        ``p_z1_`` computes.
    """

    has_prior = True
    stochastic_layers = 2
    # The gradient estimators this model offers (docs/math.md §9b, §9c).
    gradient_estimators = ("standard", "stl")

    def __init__(self, latent_dims=(100, 50), *, hidden_dims=((100, 100), (50, 50)),
                 activation="tanh", likelihood="bernoulli", obs_var=None, k=1,
                 gradient_estimator="standard", epochs=20, batch_size=128,
                 learning_rate=1e-3, lr_schedule="constant", beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, output_bias_init="zeros", dtype="float32",
                 random_state=None, verbose=False):
        self.latent_dims = latent_dims
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.likelihood = likelihood
        self.obs_var = obs_var
        self.k = k
        self.gradient_estimator = gradient_estimator
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

    @property
    def latent_dim(self):
        """The width of the top code :math:`z_2`: what ``transform``
        returns and ``decode``/``inverse_transform`` take."""
        return int(self.latent_dims[-1])

    # ------------------------------------------------------------ validation
    def check_architecture(self):
        """``latent_dims``: two widths >= 1; ``hidden_dims``: two sequences
        of widths >= 1, one per stochastic layer.  Returns ``hidden_dims`` as
        a pair of tuples."""
        name = type(self).__name__
        latent, hidden = self.latent_dims, self.hidden_dims
        if not _is_sequence(latent):
            raise ValueError(f"{name}.latent_dims must be a pair of ints, the widths of "
                             f"z1 and z2, got {latent!r}")
        latent = tuple(latent)
        if len(latent) != 2:
            raise ValueError(f"{name}.latent_dims must have 2 entries, one per stochastic "
                             f"layer (z1, z2), got {len(latent)}: {latent!r}; for one "
                             f"stochastic layer use VAE or IWAE")
        for width in latent:
            if isinstance(width, bool) or not isinstance(width, Integral) or width < 1:
                raise ValueError(f"each entry of {name}.latent_dims must be an integer "
                                 f">= 1, got {width!r}")
        if not _is_sequence(hidden) or not all(map(_is_sequence, hidden)):
            raise ValueError(f"{name}.hidden_dims must be a pair of sequences of ints, the "
                             f"hidden widths below z1 and below z2, e.g. ((100, 100), "
                             f"(50, 50)), got {hidden!r}")
        hidden = tuple(tuple(h) for h in hidden)
        if len(hidden) != len(latent):
            raise ValueError(f"{name}.hidden_dims has {len(hidden)} entries but latent_dims "
                             f"{len(latent)}: one sequence of hidden widths per stochastic "
                             f"layer, got hidden_dims={self.hidden_dims!r}")
        for h in (w for widths in hidden for w in widths):
            if isinstance(h, bool) or not isinstance(h, Integral) or h < 1:
                raise ValueError(f"each width in {name}.hidden_dims must be an integer "
                                 f">= 1, got {h!r}")
        return hidden

    def check_params(self):
        """The base's checks, then ``k`` and the gradient estimator."""
        hidden = super().check_params()
        check_number(self, "k", Integral, 1)
        check_gradient_estimator(self)
        return hidden

    # ------------------------------------------------------------ parameters
    def memory_needs(self, n_in, hidden, rows):
        """Every parameter four times (value, gradient, Adam's moments), and
        a step's activations and their gradients for ``k`` codes per row."""
        (l1, l2), (h1, h2) = self.latent_dims, hidden

        def size(widths, heads):
            # Weights and biases of a network through ``widths``, its last layer ``heads`` times.
            *body, (a, b) = zip(widths, widths[1:])
            return sum((i + 1) * o for i, o in body) + heads * (a + 1) * b
        # q(z1|x), q(z2|z1) and p(z1|z2) have two heads (mean, log-variance); p(x|z1) one.
        n_params = (size([n_in, *h1, l1], 2) + size([l1, *h2, l2], 2)
                    + size([l2, *h2[::-1], l1], 2) + size([l1, *h1[::-1], n_in], 1))
        yield 4 * n_params, f"hidden_dims={self.hidden_dims!r}"
        yield (4 * self.k * rows * (n_in + sum(map(sum, hidden)) + l1 + l2),
               f"batch_size={self.batch_size!r}, k={self.k!r}")

    def build_encoder(self, n_features, hidden, rng, dtype):
        r""":math:`q(z_1 \mid x)` and :math:`q(z_2 \mid z_1)`."""
        (l1, l2), (h1, h2) = self.latent_dims, hidden
        self.q_z1_ = GaussianEncoder([n_features, *h1], l1, self.activation, rng, dtype)
        self.q_z2_ = GaussianEncoder([l1, *h2], l2, self.activation, rng, dtype)

    def build_decoder(self, n_features, hidden, condition_dim, rng, dtype):
        r""":math:`p(z_1 \mid z_2)` and :math:`p(x \mid z_1)`, mirroring the
        recognition networks."""
        (l1, l2), (h1, h2) = self.latent_dims, hidden
        self.p_z1_ = GaussianEncoder([l2, *reversed(h2)], l1, self.activation, rng, dtype)
        self.decoder_ = mlp([l1, *reversed(h1), n_features], self.activation, rng, dtype)

    def build_prior(self, rng, dtype):
        r""":math:`p(z_2) = N(0, I)`; the pieces of the log-weight's two
        density ratios: :math:`\log q(z_2 \mid z_1) - \log p(z_2)` (the
        sampled KL) and :math:`\log p(z_1 \mid z_2)`."""
        self.prior_ = StandardNormal(self.latent_dim, dtype)
        self.kl_z2_ = SampledKL(self.prior_)
        self.path_kl_z2_ = SampledKL(self.prior_, score_term=False)
        self.log_p_z1_ = DiagonalGaussian()

    def named_encoder_layers(self):
        """The recognition networks' pieces, under ``q_z1.`` and ``q_z2.``."""
        yield from self.q_z1_.named_layers("q_z1.")
        yield from self.q_z2_.named_layers("q_z2.")

    def named_layers(self):
        """The base's pieces, then :math:`p(z_1 \\mid z_2)`'s under ``p_z1.``."""
        yield from super().named_layers()
        yield from self.p_z1_.named_layers("p_z1.")

    # ------------------------------------------------------------ one step
    def forward_pass(self, x, eps, beta=1.0, train=True):
        r"""The log-weights of :math:`k` codes per row and what the backward
        pass needs (docs/math.md §9c).

        Parameters
        ----------
        x : ndarray of shape (n, D)
        eps : ndarray of shape (k, n, L1 + L2)
            :math:`[\varepsilon_1, \varepsilon_2]` per code.
        beta : float
            Weight of :math:`\log q - \log p(z_1, z_2)` in the log-weight.
        train : bool
            Every piece caches its input for the backward pass; with False
            nothing is cached (the networks' ``predict``, fresh density
            pieces), so that threads may evaluate the model at once.

        Returns
        -------
        dict
            ``log_w`` (k, n); ``log_px`` (k, n); ``log_ratio`` (k, n), the
            sampled :math:`\log q(z_1, z_2 \mid x) - \log p(z_1, z_2)`; and
            ``logvar1`` (n, L1), ``logvar2`` (kn, L2), ``eps1`` (k, n, L1),
            ``eps2`` (kn, L2) for the backward pass.
        """
        k, n = eps.shape[:2]
        l1, l2 = self.latent_dims
        if train:
            q_z1, q_z2, p_z1 = self.q_z1_.forward, self.q_z2_.forward, self.p_z1_.forward
            decoder, log_px_of = self.decoder_.forward, self.likelihood_.forward
            log_p_z1_of, kl_z2_of = self.log_p_z1_, self.kl_of_z2()
        else:
            q_z1, q_z2, p_z1 = self.q_z1_.predict, self.q_z2_.predict, self.p_z1_.predict
            # The decoder's output is the pass's own: scored in place, in cached pieces.
            decoder, log_px_of = self.decoder_.predict, partial(log_prob_in_place,
                                                                self.likelihood_)
            log_p_z1_of, kl_z2_of = DiagonalGaussian(), SampledKL(StandardNormal(l2))
        eps1, eps2 = eps[..., :l1], eps[..., l1:].reshape(k * n, l2)
        mu1, logvar1 = q_z1(x)                                             # (n, L1)
        z1 = reparameterize(mu1, logvar1, eps1)                            # (k, n, L1)
        flat_z1 = z1.reshape(k * n, l1)
        mu2, logvar2 = q_z2(flat_z1)                                       # (kn, L2)
        z2 = reparameterize(mu2, logvar2, eps2)                            # (kn, L2)
        m, log_s2 = p_z1(z2)                          # p(z1|z2)'s m, log s^2: (kn, L1)
        log_p_z1 = log_p_z1_of.forward(flat_z1, m, log_s2)                 # (kn,)
        kl_z2 = kl_z2_of.forward(mu2, logvar2, z2, eps2)                   # (kn,)
        log_px = log_px_of(x, decoder(flat_z1).reshape(k, n, -1))          # (k, n)
        # log q(z1|x) at z1 = mu1 + sigma1 eps1, in eps (§9): (k, n)
        log_q_z1 = -0.5 * (_LOG_2PI + logvar1 + eps1 * eps1).sum(axis=-1)
        log_ratio = log_q_z1 + (kl_z2 - log_p_z1).reshape(k, n)
        return {"log_w": log_px - beta * log_ratio, "log_px": log_px,
                "log_ratio": log_ratio, "logvar1": logvar1, "logvar2": logvar2,
                "eps1": eps1, "eps2": eps2}

    def bound_and_weights(self, log_w):
        r"""The VAE's objective per row, the mean of its :math:`k`
        log-weights, shape (n,), and the weight :math:`1/k` of each code's
        gradient, shape (k, n)."""
        k = log_w.shape[0]
        return log_w.sum(axis=0) / k, np.full(log_w.shape, 1.0 / k, log_w.dtype)

    def forward_backward(self, batch, beta=1.0):
        r"""One batch forward to the loss and backward, as docs/math.md §9c
        derives it, filling ``parameters_.grad``.

        The loss is :math:`-\frac1n\sum_n b_n`, with :math:`b_n` the row's
        :meth:`bound_and_weights` of its log-weights.  Backward, with
        :math:`g_{in} = \partial L/\partial \log w_{in} = -c_{in}/n`
        (:math:`c` the code weights: :math:`1/k`, or :math:`\tilde w` for the
        IWAE) and :math:`h = \beta g`: the likelihood and decoder with
        :math:`g`; :math:`\log p(z_1 \mid z_2)` with :math:`h` into
        :math:`z_1` and, through :math:`p(z_1 \mid z_2)`'s network, into
        :math:`z_2`; :math:`\log q(z_2 \mid z_1) - \log p(z_2)` with
        :math:`-h`; :math:`z_2`'s reparameterisation and :math:`q(z_2 \mid
        z_1)`'s network back into :math:`z_1`; :math:`-\log q(z_1 \mid x)`
        adds :math:`\frac12\sum_i h_{in}` to every :math:`\log\sigma_1^2`;
        :math:`z_1`'s reparameterisation, summed over the :math:`k` codes,
        into :math:`q(z_1 \mid x)`.  STL and DReG change the recognition
        networks' part (:meth:`path_terms`).

        Parameters
        ----------
        batch : npvae.models.base.Batch
            ``x`` (n, D) and ``eps`` (k, n, L1 + L2).
        beta : float

        Returns
        -------
        dict
            The batch's means: ``loss``, ``recon`` (:math:`-\log p(x \mid
            z_1)` over the :math:`kn` codes) and ``kl`` (the sampled
            :math:`\log q - \log p(z_1, z_2)` over them), in nats.
        """
        x, eps = batch.x, batch.eps
        k, n = eps.shape[:2]
        l1, l2 = self.latent_dims
        f = self.forward_pass(x, eps, beta)
        bound, weights = self.bound_and_weights(f["log_w"])
        g = weights * (-1.0 / n)                                           # (k, n)
        h = (beta * g).reshape(k * n)              # the density terms' weight: (kn,)
        # Into z1 from log p(x|z1), then from log p(z1|z2) (and on into z2).
        grad_out = self.likelihood_.backward(g)                            # (k, n, D)
        grad_z1 = self.decoder_.backward(grad_out.reshape(k * n, -1))      # (kn, L1)
        grad_z1_p, grad_m, grad_log_s2 = self.log_p_z1_.backward(h)
        grad_z1 += grad_z1_p
        grad_z2 = self.p_z1_.backward(grad_m, grad_log_s2)                 # (kn, L2)
        # log q(z2|z1) - log p(z2), weighted -h.
        kl_mu2, kl_logvar2, kl_z2 = self.kl_of_z2().backward(-h)
        grad_z2 += kl_z2
        if self.gradient_estimator == "standard":
            # -log q(z1|x) in eps: +h/2 into every log sigma1^2, summed over the codes.
            direct_logvar1 = 0.5 * h.reshape(k, n).sum(axis=0)[:, None]
        else:
            direct_logvar1 = 0.0
            # path_terms adds to grad_z1, and for DReG scales grad_z1 and grad_z2, in place.
            grad_z1 += self.path_terms(f, h, weights, beta, grad_z1, grad_z2)
        # z2's reparameterisation, then q(z2|z1)'s network back into z1.
        grad_mu2, grad_logvar2 = reparameterize_backward(grad_z2, f["logvar2"], f["eps2"])
        grad_z1 += self.q_z2_.backward(grad_mu2 + kl_mu2, grad_logvar2 + kl_logvar2)
        # z1's reparameterisation, summed over the k codes.
        grad_mu1, grad_logvar1 = reparameterize_backward(
            grad_z1.reshape(k, n, l1), f["logvar1"], f["eps1"])
        self.q_z1_.backward(grad_mu1.sum(axis=0), grad_logvar1.sum(axis=0) + direct_logvar1,
                            input_grad=False)
        # The means over the rows and over all kn codes, as sums over a count:
        # the same numbers as np.mean's, without its overhead.
        return {"loss": -float(bound.sum() / n), "recon": -float(f["log_px"].sum() / (k * n)),
                "kl": float(f["log_ratio"].sum() / (k * n))}

    def kl_of_z2(self):
        r"""The piece of :math:`\log q(z_2 \mid z_1) - \log p(z_2)`: with its
        score term for ``"standard"``, without it (``score_term=False``) for
        STL and DReG; read at each step, so ``set_params`` switches it, and
        checked here for that reason."""
        check_gradient_estimator(self)
        return self.kl_z2_ if self.gradient_estimator == "standard" else self.path_kl_z2_

    def path_terms(self, f, h, weights, beta, grad_z1, grad_z2):
        r"""STL's and DReG's changes to the backward pass (docs/math.md §9c):
        the recognition densities' parameters held fixed, their codes live.

        ``grad_z1`` (kn, L1) and ``grad_z2`` (kn, L2) hold the path
        gradients so far; ``h`` (kn,) is :math:`\beta g`.  Adds to
        ``grad_z1``, in place, the path of :math:`-\log q(z_1 \mid x)` with
        :math:`\mu_1, \sigma_1` held, :math:`h\,\varepsilon_1/\sigma_1` (the
        path of :math:`-\log q(z_2 \mid z_1)` through :math:`z_2` is already
        in ``grad_z2``, from ``path_kl_z2_``); for DReG scales ``grad_z1``,
        ``grad_z2`` and the frozen pass's inputs, in place, by
        :func:`npvae.models.iwae.dreg_factor` per code.  Returns
        :math:`\partial L/\partial z_1` through :math:`\log q(z_2 \mid z_1)`'s
        input with ``q_z2_``'s weights frozen,
        :math:`J^\top(-h\,\varepsilon_2/\sigma_2,\; -\tfrac h2(\varepsilon_2^2 - 1))`
        (:math:`J` the Jacobian of ``q_z2_``'s :math:`(\mu_2, \log\sigma_2^2)`
        in :math:`z_1`), shape (kn, L1).  That backward pass writes
        ``q_z2_``'s parameter gradients, which the pass after it overwrites
        (a layer's ``backward`` sets its gradients, never adds to them)."""
        k, n = weights.shape
        eps1 = f["eps1"].reshape(k * n, -1)
        eps2, sigma2 = f["eps2"], np.exp(0.5 * f["logvar2"])
        h = h[:, None]
        grad_z1 += h * eps1 * np.tile(np.exp(-0.5 * f["logvar1"]), (k, 1))
        frozen_mu2, frozen_logvar2 = -h * eps2 / sigma2, -0.5 * h * (eps2 * eps2 - 1)
        if self.gradient_estimator == "dreg":
            factor = dreg_factor(weights, beta).reshape(k * n, 1)
            for grad in (grad_z1, grad_z2, frozen_mu2, frozen_logvar2):
                grad *= factor
        return self.q_z2_.backward(frozen_mu2, frozen_logvar2)

    def draw_noise(self, n):
        r""":math:`[\varepsilon_1, \varepsilon_2]` of shape (k, n, L1 + L2)
        from ``rng_``; ``k`` checked here, as ``set_params`` may have changed
        it since ``fit``."""
        check_number(self, "k", Integral, 1)
        return self.rng_.standard_normal((self.k, n, sum(self.latent_dims)), dtype=self.dtype)

    def check_noise(self, X, eps):
        r"""``eps`` as an array of the model's dtype and shape (k, n, L1 + L2)
        for the rows of ``X``, any :math:`k \ge 1`, finite; else a ValueError
        (a TypeError if it is not real numbers)."""
        if np.asarray(eps).dtype.kind not in "biuf":
            raise TypeError(f"eps must be an array of real numbers, got dtype "
                            f"{np.asarray(eps).dtype}")
        eps = np.asarray(eps, dtype=self.dtype)
        width = sum(self.latent_dims)
        if eps.ndim != 3 or eps.shape[0] < 1 or eps.shape[1:] != (X.shape[0], width):
            raise ValueError(f"eps must have shape (k, {X.shape[0]}, {width}) with k >= 1 "
                             f"codes per example, got {eps.shape}")
        if not np.isfinite(eps).all():
            raise ValueError("eps contains NaN or infinity")
        return eps

    # ------------------------------------------------------------ for study
    def loss(self, X, eps, y=None):
        r"""Mean training loss per example for a fixed noise ``eps`` of shape
        (k, n_samples, L1 + L2), :math:`\beta = 1`: a deterministic function
        of the parameters, for gradient checks."""
        X = self.check_data(X)
        eps = self.check_noise(X, eps)
        log_w = self.forward_pass(X, eps, train=False)["log_w"]
        return -float(self.bound_and_weights(log_w)[0].mean())

    def loss_and_grads(self, X, eps=None, y=None):
        """The mean loss per example (:meth:`loss`) and its gradient for
        every parameter, copies keyed like ``params_``; ``eps`` is drawn
        from ``rng_`` when omitted."""
        self.check_initialized()
        X = self.check_data(X)
        eps = self.check_noise(X, self.draw_noise(X.shape[0]) if eps is None else eps)
        return self.loss_and_grads_of(Batch(X, None, eps), 1.0)

    # ------------------------------------------------------------ public verbs
    @property
    def noise_dim(self):
        r"""The width of one code's noise :math:`[\varepsilon_1, \varepsilon_2]`, L1 + L2."""
        return int(sum(self.latent_dims))

    def importance_log_weights(self, x, eps):
        r"""The log-weights :math:`\log w` of shape (k, n), float64, for
        checked rows ``x`` and noise ``eps`` of shape (k, n, L1 + L2),
        :math:`\beta = 1`, nothing cached: what
        :func:`npvae.models.evaluation.importance_weighted_log_likelihood`
        asks of a model that computes its own log-weights."""
        return self.forward_pass(x, eps, train=False)["log_w"].astype(np.float64)

    def encode(self, X, y=None):
        r"""The top layer's posterior with :math:`z_1` at its mean:
        :math:`(\mu_2, \log\sigma_2^2)` of :math:`q(z_2 \mid z_1 = \mu_1(x))`,
        each of shape (n_samples, L2)."""
        X = self.checked_input(X, reset=False)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            mu, logvar = self.in_row_blocks(
                lambda x: self.q_z2_.predict(self.q_z1_.predict(x)[0]), X)
        return check_finite(mu, "encode(X)'s mu"), check_finite(logvar, "encode(X)'s logvar")

    def transform(self, X, y=None):
        r"""The code of ``X``: the top layer's posterior mean
        :math:`\mu_2(\mu_1(x))`, shape (n_samples, L2) (:meth:`encode`)."""
        return self.encode(X)[0]

    def layer_means(self, X, y=None, random_state=0):
        r"""Each stochastic layer's posterior mean, bottom first, as the
        authors' code measures active units: :math:`\mu_1(x)` (n, L1) and
        :math:`\mu_2(z_1)` (n, L2) at one :math:`z_1 \sim q(z_1 \mid x)`
        per row (noise :func:`npvae.core.rng.row_normals`)."""
        X = self.check_data(X)
        eps = row_normals(X, self.latent_dims[0], random_state, self.dtype)
        mu1, logvar1 = self.in_row_blocks(self.q_z1_.predict, X)
        mu2 = self.in_row_blocks(
            lambda m, lv, e: self.q_z2_.predict(reparameterize(m, lv, e))[0], mu1, logvar1, eps)
        return [check_finite(mu1, "mu1"), check_finite(mu2, "mu2")]

    def decoded(self, Z, Y=None):
        r"""The decoder's mean at :math:`z_1 = m(z_2)`, the mean of
        :math:`p(z_1 \mid z_2)`, for checked top codes ``Z`` (n, L2): what
        ``decode`` and ``inverse_transform`` return."""
        def mean_of(z2):
            return self.likelihood_.mean(self.decoder_.predict(self.p_z1_.predict(z2)[0]))
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            return check_finite(self.in_row_blocks(mean_of, Z), "decode(Z)")

    def sample(self, n_samples=1, random_state=None):
        r"""Draws from the model, returning the decoder's mean: :math:`z_2
        \sim N(0, I)`, :math:`z_1 \sim p(z_1 \mid z_2)`, then the mean of
        :math:`p(x \mid z_1)` (as the authors' ``get_samples``).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        self.check_fitted()
        check_int("n_samples", n_samples, 1)
        check_memory(n_samples * (sum(self.latent_dims) + 2 * self.n_features_in_),
                     np.dtype(self.dtype).itemsize, f"n_samples={n_samples!r}")
        rng = self.rng_ if random_state is None else as_generator(random_state)
        z2 = self.prior_.sample(n_samples, rng)
        eps1 = rng.standard_normal((n_samples, self.latent_dims[0]), dtype=self.dtype)

        def mean_of(z2, eps1):
            z1 = reparameterize(*self.p_z1_.predict(z2), eps1)
            return self.likelihood_.mean(self.decoder_.predict(z1))
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            return check_finite(self.in_row_blocks(mean_of, z2, eps1), "sample()")

    def elbo_terms(self, X, y=None, random_state=0):
        r"""The ELBO's two terms per example from one code each, in nats:
        :math:`\log p(x \mid z_1)` and the sampled KL :math:`\log q(z_1, z_2
        \mid x) - \log p(z_1, z_2)` (docs/math.md §9c), each of shape
        (n_samples,).  Each row's noise is :func:`npvae.core.rng.row_normals`
        of its values and ``random_state``: the same alone or in any batch."""
        X = self.check_data(X)
        eps = row_normals(X, self.noise_dim, random_state, self.dtype)

        def terms(x, e):
            f = self.forward_pass(x, e[None], train=False)
            return f["log_px"][0], f["log_ratio"][0]
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            log_px, kl = self.in_row_blocks(terms, X, eps)
        return check_finite(log_px, "log p(x|z1)"), check_finite(kl, "the KL term")

    def score_samples(self, X, y=None):
        r"""The one-code ELBO per example, :math:`\log p(x \mid z_1) -
        \widehat{\mathrm{KL}}`, in nats (:meth:`elbo_terms`)."""
        log_px, kl = self.elbo_terms(X)
        return log_px - kl


class TwoLayerIWAE(TwoLayerVAE):
    r"""An IWAE with two stochastic layers (Burda et al. 2016), docs/math.md §9c.

    The :class:`TwoLayerVAE`'s networks trained on the importance-weighted
    bound :math:`\mathcal{L}_k = \log\frac1k\sum_i w_i` of the same
    log-weights: the backward pass is the VAE's with each code's gradient
    weighted by :math:`\tilde w_i = \operatorname{softmax}_i(\log w)`
    instead of :math:`1/k` (§9).

    Parameters
    ----------
    k : int, default=5
        Codes per example in training.
    gradient_estimator : {"standard", "dreg", "stl"}, default="standard"
        As for the one-layer :class:`~npvae.models.iwae.IWAE` (docs/math.md
        §9b, §9c): ``"dreg"`` weights each code's path gradient into the
        recognition networks by :math:`\tilde w_i^2`, ``"stl"`` by
        :math:`\tilde w_i` (biased for :math:`k > 1`).
    latent_dims, hidden_dims, activation, likelihood, obs_var,
    epochs, batch_size, learning_rate, lr_schedule, beta_1, beta_2, epsilon,
    output_bias_init, dtype, random_state, verbose
        As for :class:`TwoLayerVAE`.
    """

    def __init__(self, latent_dims=(100, 50), *, hidden_dims=((100, 100), (50, 50)),
                 activation="tanh", likelihood="bernoulli", obs_var=None, k=5,
                 gradient_estimator="standard", epochs=20, batch_size=128,
                 learning_rate=1e-3, lr_schedule="constant", beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, output_bias_init="zeros", dtype="float32",
                 random_state=None, verbose=False):
        super().__init__(latent_dims, hidden_dims=hidden_dims, activation=activation,
                         likelihood=likelihood, obs_var=obs_var, k=k,
                         gradient_estimator=gradient_estimator, epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate,
                         lr_schedule=lr_schedule, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, output_bias_init=output_bias_init, dtype=dtype,
                         random_state=random_state, verbose=verbose)

    importance_weighted = True
    gradient_estimators = ("standard", "dreg", "stl")

    def bound_and_weights(self, log_w):
        r""":math:`\mathcal{L}_k` per row, shape (n,), and the normalised
        weights :math:`\tilde w`, shape (k, n) (:func:`npvae.models.iwae.log_mean_exp`)."""
        return log_mean_exp(log_w)

r"""Evaluating a trained VAE beyond its ELBO.

* :func:`importance_weighted_log_likelihood` estimates :math:`\log p(x)`
  itself (Burda et al., 2016), a bound that tightens as ``k`` grows;
* :func:`kl_per_dimension` and :func:`active_units` show which latent
  dimensions the model uses (the rest have collapsed to the prior).
"""
import math

import numpy as np
from scipy.special import logsumexp

from ..core.losses import kl_standard_normal
from ..core.priors import SampledKL
from .parallel import Progress, block_streams, check_n_jobs, map_blocks, one_blas_thread

__all__ = ["importance_weighted_log_likelihood", "importance_weighted_block",
           "own_weights_block", "log_prob_in_place", "kl_per_dimension", "active_units",
           "active_units_per_layer"]

# Decoded entries scored at a time: about 400 kB of float32, which keeps the
# likelihood's passes in the CPU's cache (128 MNIST rows).
LIKELIHOOD_BLOCK_ENTRIES = 128 * 784


def _check_vae(model):
    # Every model with a prior p(z) has an ELBO and log p(x) to estimate.
    if getattr(model, "prior_", None) is None:
        raise TypeError(f"this needs a fitted VAE (a model with a prior p(z)), got "
                        f"{type(model).__name__}")


def importance_weighted_log_likelihood(model, X, k=1000, batch_rows=8192, random_state=0,
                                       callback=None, *, y=None, n_jobs=None):
    r"""Importance-weighted estimate of :math:`\log p(x)` per example
    (of :math:`\log p(x \mid y)` for a model that ``needs_labels``).

    .. math::
        \log p(x) \approx \log \frac1k \sum_{i=1}^k
            \frac{p(x \mid z_i)\, p(z_i)}{q(z_i \mid x)},
        \qquad z_i \sim q(z \mid x),

    computed with a running log-sum-exp so that it never overflows.  Its
    expectation is a lower bound on :math:`\log p(x)` that equals the ELBO
    at :math:`k = 1` and rises to :math:`\log p(x)` as :math:`k \to \infty`.
    With :math:`z = \mu + \sigma\odot\varepsilon` the log-weight is
    :math:`\log p(x \mid z) - (\log q(z \mid x) - \log p(z))`, the second
    term the model's prior's :class:`npvae.core.priors.SampledKL`.  The
    decoder runs without the caches of training (``Sequential.predict``), in
    the model's dtype; the log-weights are combined in float64.

    **Blocks and their noise.**  The examples are taken in consecutive
    blocks of :math:`r = \max(1, \lfloor\text{batch\_rows} / k\rfloor)`;
    block :math:`b` draws all its :math:`\varepsilon` from its own stream,
    the :math:`b`-th child of the seed's ``numpy.random.SeedSequence``
    (:func:`npvae.models.parallel.block_streams`), in pieces of at most
    ``batch_rows`` (example, sample) pairs.  The estimate is therefore a
    function of ``X``, ``k``, ``batch_rows`` and ``random_state`` alone:
    bit for bit the same for every ``n_jobs``.  With ``k > batch_rows / 2``
    every example is a block of its own: its estimate depends on its
    position in ``X``, but neither on the other rows nor, but for rounding,
    on ``batch_rows``.

    Parameters
    ----------
    model : VAE
        A fitted VAE (or IWAE, or ConditionalVAE with ``y``).  A model with
        ``importance_log_weights`` (two stochastic layers) computes its own
        log-weights from noise of width ``model.noise_dim``
        (:func:`own_weights_block`), in the same blocks and streams.
    X : array-like of shape (n_samples, n_features)
    k : int
        Importance samples per example.
    batch_rows : int
        How many (example, sample) pairs go through the decoder at once,
        in each worker; memory is about
        ``n_jobs * batch_rows * (n_features + widest layer)`` floats,
        whatever ``k`` and ``n_samples`` are.  Part of the estimate's
        definition when ``k <= batch_rows / 2`` (see above).
    random_state : int or numpy.random.Generator
        Source of the samples; the default makes the estimate repeatable.
    callback : callable, optional
        Called as ``callback(done, total)`` after every piece of a block,
        with the number of (example, sample) pairs done so far in all
        blocks and ``n_samples * k``, e.g. to drive a progress bar.  With
        ``n_jobs > 1`` it is called from the workers, one call at a time.
    y : array-like of shape (n_samples,), optional
        The labels, for a model that ``needs_labels``.
    n_jobs : int or None
        Blocks evaluated at once, each on its own thread with BLAS on one
        thread: None or 1 for one core, -1 for every core (scikit-learn's
        meaning).  Ctrl-C stops every worker within one piece of work.

    Returns
    -------
    ndarray of shape (n_samples,)
        The estimates, in nats (float64).
    """
    _check_vae(model)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, (int, np.integer)) \
            or batch_rows < 1:
        raise ValueError(f"batch_rows must be an integer >= 1, got {batch_rows!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    n_jobs = check_n_jobs(n_jobs)
    X = model.check_data(X)
    Y = model.labels_onehot(y, X.shape[0])
    n = X.shape[0]
    # Each block holds `rows` examples and draws `chunk` samples of each at a time.
    rows = max(1, batch_rows // k)
    chunk = min(k, batch_rows // rows)
    streams = block_streams(random_state, -(-n // rows))
    progress = Progress(callback, n * k)
    if hasattr(model, "importance_log_weights"):
        # The model computes its own log-weights from its noise (two stochastic layers).
        def block(b):
            part = slice(b * rows, (b + 1) * rows)
            return own_weights_block(model, X[part], k, chunk, streams[b], progress)
        return np.concatenate(map_blocks(block, len(streams), n_jobs, progress))
    with one_blas_thread():     # the codes, too, the same whatever the cores
        mu_all, logvar_all = model.encode(X, y)

    def block(b):
        part = slice(b * rows, (b + 1) * rows)
        return importance_weighted_block(model, X[part], None if Y is None else Y[part],
                                         mu_all[part], logvar_all[part], k, chunk,
                                         streams[b], progress)

    return np.concatenate(map_blocks(block, len(streams), n_jobs, progress))


def own_weights_block(model, x, k, chunk, rng, on_chunk=None):
    r"""The importance-weighted estimate of :math:`\log p(x_b)` for one block
    of rows of a model that computes its own log-weights from a block of
    noise, ``model.importance_log_weights(x, eps)`` with ``eps`` of shape
    (c, b, ``model.noise_dim``) (two stochastic layers, docs/math.md §9c):
    :math:`k` codes per row, ``chunk`` at a time, combined by a running
    log-sum-exp in float64.  Arguments as for :func:`importance_weighted_block`.

    Returns
    -------
    ndarray of shape (b,)
    """
    running = np.full(x.shape[0], -np.inf)
    for done in range(0, k, chunk):
        c = min(chunk, k - done)
        eps = rng.standard_normal((c, x.shape[0], model.noise_dim), dtype=model.dtype)
        running = np.logaddexp(running, logsumexp(model.importance_log_weights(x, eps), axis=0))
        if on_chunk is not None:
            on_chunk(c * x.shape[0])
    return running - math.log(k)


def importance_weighted_block(model, x, y_onehot, mu, logvar, k, chunk, rng, on_chunk=None):
    r"""The importance-weighted estimate of :math:`\log p(x_b)` for one block
    of rows, drawing :math:`k` codes per row, ``chunk`` at a time, from the
    generator ``rng``.

    Parameters
    ----------
    model : VAE
        A fitted model: its parameters are read, never written, so blocks
        may run in parallel threads (the prior's forward cache is
        overwritten, never read here).
    x : ndarray of shape (b, n_features)
        Checked rows of the model's dtype.
    y_onehot : ndarray of shape (b, n_classes) or None
        Their one-hot labels, for a model that ``needs_labels``.
    mu, logvar : ndarray of shape (b, latent_dim)
        :math:`q(z \mid x)` of the rows (``model.encode``).
    k, chunk : int
        Codes per row, and how many of them are decoded at once.
    rng : numpy.random.Generator
        Source of the noise :math:`\varepsilon`, (c, b, latent_dim) per chunk.
    on_chunk : callable, optional
        Called as ``on_chunk(pairs)`` after each chunk, with its number of
        (example, sample) pairs, e.g. a :class:`npvae.models.parallel.Progress`.

    Returns
    -------
    ndarray of shape (b,)
        The estimates, in nats (float64).
    """
    b, L = mu.shape
    sigma = np.exp(0.5 * logvar)
    kl = SampledKL(model.prior_)
    mu64, logvar64 = mu.astype(np.float64), logvar.astype(np.float64)
    running = np.full(b, -np.inf)      # log sum_i w_i over the chunks so far
    for done in range(0, k, chunk):
        c = min(chunk, k - done)
        eps = rng.standard_normal((c, b, L), dtype=model.dtype)
        z = mu + sigma * eps
        joined = model.join_label(z, y_onehot)
        out = model.decoder_.predict(joined.reshape(c * b, -1)).reshape(c, b, -1)
        log_w = log_prob_in_place(model.likelihood_, x, out).astype(np.float64)
        log_w -= kl.forward(mu64, logvar64, z.astype(np.float64), eps.astype(np.float64))
        running = np.logaddexp(running, logsumexp(log_w, axis=0))
        if on_chunk is not None:
            on_chunk(c * b)
    return running - math.log(k)


def log_prob_in_place(likelihood, x, decoded):
    r""":math:`\log p(x_r \mid o_{ir})` of the rows ``x`` (b, D) under a
    decoder's fresh output ``decoded`` (c, b, D), :math:`c` codes of each
    row: shape (c, b), in the likelihood's dtype.

    ``decoded`` is used up: it is scored in place
    (``likelihood.log_prob(..., overwrite=True)``), about
    ``LIKELIHOOD_BLOCK_ENTRIES`` entries at a time, so that the likelihood's
    passes run in the CPU's cache instead of streaming arrays of
    :math:`c \times b \times D` through memory.  Each code's log-probability
    is a sum over its own row alone, so the pieces give the numbers of one
    ``likelihood.log_prob(x, decoded)`` bit for bit: the one- and two-layer
    estimates are pinned so in tests/models/test_evaluation.py and
    test_two_layer_verbs.py.
    """
    step = max(1, LIKELIHOOD_BLOCK_ENTRIES // decoded[0].size)
    return np.concatenate([likelihood.log_prob(x, decoded[i:i + step], overwrite=True)
                           for i in range(0, decoded.shape[0], step)])


def kl_per_dimension(model, X, y=None):
    r"""Mean over ``X`` of the KL of each latent dimension, in nats.

    .. math::
        \mathrm{KL}_j = \frac1n \sum_i -\tfrac12\big(1 + \log\sigma_{ij}^2
            - \mu_{ij}^2 - \sigma_{ij}^2\big)

    The entries sum to the mean KL term of the ELBO; a dimension whose
    entry is near 0 carries no information about ``x``.

    Returns
    -------
    ndarray of shape (latent_dim,)
    """
    _check_vae(model)
    if not model.prior_.has_closed_form_kl:
        raise ValueError("the KL per dimension exists for the standard normal prior only; "
                         "a mixture prior does not factorise over dimensions")
    mu, logvar = model.encode(X, y)
    # A trailing axis of length 1 makes the KL's sum run over nothing.
    per_dim = kl_standard_normal(mu[..., None].astype(np.float64),
                                 logvar[..., None].astype(np.float64))
    return per_dim.mean(axis=0)


def _check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(
            threshold, (int, float, np.floating, np.integer)) \
            or not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")


def active_units(model, X, threshold=0.01, *, y=None):
    r"""Number of active latent units (Burda et al., 2016).

    A unit :math:`j` is active when its posterior mean varies with the data:

    .. math:: A_j = \operatorname{Var}_{x}\big(\mathbb{E}_{q(z \mid x)}[z_j]\big)
              = \operatorname{Var}_x \mu_j(x) > \text{threshold}

    Returns
    -------
    int
    """
    _check_vae(model)
    _check_threshold(threshold)
    variances = model.transform(X, y).astype(np.float64).var(axis=0)
    return int(np.sum(variances > threshold))


def active_units_per_layer(model, X, threshold=0.01, *, y=None):
    r"""Active units of each stochastic layer, bottom first (Burda et al.
    2016 report both layers'): :math:`\operatorname{Var}_x` of each layer's
    posterior mean above ``threshold``, the means from ``model.layer_means``
    (two stochastic layers: :math:`\mu_1(x)` and :math:`\mu_2(z_1)`), else
    the one layer's, ``transform``.

    Returns
    -------
    list of int
    """
    if not hasattr(model, "layer_means"):
        return [active_units(model, X, threshold, y=y)]
    _check_vae(model)
    _check_threshold(threshold)
    return [int(np.sum(m.astype(np.float64).var(axis=0) > threshold))
            for m in model.layer_means(X, y)]

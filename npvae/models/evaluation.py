r"""Evaluating a trained VAE beyond its ELBO.

* :func:`importance_weighted_log_likelihood` estimates :math:`\log p(x)`
  itself (Burda et al., 2016), a bound that tightens as ``k`` grows;
* :func:`kl_per_dimension` and :func:`active_units` show which latent
  dimensions the model uses (the rest have collapsed to the prior).
"""
import math

import numpy as np

from .conditional import ConditionalVAE
from .parallel import Progress, block_streams, check_n_jobs, map_blocks, one_blas_thread
from ..core.likelihoods import Bernoulli
from ..core.losses import kl_standard_normal
from .vae import VAE
from ..core.priors import StandardNormal

__all__ = ["importance_weighted_log_likelihood", "kl_per_dimension", "active_units"]

_LOG_2PI = math.log(2 * math.pi)


def _check_vae(model):
    if not isinstance(model, VAE):
        raise TypeError(f"this needs a fitted VAE, got {type(model).__name__}")
    if isinstance(model, ConditionalVAE):
        raise TypeError("this takes no labels, which a ConditionalVAE needs: use its "
                        "score(X, y) and transform(X, y)")


def _log_prior_minus_log_q(prior, z, eps, half_log_det):
    r""":math:`\log p(z) - \log q(z \mid x)` for :math:`z = \mu + \sigma
    \odot \varepsilon`; with :math:`N(0, I)` the constants cancel to
    :math:`-\tfrac12 \sum_j (z_j^2 - \varepsilon_j^2) + \tfrac12 \sum_j \log\sigma_j^2`."""
    if isinstance(prior, StandardNormal):
        return half_log_det - 0.5 * (_row_sums(z * z) - _row_sums(eps * eps))
    c, b, L = z.shape
    log_q = -0.5 * (L * _LOG_2PI + _row_sums(eps * eps)) - half_log_det
    return prior.log_prob(z.reshape(c * b, L)).reshape(c, b).astype(np.float64) - log_q


def importance_weighted_log_likelihood(model, X, k=1000, batch_rows=8192, random_state=0,
                                       callback=None, n_jobs=None):
    r"""Importance-weighted estimate of :math:`\log p(x)` per example.

    .. math::
        \log p(x) \approx \log \frac1k \sum_{i=1}^k
            \frac{p(x \mid z_i)\, p(z_i)}{q(z_i \mid x)},
        \qquad z_i \sim q(z \mid x),

    computed with a running log-sum-exp so that it never overflows.  Its
    expectation is a lower bound on :math:`\log p(x)` that equals the ELBO
    at :math:`k = 1` and rises to :math:`\log p(x)` as :math:`k \to \infty`.
    With :math:`z = \mu + \sigma\odot\varepsilon` the log-weight is

    .. math::
        \log w = \log p(x \mid z)
            - \tfrac12 \sum_j z_j^2 + \tfrac12 \sum_j \varepsilon_j^2
            + \tfrac12 \sum_j \log\sigma_j^2,

    the normalising constants of prior and posterior cancelling.  The
    decoder runs without the caches of training (``Sequential.predict``),
    in the model's dtype; the log-weights are combined in float64.

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
        A fitted VAE.
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
    with one_blas_thread():     # the codes, too, the same whatever the cores
        mu_all, logvar_all = model.encode(X)
    n = X.shape[0]
    # Each block holds `rows` examples and draws `chunk` samples of each at a time.
    rows = max(1, batch_rows // k)
    chunk = min(k, batch_rows // rows)
    streams = block_streams(random_state, -(-n // rows))
    progress = Progress(callback, n * k)

    def block(b):
        part = slice(b * rows, (b + 1) * rows)
        return _block_log_likelihood(model, X[part], mu_all[part], logvar_all[part], k, chunk,
                                     streams[b], progress)

    return np.concatenate(map_blocks(block, len(streams), n_jobs, progress))


def _block_log_likelihood(model, x, mu, logvar, k, chunk, rng, progress):
    r"""The estimate for one block of examples ``x`` (b, d) whose posterior
    is :math:`N(\mu, \operatorname{diag} e^{\log\sigma^2})` (b, L): ``k``
    samples of each, ``chunk`` at a time, all from ``rng``; ``progress`` is
    told the (example, sample) pairs of every chunk."""
    b, L = mu.shape
    sigma = np.exp(0.5 * logvar)
    half_log_det = 0.5 * logvar.sum(axis=-1, dtype=np.float64)     # (b,)
    running_max = np.full(b, -np.inf)
    running_sum = np.zeros(b)
    for done in range(0, k, chunk):
        c = min(chunk, k - done)
        eps = rng.standard_normal((c, b, L), dtype=model.dtype)
        z = mu + sigma * eps
        out = model.decoder_.predict(z.reshape(c * b, L)).reshape(c, b, -1)
        log_w = _log_prob_in_place(model.likelihood_, x, out).astype(np.float64)
        log_w += _log_prior_minus_log_q(model.prior_, z, eps, half_log_det)
        new_max = np.maximum(running_max, log_w.max(axis=0))
        running_sum *= np.exp(running_max - new_max)
        running_sum += np.exp(log_w - new_max).sum(axis=0)
        running_max = new_max
        progress(c * b)
    return running_max + np.log(running_sum) - math.log(k)


def _log_prob_in_place(likelihood, x, out):
    r""":math:`\log p(x_b \mid o_{cb})` of shape ``(c, b)`` for the decoder's
    fresh outputs ``out`` of shape ``(c, b, d)`` and the examples ``x`` of
    shape ``(b, d)``; the Bernoulli's overwrites ``out``."""
    if isinstance(likelihood, Bernoulli):
        return _bernoulli_log_prob_in_place(x, out)
    return likelihood.log_prob(x, out)


def _bernoulli_log_prob_in_place(x, logits, rows=512):
    r""":func:`npvae.core.losses.bernoulli_log_likelihood` of every sample's
    logits, in place of them:

    .. math::
        \log p(x \mid \ell) = \sum_d x_d \ell_d - \max(\ell_d, 0)
            - \log\big(1 + e^{-|\ell_d|}\big)
        = (x - \tfrac12) \cdot \ell - \tfrac12 \sum_d |\ell_d|
            - \sum_d \log\big(1 + e^{-|\ell_d|}\big)

    since :math:`\max(\ell, 0) = \frac12(\ell + |\ell|)`.  The dot products
    and sums over :math:`d` are matrix-vector products (BLAS), the rest one
    pass each over the logits, which are overwritten; about ``rows`` rows at
    a time, so that the passes after the first find them in the CPU's cache.
    """
    value = np.empty(logits.shape[:-1], logits.dtype)
    centred = x - 0.5
    step = max(1, rows // logits.shape[1])
    for i in range(0, logits.shape[0], step):
        block = logits[i:i + step]
        v = value[i:i + step]
        v[...] = _row_dots(block, centred)
        a = np.abs(block, out=block)
        v -= 0.5 * _row_sums(a)
        np.negative(a, out=a)
        np.exp(a, out=a)
        a += 1
        np.log(a, out=a)       # log(1 + e), e <= 1: as exact as log1p, and faster
        v -= _row_sums(a)
    return value


def _row_sums(a):
    r""":math:`\sum_d a_{\dots d}` as the product with a vector of ones."""
    return (a.reshape(-1, a.shape[-1]) @ np.ones(a.shape[-1], a.dtype)).reshape(a.shape[:-1])


def _row_dots(a, v):
    r""":math:`a_{cb} \cdot v_b` for ``a`` of shape ``(c, b, d)`` and ``v``
    of shape ``(b, d)``: one matrix-vector product per example."""
    return np.matmul(a.transpose(1, 0, 2), v[:, :, None])[..., 0].T


def kl_per_dimension(model, X):
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
    if not isinstance(model.prior_, StandardNormal):
        raise ValueError("the KL per dimension exists for the standard normal prior only; "
                         "a mixture prior does not factorise over dimensions")
    mu, logvar = model.encode(X)
    # A trailing axis of length 1 makes the KL's sum run over nothing.
    per_dim = kl_standard_normal(mu[..., None].astype(np.float64),
                                 logvar[..., None].astype(np.float64))
    return per_dim.mean(axis=0)


def active_units(model, X, threshold=0.01):
    r"""Number of active latent units (Burda et al., 2016).

    A unit :math:`j` is active when its posterior mean varies with the data:

    .. math:: A_j = \operatorname{Var}_{x}\big(\mathbb{E}_{q(z \mid x)}[z_j]\big)
              = \operatorname{Var}_x \mu_j(x) > \text{threshold}

    Returns
    -------
    int
    """
    _check_vae(model)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)) \
            or not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    variances = model.transform(X).astype(np.float64).var(axis=0)
    return int(np.sum(variances > threshold))

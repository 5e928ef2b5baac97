r"""The Variational Autoencoder and its deterministic sibling, as estimators.

Both follow scikit-learn's conventions: hyper-parameters in ``__init__``
(validated in ``fit``), learned state in attributes ending in ``_``, ``fit``
returns ``self``, and the verbs ``transform``, ``inverse_transform``,
``score`` and (VAE) ``sample`` let them sit beside ``PCA`` in a pipeline.

A VAE step reads as four steps, each a function with its equation:

1. encode: :math:`(\mu, \log\sigma^2) = \mathrm{enc}(x)`;
2. reparameterize: :math:`z = \mu + \sigma \odot \varepsilon`
   (:func:`npvae.layers.reparameterize`);
3. decode: :math:`p(x \mid z)` from :math:`\mathrm{dec}(z)`, Bernoulli logits
   or Gaussian means (:mod:`npvae.losses`);
4. loss: :math:`-\log p(x \mid z) + \beta\,\mathrm{KL}(q(z \mid x) \,\|\, N(0, I))`,

and its backward pass runs the same steps in reverse.
"""
import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import losses
from .checkpoints import load_checkpoint, register_estimators, save_checkpoint
from .layers import Dense, Sequential, mlp, ACTIVATIONS, flatten_parameters, sigmoid
from .layers import reparameterize, reparameterize_backward
from .optimizers import Adam, learning_rate_at
from .rng import as_generator

__all__ = ["VAE", "Autoencoder", "load_model"]

LIKELIHOODS = ("bernoulli", "gaussian")
DTYPES = ("float32", "float64")
LR_SCHEDULES = ("constant", "cosine")
_EVAL_BATCH = 4096
# The optimizer's one key: all parameters as one vector (see initialize).
FLAT = "parameters"


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_positive(name, value, allow_zero=False):
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _mean_feature_variance(X, block=4096):
    r""":math:`\frac1D \sum_d \operatorname{Var}(x_d)`, accumulated in
    float64 over row blocks (no copy of ``X``); inf if it overflows."""
    mean = X.mean(axis=0, dtype=np.float64)
    total = 0.0
    with np.errstate(over="ignore"):
        for start in range(0, X.shape[0], block):
            r = X[start:start + block] - mean
            total += float(np.einsum("ij,ij->", r, r))
    return total / X.size


class _ObservationNoise:
    r"""The learned :math:`\log\sigma^2` of the Gaussian decoder's isotropic
    noise, held like a layer's parameter (its gradient comes from the
    likelihood, see ``_log_px_backward``)."""

    def __init__(self, dtype):
        self.params = {"obs_logvar": np.zeros((), dtype=dtype)}
        self.grads = {"obs_logvar": np.zeros((), dtype=dtype)}


class _BaseAutoencoder(TransformerMixin, BaseEstimator):
    """What the VAE and the Autoencoder share: validation, the decoder's
    likelihood, the mini-batch training loop and batched evaluation."""

    _noisy = False  # whether the loss needs reparameterization noise

    # ------------------------------------------------------------ validation
    def _check_params(self):
        _check_int("latent_dim", self.latent_dim, 1)
        hidden = self.hidden_dims
        if isinstance(hidden, numbers.Integral):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ValueError(f"hidden_dims must be a tuple of ints, got {self.hidden_dims!r}") from None
        for h in hidden:
            _check_int("each entry of hidden_dims", h, 1)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; "
                             f"choose one of {sorted(ACTIVATIONS)}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {self.likelihood!r}; "
                             f"choose one of {LIKELIHOODS}")
        if self.obs_var is not None:
            _check_positive("obs_var", self.obs_var)
        _check_int("epochs", self.epochs, 0)
        _check_int("batch_size", self.batch_size, 1)
        _check_positive("learning_rate", self.learning_rate)
        if self.dtype in DTYPES and self.learning_rate >= float(np.finfo(self.dtype).max) / 10:
            # An Adam step moves each parameter by up to about learning_rate:
            # past this it overflows, and the parameters would be inf already.
            raise ValueError(f"learning_rate {self.learning_rate!r} is too large for "
                             f"{self.dtype}: one Adam step would overflow")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; "
                             f"choose one of {LR_SCHEDULES}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        return hidden

    def _validate_data(self, X, reset):
        """Return ``X`` as a C-contiguous 2-D array of the model's dtype, or
        raise an error that names what is wrong with it (or NotFittedError
        when ``reset`` is false and the model has no parameters yet)."""
        if not reset:
            check_is_fitted(self)
        if hasattr(X, "toarray"):
            raise TypeError("sparse input is not supported; pass X.toarray()")
        X = np.asarray(X)
        if X.dtype.kind == "O":
            # Numbers held as Python objects (say from a DataFrame) are fine.
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise TypeError(f"X must be numeric; its object array does not "
                                f"convert to numbers: {err}") from None
        if X.dtype.kind == "c":
            raise ValueError(f"Complex data not supported: X has dtype {X.dtype}")
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must be numeric, got an array of dtype {X.dtype}")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}. "
                             "Reshape your data: X.reshape(1, -1) for one sample")
        for axis, what in ((0, "sample"), (1, "feature")):
            if X.shape[axis] == 0:
                raise ValueError(f"X is empty: 0 {what}(s) (shape={X.shape}) "
                                 "while a minimum of 1 is required.")
        with np.errstate(over="ignore"):  # reported below, by name
            converted = np.ascontiguousarray(X, dtype=self.dtype)
        # min and max are NaN or infinite exactly when some entry is, and,
        # unlike isfinite(X), allocate nothing the size of X (fit_epoch
        # validates every epoch).
        lo, hi = converted.min(), converted.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            if np.isfinite(X).all():
                raise ValueError(
                    f"X has values too large for {self.dtype} (largest magnitude "
                    f"{np.abs(X).max():.4g}); rescale X or use dtype='float64'")
            raise ValueError("X contains NaN or infinity")
        X = converted
        if reset:
            self._check_params()
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {self.n_features_in_} features as input")
        if self.likelihood == "bernoulli" and (lo < 0 or hi > 1):
            raise ValueError(
                f"the Bernoulli likelihood needs X in [0, 1], got values in "
                f"[{lo:.4g}, {hi:.4g}]; rescale X or use likelihood='gaussian'")
        return X

    def _validate_codes(self, Z):
        check_is_fitted(self)
        Z = np.asarray(Z)
        if Z.dtype.kind not in "biuf":
            raise TypeError(f"Z must be numeric, got an array of dtype {Z.dtype}")
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim:
            raise ValueError(f"Z must have shape (n_samples, {self.latent_dim}), got {Z.shape}")
        if Z.shape[0] == 0:
            raise ValueError("Z is empty: 0 codes")
        Z = np.ascontiguousarray(Z, dtype=self.dtype)
        if not np.isfinite(Z).all():
            raise ValueError("Z contains NaN or infinity")
        return Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Outputs come in the model's own dtype, whatever the input's.
        tags.transformer_tags.preserves_dtype = [self.dtype]
        return tags

    # ------------------------------------------------------------ parameters
    def initialize(self, n_features, X=None):
        r"""Build fresh parameters for ``n_features`` inputs, and the
        optimizer and random generator of training; ``fit`` calls this.

        Parameters
        ----------
        n_features : int
        X : array-like of shape (n_samples, n_features), optional
            The training data (validated here, before anything changes).  A
            learned Gaussian noise variance then starts at the data's mean
            per-feature variance,
            :math:`\sigma^2_0 = \frac1D \sum_d \operatorname{Var}(x_d)`, the
            noise of a model that explains nothing, instead of 1: Adam
            moves :math:`\log\sigma^2` by about ``learning_rate`` a step,
            so from 1 it would take thousands of steps to reach the scale
            of data in [0, 1], with the decoder's fit drowned in noise until
            then.  (Data on a scale far from 1 and not in [0, 1] is best
            standardised first, as for any Gaussian model: the decoder's
            initial outputs are of order 1.)

        Returns
        -------
        self
        """
        _check_int("n_features", n_features, 1)
        if X is not None:
            X = self._validate_data(X, reset=True)
            if X.shape[1] != n_features:
                raise ValueError(f"X has {X.shape[1]} features, but n_features is {n_features}")
        return self._initialize(int(n_features), X)

    def _initialize(self, n_features, X):
        # X: validated training data, or None.  Nothing changes before the
        # hyper-parameters and the seed have passed their checks.
        hidden = self._check_params()
        rng = as_generator(self.random_state)
        self.n_features_in_, self.rng_ = n_features, rng
        self._build(n_features, hidden, rng, np.dtype(self.dtype))
        self._tie_parameters()
        if X is not None and self._learn_obs_var:
            variance = _mean_feature_variance(X)
            if 0 < variance < math.inf:     # constant data: nothing to scale to
                # Kept where exp(-log sigma^2) and its square stay finite in the dtype.
                bound = 0.5 * math.log(float(np.finfo(self.dtype).max))
                self._noise.params["obs_logvar"][...] = min(max(math.log(variance), -bound),
                                                            bound)
        self.optimizer_ = Adam(learning_rate=self.learning_rate)
        self.n_iter_ = 0
        self.history_ = []
        return self

    def __setstate__(self, state):
        # A deep copy or an unpickled model has each view copied on its own:
        # tie the layers' arrays to one parameter vector again.  A shallow
        # copy shares the original's layers and vector, and must leave them.
        super().__setstate__(state)
        if hasattr(self, "params_") and not np.shares_memory(
                next(iter(self.params_.values())), self._theta):
            self._tie_parameters()

    def _tie_parameters(self):
        # One vector of all parameters (and one of their gradients) lets
        # Adam and the finiteness check run a few array operations per
        # step instead of a few per parameter array; params_ holds views.
        self._theta, self._theta_grad, named = flatten_parameters(self._param_layers())
        self.params_ = {name: p for name, p, _ in named}
        self._grads = {name: g for name, _, g in named}

    def _build_decoder(self, n_features, hidden, rng, dtype):
        self._decoder = mlp([self.latent_dim, *reversed(hidden), n_features],
                            self.activation, rng, dtype)
        self._learn_obs_var = self.likelihood == "gaussian" and self.obs_var is None
        if self._learn_obs_var:
            self._noise = _ObservationNoise(dtype)

    def _decoder_layers(self):
        yield from self._decoder.named_layers("decoder.")
        if self._learn_obs_var:
            yield "", self._noise

    def _unflatten(self, vector):
        """Views of a parameter-shaped vector (an Adam moment), by name."""
        views, start = {}, 0
        for name, p in self.params_.items():
            views[name] = vector[start:start + p.size].reshape(p.shape)
            start += p.size
        return views

    @property
    def obs_logvar_(self):
        r""":math:`\log\sigma^2` of the Gaussian observation noise (learned or fixed)."""
        check_is_fitted(self)
        if self.likelihood != "gaussian":
            raise AttributeError("obs_logvar_ exists only for likelihood='gaussian'")
        if self._learn_obs_var:
            return float(self._noise.params["obs_logvar"])
        return math.log(self.obs_var)

    # ------------------------------------------------------------ likelihood
    def _log_px(self, x, out):
        """:math:`\\log p(x \\mid z)` per example from the decoder output."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood_fast(x, out)
        return losses.gaussian_log_likelihood(x, out, self._obs_logvar_value())

    def _log_px_sum(self, x, out):
        """:math:`\\sum_i \\log p(x_i \\mid z_i)` over the batch, caching what
        :meth:`_log_px_backward` needs."""
        if self.likelihood == "bernoulli":
            # The gradient shares the forward's exponentials: keep it.
            log_px, self._residual = losses.bernoulli_log_likelihood_and_residual(x, out)
            return log_px
        return float(self._log_px(x, out).sum())

    def _log_px_backward(self, x, out, scale):
        """Backpropagate ``scale * sum log p(x|z)`` into the decoder output
        (and into the learned noise variance); returns d/d out. Follows a
        ``_log_px_sum(x, out)``."""
        if self.likelihood == "bernoulli":
            grad, self._residual = self._residual, None
            grad *= scale
            return grad
        g, g_logvar = losses.gaussian_log_likelihood_backward(
            x, out, self._obs_logvar_value())
        if self._learn_obs_var:
            self._noise.grads["obs_logvar"][...] = scale * g_logvar
        g *= scale
        return g

    def _obs_logvar_value(self):
        if self._learn_obs_var:
            return self._noise.params["obs_logvar"]
        return np.asarray(math.log(self.obs_var), dtype=self.dtype)

    def _decode_mean(self, out):
        return sigmoid(out) if self.likelihood == "bernoulli" else out

    # ------------------------------------------------------------ training
    def fit(self, X, y=None):
        """Train on ``X`` with Adam on shuffled mini-batches for ``epochs``
        epochs, from freshly initialised parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        X = self._validate_data(X, reset=True)
        self._initialize(X.shape[1], X)
        for _ in range(self.epochs):
            self.fit_epoch(X)
        return self

    def fit_epoch(self, X, callback=None):
        """Train for one more epoch, continuing from the current state.

        The training state — parameters, Adam's moments, the random
        generator ``rng_`` and ``n_iter_`` — is all in attributes, so a
        checkpoint of them resumes bit for bit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        callback : callable, optional
            Called after every mini-batch as
            ``callback(batch_index, n_batches, mean_loss_so_far)``.

        Returns
        -------
        dict
            The epoch's means per example: ``loss`` (what was minimised),
            ``recon`` (:math:`-\\log p(x \\mid z)`, nats) and, for the VAE,
            ``kl`` (nats).

        Raises
        ------
        FloatingPointError
            When a mini-batch's loss or gradient is not finite; that step is
            not applied, so the parameters stay finite.
        """
        check_is_fitted(self)
        X = self._validate_data(X, reset=False)
        n = X.shape[0]
        bs = min(self.batch_size, n)
        n_batches = -(-n // bs)
        perm = self.rng_.permutation(n)
        # Each batch is gathered into one reused buffer: a fresh array per
        # step costs more (page faults) than the copy itself.
        batch_buffer = np.empty((bs, X.shape[1]), dtype=X.dtype)
        totals = {}
        for i in range(n_batches):
            rows = perm[i * bs:(i + 1) * bs]
            # The rows come from a permutation, so they are always in range:
            # mode="clip" changes no result, and spares take() the buffered
            # copy it makes for out= under the default mode="raise" (with it
            # the gather takes 2-5 times as long).
            xb = np.take(X, rows, axis=0, out=batch_buffer[:len(rows)], mode="clip")
            progress = (self.n_iter_ + i / n_batches) / max(self.epochs, 1)
            self.optimizer_.learning_rate = learning_rate_at(
                self.learning_rate, self.lr_schedule, progress)
            terms = self._train_step(xb, self.n_iter_ + (i + 1) / n_batches)
            # A finite loss can still have an infinite gradient, and one Adam
            # step with it (inf / inf) would leave NaN parameters: check both.
            bad = None if math.isfinite(terms["loss"]) else f"the loss is {terms['loss']}"
            # |g|^2 is finite exactly when every entry is (squares cannot
            # cancel), barring overflow, which the exact test then rules out.
            if bad is None and not math.isfinite(np.dot(self._theta_grad, self._theta_grad)):
                bad = next((f"the gradient of {name!r} is not finite"
                            for name, g in self._grads.items() if not np.isfinite(g).all()), None)
            if bad is not None:
                raise FloatingPointError(
                    f"training diverged at epoch {self.n_iter_ + 1}, batch {i + 1}: "
                    f"{bad}; the parameters are left as they were before this "
                    f"step. Try a smaller learning_rate.")
            self.optimizer_.step({FLAT: self._theta}, {FLAT: self._theta_grad})
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value * xb.shape[0]
            if callback is not None:
                callback(i + 1, n_batches, totals["loss"] / ((i * bs) + xb.shape[0]))
        self.n_iter_ += 1
        record = {key: value / n for key, value in totals.items()}
        self.history_.append({"epoch": self.n_iter_, **record})
        if self.verbose:
            parts = "  ".join(f"{k} {v:.4f}" for k, v in record.items())
            print(f"epoch {self.n_iter_}/{self.epochs}  {parts}", flush=True)
        return record

    # ------------------------------------------------------------ evaluation
    def _batched(self, X, fn):
        """Apply ``fn`` to row blocks of ``X`` and stack what it returns."""
        parts = [fn(X[i:i + _EVAL_BATCH]) for i in range(0, X.shape[0], _EVAL_BATCH)]
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate(p) for p in zip(*parts))
        return np.concatenate(parts)

    def decode(self, Z):
        """Map codes to the decoder's mean: Bernoulli probabilities
        :math:`\\sigma(\\mathrm{dec}(z))` or Gaussian means :math:`\\mathrm{dec}(z)`.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        Z = self._validate_codes(Z)
        return self._batched(Z, lambda z: self._decode_mean(self._decoder.forward(z)))

    def inverse_transform(self, Z):
        """Same as :meth:`decode`: codes back to data space."""
        return self.decode(Z)

    # ------------------------------------------------------------ persistence
    def save(self, path):
        """Write a checkpoint (``path`` + ``.npz`` and ``.json``, no pickle);
        see :mod:`npvae.checkpoints`. Returns the ``.json`` path."""
        return save_checkpoint(self, path)

    @classmethod
    def load(cls, path):
        """Rebuild a model saved by :meth:`save`, bit for bit; ``path`` is a
        checkpoint file or a run folder (its latest checkpoint)."""
        model = load_checkpoint(path)
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over ``X``, in nats; higher is better."""
        return float(np.mean(self.score_samples(X)))


class VAE(_BaseAutoencoder):
    r"""Variational Autoencoder (Kingma & Welling, 2014) in NumPy.

    The encoder maps :math:`x` to the mean and log-variance of a diagonal
    Gaussian :math:`q(z \mid x)`; the decoder maps :math:`z` to
    :math:`p(x \mid z)`; training maximises the evidence lower bound

    .. math::
        \mathrm{ELBO}(x) = \mathbb{E}_{q(z \mid x)} \log p(x \mid z)
            - \mathrm{KL}\big(q(z \mid x) \,\|\, N(0, I)\big) \le \log p(x)

    (with the KL weighted by :math:`\beta` in the training loss).

    Parameters
    ----------
    latent_dim : int, default=2
        Dimension of :math:`z`.
    hidden_dims : tuple of int, default=(400,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        ``()`` makes both encoder and decoder linear.
    activation : str, default="relu"
        One of ``npvae.layers.ACTIVATIONS``.
    likelihood : {"bernoulli", "gaussian"}, default="bernoulli"
        :math:`p(x \mid z)`: Bernoulli with logits from the decoder (needs
        :math:`x \in [0, 1]`), or Gaussian with the decoder's mean.
    obs_var : float or None, default=None
        Gaussian only: fixed observation variance :math:`\sigma^2`, or
        ``None`` to learn one isotropic :math:`\log\sigma^2`.
    beta : float, default=1.0
        Weight of the KL term in the training loss (:math:`\beta`-VAE).
    kl_warmup : float, default=0
        Epochs over which the KL weight rises linearly from 0 to ``beta``.
    epochs : int, default=20
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam's step size.
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` decays the step size to 0 over ``epochs``.
    dtype : {"float32", "float64"}, default="float32"
        float32 for speed, float64 for gradient checks.
    random_state : int, numpy.random.Generator or None
        Seeds initialisation, shuffling and the noise :math:`\varepsilon`.
    verbose : bool, default=False
        Print one line per epoch.

    Attributes
    ----------
    params_ : dict of str to ndarray
        The live parameter arrays, by name: views into one vector of all
        parameters, so writing into them changes the model.
    n_features_in_ : int
    n_iter_ : int
        Epochs trained.
    history_ : list of dict
        Per-epoch means of ``loss``, ``recon`` (:math:`-\log p(x|z)`) and ``kl``.
    optimizer_ : Adam
        Steps the parameter vector as a whole: its moments ``m`` and ``v``
        are one vector each, under the key ``npvae.models.FLAT``.
    rng_ : numpy.random.Generator
        The generator of training, continued across ``fit_epoch`` calls.
    """

    _noisy = True

    def __init__(self, latent_dim=2, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, beta=1.0, kl_warmup=0,
                 epochs=20, batch_size=128, learning_rate=1e-3,
                 lr_schedule="constant", dtype="float32", random_state=None,
                 verbose=False):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.likelihood = likelihood
        self.obs_var = obs_var
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self):
        hidden = super()._check_params()
        _check_positive("beta", self.beta, allow_zero=True)
        _check_positive("kl_warmup", self.kl_warmup, allow_zero=True)
        return hidden

    def _build(self, n_features, hidden, rng, dtype):
        self._encoder = mlp([n_features, *hidden], self.activation, rng, dtype,
                            final_activation=True)
        width = hidden[-1] if hidden else n_features
        self._mu_head = Dense(width, self.latent_dim, rng, "glorot", dtype)
        self._logvar_head = Dense(width, self.latent_dim, rng, "glorot", dtype)
        self._build_decoder(n_features, hidden, rng, dtype)

    def _param_layers(self):
        yield from self._encoder.named_layers("encoder.")
        yield "mu.", self._mu_head
        yield "logvar.", self._logvar_head
        yield from self._decoder_layers()

    # ------------------------------------------------------------ the 4 steps
    def _encode(self, X):
        r"""Step 1: :math:`h = \mathrm{enc}(x)`, :math:`\mu = h W_\mu + b_\mu`,
        :math:`\log\sigma^2 = h W_{\log\sigma^2} + b_{\log\sigma^2}`."""
        h = self._encoder.forward(X)
        return self._mu_head.forward(h), self._logvar_head.forward(h)

    def _forward(self, X, eps, for_backward=False):
        """Steps 1-4 for a batch: :math:`\\log p(x \\mid z)` and the KL per
        example, or with ``for_backward`` their sums over the batch (all the
        loss needs), caching what the backward pass needs."""
        mu, logvar = self._encode(X)
        z = reparameterize(mu, logvar, eps)
        out = self._decoder.forward(z)
        kl = losses.kl_standard_normal(mu, logvar)
        if for_backward:
            return mu, logvar, out, self._log_px_sum(X, out), float(kl.sum())
        return mu, logvar, out, self._log_px(X, out), kl

    def _loss_backward(self, X, mu, logvar, out, eps, beta):
        r"""Backward through steps 4 to 1 of the mean loss
        :math:`\frac1n \sum_i -\log p(x_i \mid z_i) + \beta\,\mathrm{KL}_i`,
        filling every parameter's gradient."""
        n = X.shape[0]
        grad_out = self._log_px_backward(X, out, -1.0 / n)
        grad_z = self._decoder.backward(grad_out)
        grad_mu, grad_logvar = reparameterize_backward(grad_z, logvar, eps)
        kl_mu, kl_logvar = losses.kl_standard_normal_backward(mu, logvar)
        grad_mu = grad_mu + (beta / n) * kl_mu
        grad_logvar = grad_logvar + (beta / n) * kl_logvar
        need_x = bool(self._encoder.layers)
        grad_h = self._mu_head.backward(grad_mu, input_grad=need_x)
        grad_h_lv = self._logvar_head.backward(grad_logvar, input_grad=need_x)
        if need_x:
            self._encoder.backward(grad_h + grad_h_lv, input_grad=False)

    def _train_step(self, xb, epoch_progress):
        eps = self.rng_.standard_normal((xb.shape[0], self.latent_dim), dtype=self.dtype)
        beta = self._beta_at(epoch_progress)
        mu, logvar, out, log_px, kl = self._forward(xb, eps, for_backward=True)
        recon, kl_mean = -log_px / xb.shape[0], kl / xb.shape[0]
        self._loss_backward(xb, mu, logvar, out, eps, beta)
        return {"loss": recon + beta * kl_mean, "recon": recon, "kl": kl_mean}

    def _beta_at(self, epoch_progress):
        if self.kl_warmup > 0:
            return float(self.beta) * min(1.0, epoch_progress / self.kl_warmup)
        return float(self.beta)

    def _check_eps(self, X, eps):
        eps = np.asarray(eps, dtype=self.dtype)
        if eps.shape != (X.shape[0], self.latent_dim):
            raise ValueError(f"eps must have shape {(X.shape[0], self.latent_dim)}, "
                             f"got {eps.shape}")
        if not np.isfinite(eps).all():
            raise ValueError("eps contains NaN or infinity")
        return eps

    # ------------------------------------------------------------ for study
    def loss(self, X, eps):
        r"""Mean training loss per example for a fixed noise ``eps``:
        :math:`\frac1n\sum_i -\log p(x_i \mid z_i) + \beta\,\mathrm{KL}_i`.
        A deterministic function of the parameters, for gradient checks."""
        X = self._validate_data(X, reset=False)
        eps = self._check_eps(X, eps)
        *_, log_px, kl = self._forward(X, eps)
        return float(np.mean(-log_px + self.beta * kl))

    def loss_and_grads(self, X, eps=None):
        """The mean loss per example and its gradient for every parameter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        eps : ndarray of shape (n_samples, latent_dim), optional
            Reparameterization noise; drawn from ``rng_`` when omitted.
            With it given the call is deterministic.

        Returns
        -------
        loss : float
            Mean negative ELBO per example, with the KL weighted by ``beta``.
        grads : dict of str to ndarray
            Copies of the gradients, keyed like ``params_``.
        """
        if not hasattr(self, "params_"):
            raise AttributeError("call initialize(n_features) or fit first")
        X = self._validate_data(X, reset=False)
        if eps is None:
            eps = self.rng_.standard_normal((X.shape[0], self.latent_dim), dtype=self.dtype)
        eps = self._check_eps(X, eps)
        mu, logvar, out, log_px, kl = self._forward(X, eps, for_backward=True)
        self._loss_backward(X, mu, logvar, out, eps, float(self.beta))
        loss = (-log_px + float(self.beta) * kl) / X.shape[0]
        return loss, {name: g.copy() for name, g in self._grads.items()}

    # ------------------------------------------------------------ public verbs
    def encode(self, X):
        r"""Parameters of :math:`q(z \mid x)`.

        Returns
        -------
        mu, logvar : ndarray of shape (n_samples, latent_dim)
        """
        check_is_fitted(self)
        X = self._validate_data(X, reset=False)
        return self._batched(X, self._encode)

    def transform(self, X):
        r"""The posterior means :math:`\mu(x)`, the VAE's code for ``X``."""
        return self.encode(X)[0]

    def reparameterize(self, mu, logvar, random_state=None):
        r""":math:`z = \mu + \sigma \odot \varepsilon` with fresh noise
        (from ``random_state``, or the model's own ``rng_``)."""
        check_is_fitted(self)
        rng = self.rng_ if random_state is None else as_generator(random_state)
        mu = np.asarray(mu, dtype=self.dtype)
        return reparameterize(mu, np.asarray(logvar, dtype=self.dtype),
                              rng.standard_normal(mu.shape, dtype=self.dtype))

    def sample(self, n_samples=1, random_state=None):
        r"""Decode draws from the prior: :math:`z \sim N(0, I)`, returning the
        decoder's mean (Bernoulli probabilities or Gaussian means).

        Parameters
        ----------
        n_samples : int
        random_state : int, Generator or None
            Source of :math:`z`; the model's ``rng_`` when None.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        _check_int("n_samples", n_samples, 1)
        rng = self.rng_ if random_state is None else as_generator(random_state)
        return self.decode(rng.standard_normal((n_samples, self.latent_dim),
                                               dtype=self.dtype))

    def elbo_terms(self, X, random_state=0):
        r"""The two terms of the ELBO per example, in nats.

        Returns
        -------
        log_px_given_z : ndarray of shape (n_samples,)
            One-sample estimate of :math:`\mathbb{E}_q \log p(x \mid z)`.
        kl : ndarray of shape (n_samples,)
            :math:`\mathrm{KL}(q(z \mid x) \,\|\, N(0, I))`, exact.

        Notes
        -----
        The noise comes from a generator seeded with ``random_state`` (0 by
        default), so repeated calls agree.
        """
        check_is_fitted(self)
        X = self._validate_data(X, reset=False)
        rng = as_generator(random_state)

        def terms(xb):
            eps = rng.standard_normal((xb.shape[0], self.latent_dim), dtype=self.dtype)
            *_, log_px, kl = self._forward(xb, eps)
            return log_px, kl
        return self._batched(X, terms)

    def score_samples(self, X):
        r"""ELBO per example, :math:`\log p(x \mid z) - \mathrm{KL}` with
        :math:`\beta = 1`, in nats: a lower bound on :math:`\log p(x)` in the
        same sense and units as ``PCA.score_samples``."""
        log_px, kl = self.elbo_terms(X)
        return log_px - kl


class Autoencoder(_BaseAutoencoder):
    r"""A plain Autoencoder on the same layers: a deterministic code
    :math:`z = \mathrm{enc}(x)`, no KL and no sampling.

    Training minimises the reconstruction loss
    :math:`-\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))`: binary
    cross-entropy for ``likelihood="bernoulli"``, and for ``"gaussian"`` the
    squared error scaled by :math:`1/2\sigma^2` plus a constant.

    Parameters are those of :class:`VAE` without ``beta`` and ``kl_warmup``.
    """

    def __init__(self, latent_dim=2, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, epochs=20, batch_size=128,
                 learning_rate=1e-3, lr_schedule="constant", dtype="float32",
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
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _build(self, n_features, hidden, rng, dtype):
        self._encoder = mlp([n_features, *hidden, self.latent_dim], self.activation,
                            rng, dtype)
        self._build_decoder(n_features, hidden, rng, dtype)

    def _param_layers(self):
        yield from self._encoder.named_layers("encoder.")
        yield from self._decoder_layers()

    def _forward(self, X, for_backward=False):
        # Per example, or with for_backward the batch's sum (as the VAE's).
        out = self._decoder.forward(self._encoder.forward(X))
        return out, self._log_px_sum(X, out) if for_backward else self._log_px(X, out)

    def _loss_backward(self, X, out):
        grad_out = self._log_px_backward(X, out, -1.0 / X.shape[0])
        self._encoder.backward(self._decoder.backward(grad_out), input_grad=False)

    def _train_step(self, xb, epoch_progress):
        out, log_px = self._forward(xb, for_backward=True)
        self._loss_backward(xb, out)
        recon = -log_px / xb.shape[0]
        return {"loss": recon, "recon": recon}

    def loss(self, X, eps=None):
        r"""Mean reconstruction loss :math:`\frac1n \sum_i -\log p(x_i \mid
        \mathrm{dec}(\mathrm{enc}(x_i)))`; ``eps`` is ignored (no noise)."""
        X = self._validate_data(X, reset=False)
        return -float(np.mean(self._forward(X)[1]))

    def loss_and_grads(self, X, eps=None):
        """The mean reconstruction loss and its gradient for every parameter
        (copies keyed like ``params_``); ``eps`` is ignored."""
        if not hasattr(self, "params_"):
            raise AttributeError("call initialize(n_features) or fit first")
        X = self._validate_data(X, reset=False)
        out, log_px = self._forward(X, for_backward=True)
        self._loss_backward(X, out)
        return -log_px / X.shape[0], {n: g.copy() for n, g in self._grads.items()}

    def transform(self, X):
        """The code :math:`z = \\mathrm{enc}(x)`."""
        check_is_fitted(self)
        X = self._validate_data(X, reset=False)
        return self._batched(X, self._encoder.forward)

    def score_samples(self, X):
        r""":math:`\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))` per example, in
        nats. Not a bound on :math:`\log p(x)`: the Autoencoder has no prior."""
        check_is_fitted(self)
        X = self._validate_data(X, reset=False)
        return self._batched(X, lambda xb: self._forward(xb)[1])


def load_model(path, return_extra=False):
    """Any npvae estimator from a checkpoint file or a run folder (its
    latest checkpoint); see :func:`npvae.checkpoints.load_checkpoint`."""
    return load_checkpoint(path, return_extra=return_extra)


register_estimators((VAE, Autoencoder), FLAT)

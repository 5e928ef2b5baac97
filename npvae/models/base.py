r"""What every npvae estimator shares: validation, the decoder and its
likelihood, the one mini-batch training loop, the update, batched
evaluation, saving.

Every model is built by composition from the pieces of :mod:`npvae.core`,
each with the contract ``forward`` (per-row values) and ``backward(dout)``
(``dout`` of exactly that shape).  A model says how to run one batch
forward and backward, :meth:`BaseAutoencoder.forward_backward`, which fills
the gradient vector ``parameters_.grad``; this class runs the rest, the same
for every model: the shuffled mini-batches (:meth:`fit_epoch`), then
:meth:`BaseAutoencoder.update`, which refuses a non-finite step and takes one
Adam step, as ``loss.backward(); optimizer.step()`` separate them.

The estimators follow scikit-learn's conventions: hyper-parameters in
``__init__`` (keyword-only after ``latent_dim``, validated once per ``fit``
by scikit-learn's public ``check_scalar`` and ``check_array``), learned state
in attributes ending in ``_``, ``fit`` returns ``self``, and the verbs
``transform``, ``inverse_transform``, ``score`` and (VAE) ``sample`` let
them sit beside ``PCA`` in a pipeline.
"""
import math
from numbers import Integral, Real
from typing import NamedTuple, Optional

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_scalar
from sklearn.utils.validation import check_array, check_is_fitted

from ..core.layers import ACTIVATIONS, Join, mlp
from ..core.likelihoods import LIKELIHOODS, make_likelihood
from ..core.optimizers import Adam, learning_rate_at
from ..core.parameters import ParameterVector
from ..core.rng import as_generator
from ..core.validation import check_finite, check_int, check_memory, refuse_non_finite
from .hyperparameters import by_value, check_number, check_option
from .saving import FLAT, load_checkpoint, save_checkpoint

__all__ = ["BaseAutoencoder", "Batch", "DTYPES", "EVAL_BLOCK_ROWS", "FLAT", "image_shape_of",
           "per_row"]

DTYPES = ("float32", "float64")
LR_SCHEDULES = ("constant", "cosine")
# Rows per block when scoring, encoding or decoding: bounds the memory of
# the layers' temporaries whatever the number of rows.
EVAL_BLOCK_ROWS = 4096


def per_row(n, value, dtype):
    """``value`` for each of ``n`` rows, shape (n,): the per-row gradient a
    model hands a piece's ``backward`` (``np.full``, without its Python
    overhead, which the digits' small step feels)."""
    rows = np.empty(n, dtype)
    rows.fill(value)
    return rows


def image_shape_of(X):
    """``(height, width)`` of a stack of images ``X`` of shape (n_samples,
    height, width), else None."""
    # np.shape converts what is no array: lists are read so, other array-likes
    # (scikit-learn's checks pass one that refuses) by their shape attribute.
    shape = np.shape(X) if isinstance(X, (np.ndarray, list, tuple)) else getattr(X, "shape", ())
    return tuple(int(v) for v in shape[1:]) if len(shape) == 3 else None


class Batch(NamedTuple):
    r"""One mini-batch as a model's :meth:`~BaseAutoencoder.forward_backward`
    takes it.

    Attributes
    ----------
    x : ndarray of shape (n, n_features)
        The rows.
    y_onehot : ndarray of shape (n, n_classes), or None
        The rows' one-hot labels, for a model that ``needs_labels``.
    eps : ndarray of shape (n, latent_dim) or (k, n, latent_dim), or None
        The reparameterization noise (None for the Autoencoder).
    """
    x: np.ndarray
    y_onehot: Optional[np.ndarray] = None
    eps: Optional[np.ndarray] = None


class BaseAutoencoder(TransformerMixin, BaseEstimator):
    """What the VAE and the Autoencoder share: validation, the decoder and
    its likelihood, the mini-batch training loop, the update and batched
    evaluation."""

    # Whether fit, fit_epoch and the scores take each row's label y.
    needs_labels = False
    # Whether the model has a prior p(z): an ELBO, samples and log p(x).
    has_prior = False
    # How many layers of codes z the model stacks.
    stochastic_layers = 1
    # Whether it trains the importance-weighted bound L_k (an IWAE), not the ELBO.
    importance_weighted = False
    # Hyper-parameters newer than the checkpoint format: a checkpoint that
    # lacks one was written before it existed, with its default's behaviour.
    params_added_later = ("beta_1", "beta_2", "epsilon", "output_bias_init")
    # The hyper-parameters (of those a model has) that fix what fit builds: the
    # networks' sizes, the activation, likelihood, prior and dtype.
    built_from = ("latent_dim", "latent_dims", "hidden_dims", "activation", "likelihood",
                  "obs_var", "prior", "n_components", "dtype")

    # ------------------------------------------------------------ validation
    def check_params(self):
        """Validate the hyper-parameters; return ``hidden_dims`` as a tuple
        (as :meth:`check_architecture` reads it)."""
        hidden = self.check_architecture()
        check_option(self, "activation", ACTIVATIONS)
        check_option(self, "likelihood", LIKELIHOODS)
        check_number(self, "obs_var", Real, 0, low_open=True, none_ok=True)
        if self.obs_var is not None and self.likelihood != "gaussian":
            raise ValueError(f"{type(self).__name__}.obs_var is the noise variance of "
                             f"likelihood='gaussian'; with likelihood={self.likelihood!r} "
                             f"it does nothing: leave it None")
        check_number(self, "epochs", Integral, 0)
        check_number(self, "batch_size", Integral, 1)
        check_number(self, "learning_rate", Real, 0, low_open=True)
        check_option(self, "lr_schedule", LR_SCHEDULES)
        check_option(self, "dtype", DTYPES)
        check_number(self, "beta_1", Real, 0, 1)
        check_number(self, "beta_2", Real, 0, 1)
        check_number(self, "epsilon", Real, 0, low_open=True)
        check_option(self, "output_bias_init", ("zeros", "data"))
        check_scalar(self.verbose, f"{type(self).__name__}.verbose", (bool, np.bool_, Integral))
        # random_state is checked by npvae.core.rng.as_generator when used.
        if self.learning_rate >= float(np.finfo(self.dtype).max) / 10:
            # An Adam step moves each parameter by up to about learning_rate:
            # past this it overflows, and the parameters would be inf already.
            raise ValueError(f"learning_rate {self.learning_rate!r} is too large for "
                             f"{self.dtype}: one Adam step would overflow")
        return hidden

    def check_architecture(self):
        """Validate ``latent_dim`` and ``hidden_dims``; return ``hidden_dims``
        as a tuple of ints (a model with more stochastic layers reads its
        own)."""
        check_number(self, "latent_dim", Integral, 1)
        hidden = self.hidden_dims
        if isinstance(hidden, (str, bytes)) or hidden is None or not (
                isinstance(hidden, Integral) or np.iterable(hidden)):
            raise ValueError(f"{type(self).__name__}.hidden_dims must be an int or a "
                             f"sequence of ints, got {hidden!r}")
        hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
        for h in hidden:
            if isinstance(h, bool) or not isinstance(h, Integral) or h < 1:
                raise ValueError(f"each entry of hidden_dims must be an integer >= 1, "
                                 f"got {h!r}")
        return hidden

    def check_fitted(self):
        """scikit-learn's ``check_is_fitted``, then a ValueError naming a hyper-parameter
        that fixes what fit built and has changed since (by ``set_params``): the fitted
        parameters cannot serve it, so every verb that uses them (``fit_epoch`` too, which
        continues them) refuses until ``fit`` builds anew."""
        check_is_fitted(self)
        now = self.architecture(self.built_with_)
        for name, fitted in self.built_with_.items():
            if now.get(name) != fitted:     # n_components goes with a mixture prior
                value = getattr(self, name)
                raise ValueError(f"{type(self).__name__}.{name} is {value!r}, but the model "
                                 f"was fitted with {name}={fitted!r}; call fit again to use "
                                 f"the new value (or set it back)")

    def architecture(self, names=None):
        """The hyper-parameters ``names`` (default: those of ``built_from``
        the model has) by value, as :meth:`check_fitted` compares them:
        every sequence a tuple, ``hidden_dims`` as :meth:`check_architecture`
        reads it (``4`` is ``(4,)``, the same network); ``n_components`` only
        for a mixture prior, the one prior that has components."""
        if names is None:
            names = [k for k in self.built_from if k in self.get_params(deep=False)]
        # getattr, not get_params: check_fitted runs at every verb.
        params = {k: getattr(self, k) for k in names}
        params["hidden_dims"] = self.check_architecture()
        if getattr(self, "prior", None) != "mixture":
            params.pop("n_components", None)
        return {k: by_value(v) for k, v in params.items()}

    def checked_input(self, X, reset):
        """Return ``X`` as a C-contiguous 2-D array of the model's dtype
        (checked by scikit-learn's ``check_array``; a stack of images of
        shape (n_samples, height, width) flattened to rows), or raise an
        error that names the problem; nothing about the model changes here.
        With ``reset`` (fitting) the hyper-parameters are checked first."""
        if reset:
            self.check_params()
        else:
            self.check_fitted()
        X = check_array(X, dtype="numeric", input_name="X", allow_nd=True)
        if X.ndim > 2:
            # A stack of images is flattened at the door, as the CLI reads one from a file.
            if X.ndim > 3:
                raise ValueError(f"X must be 2-D (n_samples, n_features) or a stack of "
                                 f"images (n_samples, height, width), got shape {X.shape}")
            X = check_array(X.reshape(X.shape[0], -1), input_name="X")
        if not reset and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {self.n_features_in_} features as input")
        with np.errstate(over="ignore"):  # reported below, by name
            converted = np.ascontiguousarray(X, dtype=self.dtype)
        # min and max are infinite exactly when some entry overflowed, and
        # allocate nothing the size of X (fit_epoch validates every epoch).
        if not (np.isfinite(converted.min()) and np.isfinite(converted.max())):
            raise ValueError(
                f"X has values too large for {self.dtype} (largest magnitude "
                f"{np.abs(X).max():.4g}); rescale X or use dtype='float64'")
        return converted

    def check_fit_data(self, X):
        """``X`` checked for fitting: the hyper-parameters, then the array
        and the likelihood's support."""
        X = self.checked_input(X, reset=True)
        LIKELIHOODS[self.likelihood].check_support(X)
        return X

    def check_data(self, X):
        """``X`` validated for this fitted model's likelihood: a C-contiguous
        2-D array of its dtype and width, finite, and in the likelihood's
        support (``[0, 1]`` for the Bernoulli); else a ValueError or
        TypeError that names the problem."""
        X = self.checked_input(X, reset=False)
        self.likelihood_.check_support(X)
        return X

    def check_codes(self, Z):
        """``Z`` validated as codes of this fitted model: a C-contiguous
        array of shape (n_samples, latent_dim) in its dtype, finite."""
        self.check_fitted()
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

    def labels_array(self, y):
        """The labels ``fit`` trains with: None for a model without labels,
        which ignores ``y`` as scikit-learn's unsupervised estimators do."""
        return None

    def labels_onehot(self, y, n_rows):
        """The one-hot rows of the labels ``y`` for a model that
        ``needs_labels``; None for one that does not (``y`` is ignored)."""
        return None

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
            The training data (validated here, before anything changes).
            The likelihood may start from it: a learned Gaussian noise
            variance starts at the data's mean per-feature variance (see
            :meth:`npvae.core.likelihoods.Gaussian.init_from_data`).  Data on a
            scale far from 1 and not in [0, 1] is best standardised first,
            as for any Gaussian model: the decoder's initial outputs are of
            order 1.

        Returns
        -------
        self
        """
        check_int("n_features", n_features, 1)
        if X is not None:
            X = self.check_fit_data(X)
            if X.shape[1] != n_features:
                raise ValueError(f"X has {X.shape[1]} features, but n_features is {n_features}")
        return self.build(int(n_features), X)

    def build(self, n_features, X, condition_dim=0):
        """Build the networks, the likelihood, the prior, the parameter
        vector and the optimizer for checked arguments: ``X`` is validated
        training data or None; ``condition_dim`` columns (a conditional
        model's one-hot label) join both networks' inputs.  Nothing changes
        before the hyper-parameters and the seed have passed their checks."""
        hidden = self.check_params()
        rows = 1 if X is None else min(self.batch_size, X.shape[0])
        for n_values, what in self.memory_needs(n_features + condition_dim, hidden, rows):
            check_memory(n_values, np.dtype(self.dtype).itemsize, f"{type(self).__name__}({what})")
        rng = as_generator(self.random_state)
        self.n_features_in_, self.rng_ = n_features, rng
        self.built_with_ = self.architecture()
        dtype = np.dtype(self.dtype)
        self.build_encoder(n_features + condition_dim, hidden, rng, dtype)
        self.build_decoder(n_features, hidden, condition_dim, rng, dtype)
        self.build_prior(rng, dtype)
        self.likelihood_ = make_likelihood(self.likelihood, dtype, self.obs_var)
        self.tie_parameters()
        if X is not None:
            self.likelihood_.init_from_data(X)
            if self.output_bias_init == "data":
                # The decoder then starts at the data's mean image.
                mean = X.mean(axis=0, dtype=np.float64)
                self.decoder_.layers[-1].params["b"][...] = self.likelihood_.inverse_mean(mean)
        self.optimizer_ = Adam(learning_rate=self.learning_rate, beta1=self.beta_1,
                               beta2=self.beta_2, eps=self.epsilon)
        self.image_shape_ = None    # fit keeps the (height, width) of a stack of images
        self.n_iter_ = 0
        self.history_ = []
        return self

    def build_decoder(self, n_features, hidden, condition_dim, rng, dtype):
        r"""The decoder, :math:`z \mapsto` the likelihood's parameters: the
        encoder's widths mirrored (``decoder_``, whose last layer
        ``output_bias_init`` sets)."""
        self.decoder_ = mlp([self.latent_dim + condition_dim, *reversed(hidden), n_features],
                            self.activation, rng, dtype)

    def memory_needs(self, n_in, hidden, rows):
        """``(number of values, the parameter that sets it)`` for what
        training allocates, checked before :meth:`build` allocates it."""
        widths = [n_in, *hidden, self.latent_dim]
        # The encoder and its mirror, the decoder; each parameter held four
        # times: its value, its gradient and Adam's two moments.
        largest = "hidden_dims" if max(hidden, default=0) > self.latent_dim else "latent_dim"
        yield (8 * sum((a + 1) * b for a, b in zip(widths, widths[1:])),
               f"{largest}={getattr(self, largest)!r}")
        # A step's activations and their gradients, in both networks.
        yield 4 * rows * sum(widths), f"batch_size={self.batch_size!r}"

    def build_prior(self, rng, dtype):
        """A model with a prior :math:`p(z)` builds it here."""

    def named_layers(self):
        """``(name prefix, piece)`` for every piece with parameters, in the
        order of the parameter vector (which checkpoints rely on)."""
        yield from self.named_encoder_layers()
        yield from self.decoder_.named_layers("decoder.")
        yield "", self.likelihood_

    def tie_parameters(self):
        """Tie every piece's parameter arrays to one vector,
        ``parameters_``; ``params_`` is its dict of views by name."""
        self.parameters_ = ParameterVector(self.named_layers())
        self.params_ = self.parameters_.params

    def __setstate__(self, state):
        # A deep copy or an unpickled model has each view copied on its own:
        # tie the layers' arrays to one parameter vector again.  A shallow
        # copy shares the original's layers and vector, and must leave them.
        super().__setstate__(state)
        if hasattr(self, "parameters_") and not self.parameters_.is_tied():
            self.tie_parameters()

    @property
    def obs_logvar_(self):
        r""":math:`\log\sigma^2` of the Gaussian observation noise (learned or fixed)."""
        self.check_fitted()     # obs_var and likelihood still those the model was fitted with
        logvar = getattr(self.likelihood_, "logvar", None)
        if logvar is None:
            raise AttributeError("obs_logvar_ exists only for likelihood='gaussian'")
        # A fixed variance is reported exactly, not as rounded to the dtype.
        return float(logvar) if self.obs_var is None else math.log(self.obs_var)

    # ------------------------------------------------------------ training
    def fit(self, X, y=None):
        """Train on ``X`` (with its labels ``y`` for a model that
        ``needs_labels``; else ``y`` is ignored) with Adam on shuffled
        mini-batches for ``epochs`` epochs, from freshly initialised
        parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
            A stack of images is flattened to rows (row-major), its
            ``(height, width)`` kept as ``image_shape_``; every verb then
            takes either shape, and ``decode``/``sample`` return flat rows
            (``.reshape(-1, *model.image_shape_)`` makes them images again).
        y : array-like of shape (n_samples,) or None
            The label of every row: required by a model that
            ``needs_labels``, ignored by the others.

        Returns
        -------
        self
        """
        shape = image_shape_of(X)
        X = self.check_fit_data(X)
        y = self.labels_array(y)        # checked once, not every epoch
        self.build_for_fit(X, y)
        self.image_shape_ = shape
        for _ in range(self.epochs):
            self.fit_epoch(X, y)
        return self

    def build_for_fit(self, X, y):
        """:meth:`build` for the checked training data ``X`` (and labels)."""
        self.build(X.shape[1], X)

    def draw_noise(self, n):
        """The noise of one training batch of ``n`` rows, drawn from
        ``rng_`` (None: the Autoencoder draws none)."""
        return None

    def beta_at(self, epoch_progress):
        """The KL weight at a point of training (1 for a model without KL)."""
        return 1.0

    def forward_backward(self, batch, beta=1.0):
        """Run ``batch`` (a :class:`Batch`) forward to the loss and backward,
        filling ``parameters_.grad``; return the batch's mean loss terms
        (``loss`` first, in nats).  Each model writes its own."""
        raise NotImplementedError

    def update(self, terms, optimizer):
        """The one update of every model: refuse a step whose loss or
        gradient is not finite (FloatingPointError, the parameters left as
        they are), then one ``optimizer`` step of all parameters as one
        vector."""
        refuse_non_finite(terms, self.parameters_)
        optimizer.step({FLAT: self.parameters_.theta}, {FLAT: self.parameters_.grad})

    def step(self, batch, beta=1.0, optimizer=None):
        """:meth:`forward_backward` on ``batch``, then, given an
        ``optimizer``, :meth:`update`; returns the loss terms."""
        terms = self.forward_backward(batch, beta)
        if optimizer is not None:
            self.update(terms, optimizer)
        return terms

    def fit_epoch(self, X, y=None, callback=None):
        """Train for one more epoch, continuing from the current state.

        The training state — parameters, Adam's moments, the random
        generator ``rng_`` and ``n_iter_`` — is all in attributes, so a
        checkpoint of them resumes bit for bit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or None
            The rows' labels, for a model that ``needs_labels``.
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
        X = self.check_data(X)
        Y = self.labels_onehot(y, X.shape[0])
        n = X.shape[0]
        bs = min(self.batch_size, n)
        n_batches = -(-n // bs)
        perm = self.rng_.permutation(n)
        # Each batch is gathered into one reused buffer; mode="clip" skips
        # a bounds check that rows from a permutation never need.
        batch_buffer = np.empty((bs, X.shape[1]), dtype=X.dtype)
        totals = {}
        for i in range(n_batches):
            rows = perm[i * bs:(i + 1) * bs]
            xb = np.take(X, rows, axis=0, out=batch_buffer[:len(rows)], mode="clip")
            progress = (self.n_iter_ + i / n_batches) / max(self.epochs, 1)
            self.optimizer_.learning_rate = learning_rate_at(
                self.learning_rate, self.lr_schedule, progress)
            batch = Batch(xb, None if Y is None else Y[rows], self.draw_noise(len(rows)))
            try:
                terms = self.step(batch, self.beta_at(self.n_iter_ + (i + 1) / n_batches),
                                  self.optimizer_)
            except FloatingPointError as problem:
                if self.optimizer_.t == 0 and self.n_iter_ == 0:
                    raise FloatingPointError(
                        f"the first training step is not finite: {problem}, at the "
                        f"initial parameters, so the data or the hyper-parameters "
                        f"cause it, not the learning rate (largest |x| in the batch "
                        f"{float(np.abs(xb).max()):.4g}; standardise the data, or "
                        f"check obs_var and beta)") from None
                # float32 ends near 3e38 (exp overflows above 88): float64 may be the way out.
                wider = ", or dtype float64" if self.dtype == "float32" else ""
                raise FloatingPointError(
                    f"training diverged at epoch {self.n_iter_ + 1}, batch {i + 1}: "
                    f"{problem}; the parameters are left as they were before this "
                    f"step. Try a smaller learning_rate{wider}.") from None
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

    def check_initialized(self):
        """An AttributeError unless :meth:`initialize` or ``fit`` has built
        the parameters (gradients need them, fitted or not)."""
        if not hasattr(self, "params_"):
            raise AttributeError("call initialize(n_features) or fit first")

    def loss_and_grads_of(self, batch, beta):
        """The mean loss of the checked ``batch`` and copies of the gradients
        keyed like ``params_``: the public ``loss_and_grads`` of each model
        forms the batch."""
        terms = self.forward_backward(batch, beta)
        return terms["loss"], {name: g.copy() for name, g in self.parameters_.grads.items()}

    # ------------------------------------------------------------ evaluation
    def in_row_blocks(self, fn, *arrays):
        """Apply ``fn`` to the same blocks of ``EVAL_BLOCK_ROWS`` rows of each
        array and stack what it returns (None arrays are passed as None)."""
        n = next(a for a in arrays if a is not None).shape[0]
        parts = [fn(*(None if a is None else a[i:i + EVAL_BLOCK_ROWS] for a in arrays))
                 for i in range(0, n, EVAL_BLOCK_ROWS)]
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate(p) for p in zip(*parts))
        return np.concatenate(parts)

    def decode(self, Z, y=None):
        """Map codes to the decoder's mean, the likelihood's ``mean`` of
        :math:`\\mathrm{dec}(z)`: Bernoulli probabilities
        :math:`\\sigma(\\mathrm{dec}(z))`, Gaussian means :math:`\\mathrm{dec}(z)`,
        or the continuous Bernoulli's mean.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim)
        y : label or array-like of shape (n_samples,), optional
            For a model that ``needs_labels``: one label for all codes or
            one per code.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        Z = self.check_codes(Z)
        return self.decoded(Z, self.labels_onehot(y, Z.shape[0]))

    def decoded(self, Z, Y):
        """The decoder's means for checked codes ``Z`` and one-hot labels
        ``Y`` (or None)."""
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            means = self.in_row_blocks(
                lambda z, t: self.likelihood_.mean(self.decoder_.forward(self.join_label(z, t))),
                Z, Y)
        return check_finite(means, "decode(Z)" if Y is None else "decode(Z, y)")

    @staticmethod
    def join_label(a, onehot):
        """``a`` with the one-hot label's columns joined (a new
        :class:`npvae.core.layers.Join`, for inference), or ``a`` itself
        when there is no label."""
        return a if onehot is None else Join().forward(a, onehot)

    def inverse_transform(self, Z, y=None):
        """Same as :meth:`decode`: codes back to data space."""
        return self.decode(Z, y)

    # ------------------------------------------------------------ persistence
    def save(self, path, include_optimizer=True):
        """Write a checkpoint: one ``.npz`` of arrays with the metadata inside
        as JSON, no pickle (:mod:`npvae.models.saving`).
        ``include_optimizer=False`` leaves out Adam's state: a third of the
        size, for using the model rather than continuing its training.
        Returns the ``.npz`` path."""
        return save_checkpoint(self, path, include_optimizer=include_optimizer)

    @classmethod
    def load(cls, path):
        """Rebuild a model saved by :meth:`save`, bit for bit; ``path`` is a
        checkpoint file or a run folder (its latest checkpoint).  The stored
        class must be this one or a subclass.  A model saved without Adam's
        state continues training with a fresh Adam."""
        return load_checkpoint(path, cls)

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over ``X`` (with its labels ``y`` for
        a model that ``needs_labels``), in nats; higher is better."""
        return float(np.mean(self.score_samples(X, y)))



r"""What every npvae estimator shares: validation, the decoder and its
likelihood, the mini-batch training loop, batched evaluation, saving.

The VAE and its deterministic sibling, as estimators.

Both follow scikit-learn's conventions: hyper-parameters in ``__init__``
(validated in ``fit``), learned state in attributes ending in ``_``, ``fit``
returns ``self``, and the verbs ``transform``, ``inverse_transform``,
``score`` and (VAE) ``sample`` let them sit beside ``PCA`` in a pipeline.

One training step is :meth:`VAE.train_step`, which reads as the
derivation of docs/math.md: encode, reparameterize, decode, log-likelihood,
KL, loss; the backward pass through the same pieces in reverse; then one
Adam update.  Every call in it goes to a piece whose docstring carries its
equation: :class:`npvae.core.layers.GaussianEncoder`, :func:`npvae.core.layers.reparameterize`,
the decoder (:func:`npvae.core.layers.mlp`), a likelihood from
:mod:`npvae.core.likelihoods`, a prior from :mod:`npvae.core.priors` for the KL, and
:class:`npvae.core.optimizers.Adam`.
"""
import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ..core.layers import ACTIVATIONS, mlp
from ..core.likelihoods import LIKELIHOODS, make_likelihood
from ..core.optimizers import Adam, learning_rate_at
from ..core.parameters import ParameterVector
from ..core.rng import as_generator
from ..core.validation import check_finite, check_int
from .saving import FLAT, load_checkpoint, save_checkpoint

__all__ = ["BaseAutoencoder", "DTYPES", "FLAT"]

DTYPES = ("float32", "float64")
LR_SCHEDULES = ("constant", "cosine")
_EVAL_BATCH = 4096


class BaseAutoencoder(TransformerMixin, BaseEstimator):
    """What the VAE and the Autoencoder share: validation, the decoder and
    its likelihood, the mini-batch training loop and batched evaluation."""
    needs_labels = False   # True: fit and the verbs take labels y beside X

    # ------------------------------------------------------------ validation
    _parameter_constraints = {
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_dims": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions(set(LIKELIHOODS))],
        "obs_var": [Interval(Real, 0, None, closed="neither"), None],
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES))],
        "dtype": [StrOptions(set(DTYPES))],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "output_bias_init": [StrOptions({"zeros", "data"})],
        "random_state": "no_validation",     # npvae.core.rng.as_generator checks it
        "verbose": ["verbose"],
    }
    # Hyper-parameters newer than the checkpoint format: a checkpoint that
    # lacks one was written before it existed, with its default's behaviour.
    _params_added_later = ("beta_1", "beta_2", "epsilon", "output_bias_init")

    def _check_params(self):
        """Validate the hyper-parameters; return ``hidden_dims`` as a tuple."""
        self._validate_params()
        hidden = self.hidden_dims
        hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
        for h in hidden:
            if isinstance(h, bool) or not isinstance(h, Integral) or h < 1:
                raise ValueError(f"each entry of hidden_dims must be an integer >= 1, "
                                 f"got {h!r}")
        if self.learning_rate >= float(np.finfo(self.dtype).max) / 10:
            # An Adam step moves each parameter by up to about learning_rate:
            # past this it overflows, and the parameters would be inf already.
            raise ValueError(f"learning_rate {self.learning_rate!r} is too large for "
                             f"{self.dtype}: one Adam step would overflow")
        return hidden

    def _validate_data(self, X, reset):
        """Return ``X`` as a C-contiguous 2-D array of the model's dtype
        (checked by scikit-learn's ``check_array``), or raise an error that
        names the problem; nothing about the model changes here."""
        if reset:
            self._check_params()
        else:
            check_is_fitted(self)
        X = check_array(X, dtype="numeric", input_name="X")
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

    def check_data(self, X):
        """``X`` validated for this fitted model's likelihood: a C-contiguous
        2-D array of its dtype and width, finite, and in the likelihood's
        support (``[0, 1]`` for the Bernoulli); else a ValueError or
        TypeError that names the problem."""
        X = self._validate_data(X, reset=False)
        self.likelihood_.check_support(X)
        return X

    def check_codes(self, Z):
        """``Z`` validated as codes of this fitted model: a C-contiguous
        array of shape (n_samples, latent_dim) in its dtype, finite."""
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
            The training data (validated here, before anything changes).
            The likelihood may start from it: a learned Gaussian noise
            variance starts at the data's mean per-feature variance (see
            :meth:`npvae.core.likelihoods.Gaussian.start_from`).  Data on a
            scale far from 1 and not in [0, 1] is best standardised first,
            as for any Gaussian model: the decoder's initial outputs are of
            order 1.

        Returns
        -------
        self
        """
        check_int("n_features", n_features, 1)
        if X is not None:
            X = self._validate_fit_data(X)
            if X.shape[1] != n_features:
                raise ValueError(f"X has {X.shape[1]} features, but n_features is {n_features}")
        return self._initialize(int(n_features), X)

    def _validate_fit_data(self, X):
        X = self._validate_data(X, reset=True)
        LIKELIHOODS[self.likelihood].check_support(X)
        return X

    def _initialize(self, n_features, X, condition_dim=0):
        # X: validated training data, or None; condition_dim: columns joined
        # to both networks' inputs (a conditional model's one-hot label).
        # Nothing changes before the hyper-parameters and the seed have
        # passed their checks.
        hidden = self._check_params()
        rng = as_generator(self.random_state)
        self.n_features_in_, self.rng_ = n_features, rng
        dtype = np.dtype(self.dtype)
        self._build_encoder(n_features + condition_dim, hidden, rng, dtype)
        self.decoder_ = mlp([self.latent_dim + condition_dim, *reversed(hidden), n_features],
                            self.activation, rng, dtype)
        self._build_prior(rng, dtype)
        self.likelihood_ = make_likelihood(self.likelihood, dtype, self.obs_var)
        self._tie_parameters()
        if X is not None:
            self.likelihood_.start_from(X)
            if self.output_bias_init == "data":
                # The decoder then starts at the data's mean image.
                mean = X.mean(axis=0, dtype=np.float64)
                self.decoder_.layers[-1].params["b"][...] = self.likelihood_.output_for_mean(mean)
        self.optimizer_ = Adam(learning_rate=self.learning_rate, beta1=self.beta_1,
                               beta2=self.beta_2, eps=self.epsilon)
        self.n_iter_ = 0
        self.history_ = []
        return self

    def _build_prior(self, rng, dtype):
        """A model with a prior :math:`p(z)` builds it here."""

    def _named_layers(self):
        yield from self._named_encoder_layers()
        yield from self.decoder_.named_layers("decoder.")
        yield "", self.likelihood_

    def _tie_parameters(self):
        self.parameters_ = ParameterVector(self._named_layers())
        self.params_ = self.parameters_.params

    def __setstate__(self, state):
        # A deep copy or an unpickled model has each view copied on its own:
        # tie the layers' arrays to one parameter vector again.  A shallow
        # copy shares the original's layers and vector, and must leave them.
        super().__setstate__(state)
        if hasattr(self, "parameters_") and not self.parameters_.is_tied():
            self._tie_parameters()

    @property
    def obs_logvar_(self):
        r""":math:`\log\sigma^2` of the Gaussian observation noise (learned or fixed)."""
        check_is_fitted(self)
        logvar = getattr(self.likelihood_, "logvar", None)
        if logvar is None:
            raise AttributeError("obs_logvar_ exists only for likelihood='gaussian'")
        # A fixed variance is reported exactly, not as rounded to the dtype.
        return float(logvar) if self.obs_var is None else math.log(self.obs_var)

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
        X = self._validate_fit_data(X)
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
        return self._epoch(self.check_data(X), (), callback)

    def _epoch(self, X, aligned, callback):
        """One pass over shuffled mini-batches of the validated ``X``, each
        handed to ``_train_batch`` with the same rows of every array in
        ``aligned`` (a conditional model's labels)."""
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
            try:
                terms = self._train_batch(xb, *(a[rows] for a in aligned),
                                          self.n_iter_ + (i + 1) / n_batches)
            except FloatingPointError as problem:
                if self.optimizer_.t == 0 and self.n_iter_ == 0:
                    raise FloatingPointError(
                        f"the first training step is not finite: {problem}, at the "
                        f"initial parameters, so the data or the hyper-parameters "
                        f"cause it, not the learning rate (largest |x| in the batch "
                        f"{float(np.abs(xb).max()):.4g}; standardise the data, or "
                        f"check obs_var and beta)") from None
                raise FloatingPointError(
                    f"training diverged at epoch {self.n_iter_ + 1}, batch {i + 1}: "
                    f"{problem}; the parameters are left as they were before this "
                    f"step. Try a smaller learning_rate.") from None
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

    def _check_fitted_for_gradients(self):
        if not hasattr(self, "params_"):
            raise AttributeError("call initialize(n_features) or fit first")

    def _grads_copy(self):
        return {name: g.copy() for name, g in self.parameters_.grads.items()}

    # ------------------------------------------------------------ evaluation
    def _batched(self, fn, *arrays):
        """Apply ``fn`` to the same row blocks of each array and stack what
        it returns."""
        parts = [fn(*(a[i:i + _EVAL_BATCH] for a in arrays))
                 for i in range(0, arrays[0].shape[0], _EVAL_BATCH)]
        if isinstance(parts[0], tuple):
            return tuple(np.concatenate(p) for p in zip(*parts))
        return np.concatenate(parts)

    def decode(self, Z):
        """Map codes to the decoder's mean, the likelihood's ``mean`` of
        :math:`\\mathrm{dec}(z)`: Bernoulli probabilities
        :math:`\\sigma(\\mathrm{dec}(z))`, Gaussian means :math:`\\mathrm{dec}(z)`,
        or the continuous Bernoulli's mean.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        Z = self.check_codes(Z)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            means = self._batched(lambda z: self.likelihood_.mean(self.decoder_.forward(z)), Z)
        return check_finite(means, "decode(Z)")

    def inverse_transform(self, Z):
        """Same as :meth:`decode`: codes back to data space."""
        return self.decode(Z)

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
        """Mean of :meth:`score_samples` over ``X``, in nats; higher is better."""
        return float(np.mean(self.score_samples(X)))



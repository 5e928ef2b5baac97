r"""The Variational Autoencoder and its deterministic sibling, as estimators.

Both follow scikit-learn's conventions: hyper-parameters in ``__init__``
(validated in ``fit``), learned state in attributes ending in ``_``, ``fit``
returns ``self``, and the verbs ``transform``, ``inverse_transform``,
``score`` and (VAE) ``sample`` let them sit beside ``PCA`` in a pipeline.

One training step is :meth:`VAE.train_step`, which reads as the
derivation of docs/math.md: encode, reparameterize, decode, log-likelihood,
KL, loss; the backward pass through the same pieces in reverse; then one
Adam update.  Every call in it goes to a piece whose docstring carries its
equation: :class:`npvae.layers.GaussianEncoder`, :func:`npvae.layers.reparameterize`,
the decoder (:func:`npvae.layers.mlp`), a likelihood from
:mod:`npvae.likelihoods`, a prior from :mod:`npvae.priors` for the KL, and
:class:`npvae.optimizers.Adam`.
"""
import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from .checkpoints import load_checkpoint, register_estimators, save_checkpoint
from .layers import ACTIVATIONS, GaussianEncoder, mlp, reparameterize, reparameterize_backward
from .likelihoods import LIKELIHOODS, make_likelihood
from .optimizers import Adam, learning_rate_at
from .parameters import ParameterVector
from .priors import PRIORS, make_prior
from .rng import as_generator, row_normals
from .validation import check_finite, check_int, refuse_non_finite

__all__ = ["VAE", "Autoencoder", "load_model"]

DTYPES = ("float32", "float64")
LR_SCHEDULES = ("constant", "cosine")
_EVAL_BATCH = 4096
# The optimizer's one key: all parameters as one vector (npvae.parameters).
FLAT = "parameters"


class _BaseAutoencoder(TransformerMixin, BaseEstimator):
    """What the VAE and the Autoencoder share: validation, the decoder and
    its likelihood, the mini-batch training loop and batched evaluation."""

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
        "random_state": "no_validation",     # npvae.rng.as_generator checks it
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
            :meth:`npvae.likelihoods.Gaussian.start_from`).  Data on a
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
        """Write a checkpoint (``path`` + ``.npz`` and ``.json``, no pickle);
        see :mod:`npvae.checkpoints`.  ``include_optimizer=False`` leaves out
        Adam's state: a third of the size, for using the model rather than
        continuing its training.  Returns the ``.json`` path."""
        return save_checkpoint(self, path, include_optimizer=include_optimizer)

    @classmethod
    def load(cls, path):
        """Rebuild a model saved by :meth:`save`, bit for bit; ``path`` is a
        checkpoint file or a run folder (its latest checkpoint).  A model
        saved without Adam's state continues training with a fresh Adam."""
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
    likelihood : {"bernoulli", "gaussian", "continuous_bernoulli"}, default="bernoulli"
        :math:`p(x \mid z)` (:mod:`npvae.likelihoods`): Bernoulli with logits
        from the decoder (needs :math:`x \in [0, 1]`), Gaussian with the
        decoder's mean, or the continuous Bernoulli, the normalised density
        on [0, 1] with logits from the decoder.
    obs_var : float or None, default=None
        Gaussian only: fixed observation variance :math:`\sigma^2`, or
        ``None`` to learn one isotropic :math:`\log\sigma^2`.
    beta : float, default=1.0
        Weight of the KL term in the training loss (:math:`\beta`-VAE).
    kl_warmup : float, default=0
        Epochs over which the KL weight rises linearly from 0 to ``beta``.
    prior : {"standard_normal", "mixture"}, default="standard_normal"
        :math:`p(z)`: :math:`N(0, I)` with the closed-form KL, or a learned
        mixture of ``n_components`` diagonal Gaussians
        (:class:`npvae.priors.GaussianMixture`), whose KL in the loss,
        ``elbo_terms``, ``score_samples`` and ``score`` is the one-sample
        estimate :math:`\log q(z \mid x) - \log p(z)` at the same
        :math:`z` as the reconstruction term (docs/math.md, §12).
    n_components : int, default=10
        Number of mixture components :math:`K`; used with ``prior="mixture"``.
    epochs : int, default=20
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam's step size.
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` decays the step size to 0 over ``epochs``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's decay rates of the first and second moments and its
        :math:`\epsilon` (the names of scikit-learn's ``MLPClassifier``).
    output_bias_init : {"zeros", "data"}, default="zeros"
        ``"data"`` starts the decoder's output bias where the decoder's mean
        is the training data's mean per feature (Bernoulli: the logit of the
        pixel means, clipped to [0.001, 0.999]), as Burda et al. do.
    dtype : {"float32", "float64"}, default="float32"
        float32 for speed, float64 for gradient checks.
    random_state : int, numpy.random.Generator or None
        Seeds initialisation, shuffling and the noise :math:`\varepsilon`.
    verbose : bool, default=False
        Print one line per epoch.

    Attributes
    ----------
    encoder_ : npvae.layers.GaussianEncoder
        :math:`x \mapsto (\mu, \log\sigma^2)`.
    decoder_ : npvae.layers.Sequential
        :math:`z \mapsto` the likelihood's parameters (logits or means).
    likelihood_ : a piece of npvae.likelihoods (Bernoulli, Gaussian, ContinuousBernoulli)
        :math:`p(x \mid z)` from the decoder's output.
    prior_ : npvae.priors.StandardNormal or GaussianMixture
        :math:`p(z)`; the mixture's parameters are ``prior.logits``,
        ``prior.means`` and ``prior.logvars`` in ``params_``.
    parameters_ : npvae.parameters.ParameterVector
        All parameters as one vector, and their gradients as another.
    params_ : dict of str to ndarray
        The live parameter arrays, by name: views into ``parameters_.theta``,
        so writing into them changes the model.
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

    def __init__(self, latent_dim=2, hidden_dims=(400,), activation="relu",
                 likelihood="bernoulli", obs_var=None, beta=1.0, kl_warmup=0,
                 prior="standard_normal", n_components=10,
                 epochs=20, batch_size=128, learning_rate=1e-3,
                 lr_schedule="constant", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 output_bias_init="zeros", dtype="float32", random_state=None,
                 verbose=False):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.likelihood = likelihood
        self.obs_var = obs_var
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.prior = prior
        self.n_components = n_components
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

    _parameter_constraints = {
        **_BaseAutoencoder._parameter_constraints,
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup": [Interval(Real, 0, None, closed="left")],
        "prior": [StrOptions(set(PRIORS))],
        "n_components": [Interval(Integral, 1, None, closed="left")],
    }
    _params_added_later = (*_BaseAutoencoder._params_added_later, "prior", "n_components")

    def _build_encoder(self, n_features, hidden, rng, dtype):
        self.encoder_ = GaussianEncoder([n_features, *hidden], self.latent_dim,
                                        self.activation, rng, dtype)

    def _named_encoder_layers(self):
        # The names checkpoints have always used.
        yield from self.encoder_.body.named_layers("encoder.")
        yield "mu.", self.encoder_.mu
        yield "logvar.", self.encoder_.logvar

    def _build_prior(self, rng, dtype):
        # Only the mixture draws from rng: the default VAE's initialisation
        # stays what it was.
        self.prior_ = make_prior(self.prior, self.latent_dim, self.n_components, rng, dtype)

    def _named_layers(self):
        yield from super()._named_layers()
        yield "prior.", self.prior_

    # ------------------------------------------------------------ one step
    def train_step(self, x, eps, beta=1.0, optimizer=None):
        r"""One training step on the batch ``x`` with the noise ``eps``,
        as docs/math.md derives it.

        Forward to the loss, the mean negative ELBO with the KL weighted by
        :math:`\beta`,

        .. math::
            \mathcal{L} = \frac1n \sum_i -\log p(x_i \mid z_i)
                + \beta\,\mathrm{KL}\big(q(z \mid x_i) \,\|\, p(z)\big),
            \qquad z_i = \mu(x_i) + \sigma(x_i) \odot \varepsilon_i,

        the KL in closed form for :math:`p(z) = N(0, I)` and estimated at
        :math:`z_i` for the mixture prior;

        backward through the same pieces in reverse, filling the gradient of
        every parameter (views of ``parameters_.grad``); then, given an
        ``optimizer``, one update of all parameters at once, refused with a
        FloatingPointError when the loss or a gradient is not finite.

        Returns
        -------
        dict
            The batch's means: ``loss``, ``recon`` (:math:`-\log p(x \mid z)`)
            and ``kl``, in nats.
        """
        n = x.shape[0]
        # Forward: §1 encode, §2 reparameterize, §3 decode, §4-5 the loss.
        mu, logvar = self.encoder_.forward(x)
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(z)
        log_px_sum = self.likelihood_.forward(x, out)              # sum of log p(x|z)
        kl_sum = self.prior_.forward(mu, logvar, z)                # sum of KL(q || p)
        recon, kl = -log_px_sum / n, kl_sum / n
        loss = recon + beta * kl                   # (1/n) sum_i (-log p(x_i|z_i) + beta KL_i)
        # Backward: the same steps in reverse, dL/d(sum log p) = -1/n,
        # dL/d(sum KL) = beta/n; the KL's part through z (0 in closed form)
        # joins the decoder's before the reparameterization.
        grad_out = self.likelihood_.backward(-1.0 / n)
        kl_mu, kl_logvar, kl_z = self.prior_.backward(beta / n)
        grad_z = self.decoder_.backward(grad_out)
        grad_z += kl_z                              # the decoder's array is a new one
        grad_mu, grad_logvar = reparameterize_backward(grad_z, logvar, eps)
        self.encoder_.backward(grad_mu + kl_mu, grad_logvar + kl_logvar, input_grad=False)
        # Update: every backward above wrote its parameters' gradients into
        # views of parameters_.grad; Adam steps all of theta at once (one
        # key, FLAT, so that a checkpoint stores its moments as one vector).
        if optimizer is not None:
            refuse_non_finite({"loss": loss, "recon": recon, "kl": kl}, self.parameters_)
            optimizer.step({FLAT: self.parameters_.theta}, {FLAT: self.parameters_.grad})
        return {"loss": loss, "recon": recon, "kl": kl}

    def _train_batch(self, x, epoch_progress):
        eps = self.rng_.standard_normal((x.shape[0], self.latent_dim), dtype=self.dtype)
        return self.train_step(x, eps, self._beta_at(epoch_progress), self.optimizer_)

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

    def _elbo_terms(self, x, eps):
        r""":math:`\log p(x \mid z)` and the KL per example, the forward
        pass of :meth:`train_step` without its caches' use."""
        mu, logvar = self.encoder_.forward(x)
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(z)
        return self.likelihood_.log_prob(x, out), self.prior_.kl(mu, logvar, z)

    # ------------------------------------------------------------ for study
    def loss(self, X, eps):
        r"""Mean training loss per example for a fixed noise ``eps``:
        :math:`\frac1n\sum_i -\log p(x_i \mid z_i) + \beta\,\mathrm{KL}_i`.
        A deterministic function of the parameters, for gradient checks."""
        X = self.check_data(X)
        eps = self._check_eps(X, eps)
        log_px, kl = self._elbo_terms(X, eps)
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
        self._check_fitted_for_gradients()
        X = self.check_data(X)
        if eps is None:
            eps = self.rng_.standard_normal((X.shape[0], self.latent_dim), dtype=self.dtype)
        eps = self._check_eps(X, eps)
        terms = self.train_step(X, eps, float(self.beta))
        return terms["loss"], self._grads_copy()

    # ------------------------------------------------------------ public verbs
    def encode(self, X):
        r"""Parameters of :math:`q(z \mid x)`.

        Returns
        -------
        mu, logvar : ndarray of shape (n_samples, latent_dim)
        """
        X = self._validate_data(X, reset=False)
        return self._batched(self.encoder_.forward, X)

    def transform(self, X):
        r"""The posterior means :math:`\mu(x)`, the VAE's code for ``X``."""
        return self.encode(X)[0]

    def reparameterize(self, mu, logvar, random_state=None):
        r""":math:`z = \mu + \sigma \odot \varepsilon` with fresh noise
        (from ``random_state``, or the model's own ``rng_``).

        ``mu`` and ``logvar`` are checked like codes: shape (n_samples,
        latent_dim), finite; a ``logvar`` so large that :math:`\sigma`
        overflows is an error.
        """
        mu, logvar = self.check_codes(mu), self.check_codes(logvar)
        if mu.shape != logvar.shape:
            raise ValueError(f"mu and logvar must have the same shape, got {mu.shape} "
                             f"and {logvar.shape}")
        rng = self.rng_ if random_state is None else as_generator(random_state)
        with np.errstate(over="ignore"):    # reported by check_finite
            z = reparameterize(mu, logvar, rng.standard_normal(mu.shape, dtype=self.dtype))
        return check_finite(z, "reparameterize(mu, logvar)")

    def sample(self, n_samples=1, random_state=None):
        r"""Decode draws from the prior :math:`p(z)` (:math:`N(0, I)` or the
        learned mixture), returning the decoder's mean (:meth:`decode`).

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
        check_int("n_samples", n_samples, 1)
        rng = self.rng_ if random_state is None else as_generator(random_state)
        return self.decode(self.prior_.sample(n_samples, rng))

    def elbo_terms(self, X, random_state=0):
        r"""The two terms of the ELBO per example, in nats.

        Returns
        -------
        log_px_given_z : ndarray of shape (n_samples,)
            One-sample estimate of :math:`\mathbb{E}_q \log p(x \mid z)`.
        kl : ndarray of shape (n_samples,)
            :math:`\mathrm{KL}(q(z \mid x) \,\|\, N(0, I))`, exact; for the
            mixture prior the estimate :math:`\log q(z \mid x) - \log p(z)`
            at the same :math:`z`.

        Notes
        -----
        Each row's noise :math:`\varepsilon` is a function of that row's
        values and of ``random_state`` (0 by default;
        :func:`npvae.rng.row_normals`), so repeated calls agree, and a row's
        estimate is the same alone, in any batch and at any position.
        """
        X = self.check_data(X)
        eps = row_normals(X, self.latent_dim, random_state, self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            log_px, kl = self._batched(self._elbo_terms, X, eps)
        return check_finite(log_px, "log p(x|z)"), check_finite(kl, "the KL term")

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

    def _build_encoder(self, n_features, hidden, rng, dtype):
        self.encoder_ = mlp([n_features, *hidden, self.latent_dim], self.activation,
                            rng, dtype)

    def _named_encoder_layers(self):
        return self.encoder_.named_layers("encoder.")

    def train_step(self, x, optimizer=None):
        r"""One training step on the batch ``x``: forward to the mean
        reconstruction loss :math:`\frac1n \sum_i -\log p(x_i \mid
        \mathrm{dec}(\mathrm{enc}(x_i)))`, backward through the same pieces,
        then, given an ``optimizer``, one update of all parameters.

        Returns
        -------
        dict
            ``loss`` and ``recon``, the same batch mean in nats.
        """
        n = x.shape[0]
        code = self.encoder_.forward(x)
        out = self.decoder_.forward(code)
        recon = -self.likelihood_.forward(x, out) / n
        grad_out = self.likelihood_.backward(-1.0 / n)
        grad_code = self.decoder_.backward(grad_out)
        self.encoder_.backward(grad_code, input_grad=False)
        if optimizer is not None:
            refuse_non_finite({"loss": recon, "recon": recon}, self.parameters_)
            optimizer.step({FLAT: self.parameters_.theta}, {FLAT: self.parameters_.grad})
        return {"loss": recon, "recon": recon}

    def _train_batch(self, x, epoch_progress):
        return self.train_step(x, self.optimizer_)

    def _log_px(self, x):
        return self.likelihood_.log_prob(x, self.decoder_.forward(self.encoder_.forward(x)))

    def loss(self, X, eps=None):
        r"""Mean reconstruction loss :math:`\frac1n \sum_i -\log p(x_i \mid
        \mathrm{dec}(\mathrm{enc}(x_i)))`; ``eps`` is ignored (no noise)."""
        X = self.check_data(X)
        return -float(np.mean(self._log_px(X)))

    def loss_and_grads(self, X, eps=None):
        """The mean reconstruction loss and its gradient for every parameter
        (copies keyed like ``params_``); ``eps`` is ignored."""
        self._check_fitted_for_gradients()
        X = self.check_data(X)
        return self.train_step(X)["loss"], self._grads_copy()

    def transform(self, X):
        """The code :math:`z = \\mathrm{enc}(x)`."""
        X = self._validate_data(X, reset=False)
        return self._batched(self.encoder_.forward, X)

    def score_samples(self, X):
        r""":math:`\log p(x \mid \mathrm{dec}(\mathrm{enc}(x)))` per example, in
        nats. Not a bound on :math:`\log p(x)`: the Autoencoder has no prior."""
        X = self.check_data(X)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            return check_finite(self._batched(self._log_px, X), "log p(x | dec(enc(x)))")


def load_model(path, return_extra=False):
    """Any npvae estimator from a checkpoint file or a run folder (its
    latest checkpoint); see :func:`npvae.checkpoints.load_checkpoint`."""
    return load_checkpoint(path, return_extra=return_extra)


register_estimators((VAE, Autoencoder), FLAT)

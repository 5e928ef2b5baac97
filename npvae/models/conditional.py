r"""The conditional VAE: a VAE told the label, :math:`q(z \mid x, y)` and
:math:`p(x \mid z, y)` (Sohn, Lee & Yan, 2015).

The label enters as a one-hot row :math:`e_y` *joined* to each network's
input: the encoder reads :math:`[x, e_y]`, the decoder :math:`[z, e_y]`.
The join is a concatenation of columns, so its backward pass is a split of
the incoming gradient's columns (:func:`join`, :func:`join_backward`).
Everything else is the VAE's.  The prior :math:`p(z)` does not see the
label (:math:`N(0, I)`, or the VAE's learned mixture with
``prior="mixture"``), so the code :math:`z` learns what the label does not
say (the "style"), and decoding one code with every label transfers that
style across the classes.

:meth:`ConditionalVAE.train_step` is the one training step, line for line
the VAE's with the two joins added; docs/math.md §11 derives it.
"""
import numpy as np
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..core.layers import reparameterize, reparameterize_backward
from .base import FLAT
from .vae import VAE
from ..core.rng import as_generator, row_normals
from ..core.validation import check_finite, check_int, refuse_non_finite

__all__ = ["ConditionalVAE", "join", "join_backward"]


def join(a, onehot):
    r"""The join :math:`[a, e_y]`: the columns of ``a`` (data or codes),
    then the label's one-hot columns.

    .. math:: \mathrm{join}(a, e_y) = [a_1, \dots, a_m, e_{y,1}, \dots, e_{y,C}]
    """
    return np.concatenate([a, onehot], axis=1)


def join_backward(grad_joined, n_left):
    r"""The backward pass of :func:`join` is a split: each input receives
    the gradient of its own columns.

    .. math::
        \frac{\partial L}{\partial a} = \Big[\frac{\partial L}{\partial [a, e_y]}\Big]_{:,\,1..m},
        \qquad
        \frac{\partial L}{\partial e_y} = \Big[\frac{\partial L}{\partial [a, e_y]}\Big]_{:,\,m+1..m+C}

    Parameters
    ----------
    grad_joined : ndarray of shape (n, m + C)
    n_left : int
        :math:`m`, the width of ``a``.

    Returns
    -------
    grad_a, grad_onehot : ndarray
    """
    return grad_joined[:, :n_left], grad_joined[:, n_left:]


class ConditionalVAE(VAE):
    r"""Conditional VAE: the VAE with the label as a second input to both
    networks.

    .. math::
        \mathrm{ELBO}(x \mid y) = \mathbb{E}_{q(z \mid x, y)} \log p(x \mid z, y)
            - \mathrm{KL}\big(q(z \mid x, y) \,\|\, p(z)\big) \le \log p(x \mid y)

    The hyper-parameters are the :class:`npvae.VAE`'s.  Every verb takes the
    labels ``y`` beside the data or codes: ``fit(X, y)``, ``encode(X, y)``,
    ``transform(X, y)``, ``decode(Z, y)``, ``sample(n_samples, y)``,
    ``score(X, y)``.  Labels are any values scikit-learn accepts as classes
    (integers, strings, ...); each is one-hot over ``classes_``, even when
    there are only two.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The label values seen in ``fit``, sorted; column :math:`c` of the
        one-hot stands for ``classes_[c]``.
    encoder_ : npvae.core.layers.GaussianEncoder
        :math:`[x, e_y] \mapsto (\mu, \log\sigma^2)`: its first layer takes
        ``n_features + n_classes`` inputs.
    decoder_ : npvae.core.layers.Sequential
        :math:`[z, e_y] \mapsto` the likelihood's parameters: its first layer
        takes ``latent_dim + n_classes`` inputs.

    The other attributes are the :class:`npvae.VAE`'s.
    """
    needs_labels = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------ labels
    def _fit_labels(self, y, X):
        """``classes_`` for the labels ``y`` of the rows of ``X``, checked."""
        y = self._labels_array(y)
        check_consistent_length(X, y)
        check_classification_targets(y)
        return unique_labels(y)

    def _labels_array(self, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                             f"target y is None: give the label of every row")
        return column_or_1d(y, warn=True)

    def onehot(self, y, n_rows):
        r"""The one-hot rows :math:`e_y` of the labels ``y`` (a scalar for all
        ``n_rows`` rows, or one label per row), in the model's dtype; a
        ValueError names any label not in ``classes_``."""
        check_is_fitted(self)
        if np.isscalar(y) or (isinstance(y, np.ndarray) and y.ndim == 0):
            y = np.full(n_rows, y, dtype=np.asarray(y).dtype)
        y = self._labels_array(y)
        if y.shape[0] != n_rows:
            raise ValueError(f"y has {y.shape[0]} labels, but there are {n_rows} rows")
        column = {label: c for c, label in enumerate(self.classes_.tolist())}
        labels = y.tolist()
        unknown = sorted({repr(v) for v in labels if v not in column})
        if unknown:
            raise ValueError(f"y has labels {type(self).__name__} was not fitted on: "
                             f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}"
                             f"; its classes_ are {self.classes_.tolist()}")
        return np.eye(len(self.classes_), dtype=self.dtype)[[column[v] for v in labels]]

    # ------------------------------------------------------------ parameters
    def initialize(self, n_features, X=None, classes=None):
        """Build fresh parameters for ``n_features`` inputs and the labels
        ``classes``; ``fit`` calls this (with the labels seen).

        Parameters
        ----------
        n_features : int
        X : array-like of shape (n_samples, n_features), optional
            As for :meth:`npvae.VAE.initialize`.
        classes : array-like of shape (n_classes,)
            The label values, one each; stored sorted as ``classes_``.

        Returns
        -------
        self
        """
        check_int("n_features", n_features, 1)
        if classes is None:
            raise ValueError(f"{type(self).__name__}.initialize needs classes, the label "
                             f"values (fit finds them in y)")
        labels = self._labels_array(classes)
        check_classification_targets(labels)
        classes = unique_labels(labels)
        if len(classes) != len(labels):
            raise ValueError(f"classes must be distinct, got {labels.tolist()}")
        if X is not None:
            X = self._validate_fit_data(X)
            if X.shape[1] != n_features:
                raise ValueError(f"X has {X.shape[1]} features, but n_features is {n_features}")
        return self._initialize(int(n_features), X, classes)

    def _initialize(self, n_features, X, classes):
        # The VAE's, with the label's columns joined to each network's input.
        super()._initialize(n_features, X, condition_dim=len(classes))
        self.classes_ = classes
        return self

    def init_args(self):
        """What :meth:`initialize` needs beyond ``n_features`` to rebuild
        this model: its ``classes_``, as JSON values (for checkpoints)."""
        check_is_fitted(self)
        return {"classes": self.classes_.tolist()}

    # ------------------------------------------------------------ training
    def fit(self, X, y=None):
        """Train on the rows of ``X`` with their labels ``y`` for ``epochs``
        epochs, from freshly initialised parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Required: the label of every row.

        Returns
        -------
        self
        """
        X = self._validate_fit_data(X)
        y = self._labels_array(y)        # once, not every epoch
        self._initialize(X.shape[1], X, self._fit_labels(y, X))
        for _ in range(self.epochs):
            self.fit_epoch(X, y)
        return self

    def fit_transform(self, X, y=None):
        """``fit(X, y)``, then the codes ``transform(X, y)``."""
        return self.fit(X, y).transform(X, y)

    def fit_epoch(self, X, y=None, callback=None):
        """Train for one more epoch on ``X`` with its labels ``y``,
        continuing from the current state; as :meth:`npvae.VAE.fit_epoch`,
        with each mini-batch's labels beside its rows."""
        X = self.check_data(X)
        return self._epoch(X, (self.onehot(y, X.shape[0]),), callback)

    def _train_batch(self, x, y_onehot, epoch_progress):
        eps = self.rng_.standard_normal((x.shape[0], self.latent_dim), dtype=self.dtype)
        return self.train_step(x, y_onehot, eps, self._beta_at(epoch_progress),
                               self.optimizer_)

    # ------------------------------------------------------------ one step
    def train_step(self, x, y_onehot, eps, beta=1.0, optimizer=None):
        r"""One training step on the batch ``x`` with its one-hot labels
        ``y_onehot`` and the noise ``eps``, as docs/math.md §11 derives it.

        The loss is the VAE's with both networks told the label,

        .. math::
            \mathcal{L} = \frac1n \sum_i -\log p(x_i \mid z_i, y_i)
                + \beta\,\mathrm{KL}\big(q(z \mid x_i, y_i) \,\|\, p(z)\big),
            \qquad z_i = \mu([x_i, e_{y_i}]) + \sigma([x_i, e_{y_i}]) \odot \varepsilon_i .

        Backward, the decoder's input gradient is split (:func:`join_backward`):
        the :math:`z` columns, with the KL's gradient through :math:`z` (the
        mixture prior's), go on to the reparameterization; the label's
        columns are dropped (the label is data, not a parameter).  The
        encoder's input gradient is not needed at all.  Then, given an
        ``optimizer``, one update of all parameters at once, refused with a
        FloatingPointError when the loss or a gradient is not finite.

        Returns
        -------
        dict
            The batch's means: ``loss``, ``recon`` and ``kl``, in nats.
        """
        n = x.shape[0]
        # Forward: encode [x, e_y], reparameterize, decode [z, e_y], the loss.
        mu, logvar = self.encoder_.forward(join(x, y_onehot))
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(join(z, y_onehot))
        log_px = self.likelihood_.forward(x, out)                  # sum of log p(x|z,y)
        kl = self.prior_.forward(mu, logvar, z)                    # sum of KL(q || p)
        recon, kl = -log_px / n, kl / n
        loss = recon + beta * kl
        # Backward: the same steps in reverse; the join's backward is a split,
        # whose z columns join the KL's part through z (0 in closed form).
        grad_out = self.likelihood_.backward(-1.0 / n)
        kl_mu, kl_logvar, kl_z = self.prior_.backward(beta / n)
        grad_z, _ = join_backward(self.decoder_.backward(grad_out), self.latent_dim)
        grad_mu, grad_logvar = reparameterize_backward(grad_z + kl_z, logvar, eps)
        self.encoder_.backward(grad_mu + kl_mu, grad_logvar + kl_logvar, input_grad=False)
        # Update: Adam on all parameters as one vector.
        if optimizer is not None:
            refuse_non_finite({"loss": loss, "recon": recon, "kl": kl}, self.parameters_)
            optimizer.step({FLAT: self.parameters_.theta}, {FLAT: self.parameters_.grad})
        return {"loss": loss, "recon": recon, "kl": kl}

    def _elbo_terms(self, x, y_onehot, eps):
        r""":math:`\log p(x \mid z, y)` and the KL per example: the forward
        pass of :meth:`train_step`, row by row."""
        mu, logvar = self.encoder_.forward(join(x, y_onehot))
        z = reparameterize(mu, logvar, eps)
        out = self.decoder_.forward(join(z, y_onehot))
        return self.likelihood_.log_prob(x, out), self.prior_.kl(mu, logvar, z)

    # ------------------------------------------------------------ for study
    def loss(self, X, y, eps):
        r"""Mean training loss per example for the labels ``y`` and a fixed
        noise ``eps``: a deterministic function of the parameters, computed
        row by row (not by :meth:`train_step`), for gradient checks."""
        X = self.check_data(X)
        Y = self.onehot(y, X.shape[0])
        eps = self._check_eps(X, eps)
        log_px, kl = self._elbo_terms(X, Y, eps)
        return float(np.mean(-log_px + self.beta * kl))

    def loss_and_grads(self, X, y, eps=None):
        """The mean loss per example and its gradient for every parameter
        (copies keyed like ``params_``), by :meth:`train_step`; ``eps`` is
        drawn from ``rng_`` when omitted."""
        self._check_fitted_for_gradients()
        X = self.check_data(X)
        Y = self.onehot(y, X.shape[0])
        if eps is None:
            eps = self.rng_.standard_normal((X.shape[0], self.latent_dim), dtype=self.dtype)
        eps = self._check_eps(X, eps)
        terms = self.train_step(X, Y, eps, float(self.beta))
        return terms["loss"], self._grads_copy()

    # ------------------------------------------------------------ public verbs
    def encode(self, X, y=None):
        r"""Parameters of :math:`q(z \mid x, y)`.

        Returns
        -------
        mu, logvar : ndarray of shape (n_samples, latent_dim)
        """
        X = self._validate_data(X, reset=False)
        Y = self.onehot(y, X.shape[0])
        return self._batched(lambda x, t: self.encoder_.forward(join(x, t)), X, Y)

    def transform(self, X, y=None):
        r"""The posterior means :math:`\mu(x, y)`: the code of each row
        given its label."""
        return self.encode(X, y)[0]

    def decode(self, Z, y=None):
        r"""Map codes and labels to the decoder's mean of
        :math:`p(x \mid z, y)`; ``y`` is one label for all codes or one per
        code.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        Z = self.check_codes(Z)
        return self._decoded(Z, self.onehot(y, Z.shape[0]))

    def _decoded(self, Z, Y):
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            means = self._batched(
                lambda z, t: self.likelihood_.mean(self.decoder_.forward(join(z, t))), Z, Y)
        return check_finite(means, "decode(Z, y)")

    def inverse_transform(self, Z, y=None):
        """Same as :meth:`decode`: codes back to data space."""
        return self.decode(Z, y)

    def sample(self, n_samples=1, y=None, random_state=None):
        r"""Draws of class ``y``: decode :math:`z \sim p(z)` (:math:`N(0, I)`
        or the learned mixture) with the labels.

        Parameters
        ----------
        n_samples : int
        y : label or array-like of shape (n_samples,)
            One label for all samples, or one per sample (required).
        random_state : int, Generator or None
            Source of :math:`z`; the model's ``rng_`` when None.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        check_int("n_samples", n_samples, 1)
        Y = self.onehot(y, n_samples)       # checked before any draw
        rng = self.rng_ if random_state is None else as_generator(random_state)
        return self._decoded(self.prior_.sample(n_samples, rng), Y)

    def elbo_terms(self, X, y=None, random_state=0):
        r"""The two terms of the conditional ELBO per example, in nats:
        :math:`\log p(x \mid z, y)` (one sample) and the exact KL; each row's
        noise is a function of its values and ``random_state``, as for
        :meth:`npvae.VAE.elbo_terms`."""
        X = self.check_data(X)
        Y = self.onehot(y, X.shape[0])
        eps = row_normals(X, self.latent_dim, random_state, self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):   # reported by check_finite
            log_px, kl = self._batched(self._elbo_terms, X, Y, eps)
        return check_finite(log_px, "log p(x|z,y)"), check_finite(kl, "the KL term")

    def score_samples(self, X, y=None):
        r"""Conditional ELBO per example, :math:`\log p(x \mid z, y) -
        \mathrm{KL}` with :math:`\beta = 1`: a lower bound on
        :math:`\log p(x \mid y)`, in nats."""
        log_px, kl = self.elbo_terms(X, y)
        return log_px - kl

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over ``X`` with its labels, in nats."""
        return float(np.mean(self.score_samples(X, y)))

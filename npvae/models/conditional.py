r"""The conditional VAE: a VAE told the label, :math:`q(z \mid x, y)` and
:math:`p(x \mid z, y)` (Sohn, Lee & Yan, 2015).

The label enters as a one-hot row :math:`e_y` *joined* to each network's
input: the encoder reads :math:`[x, e_y]`, the decoder :math:`[z, e_y]`.
The join is a layer (:class:`npvae.core.layers.Join`): a concatenation of
columns, whose backward pass is a split of the incoming gradient's columns.
The VAE's step runs the joins whenever a batch carries labels, so this
model only forms its batches with the one-hot labels (``needs_labels``);
everything else is the VAE's.  The prior :math:`p(z)` does not see the
label (:math:`N(0, I)`, or the VAE's learned mixture with
``prior="mixture"``), so the code :math:`z` learns what the label does not
say (the "style"), and decoding one code with every label transfers that
style across the classes.

:meth:`npvae.VAE.forward_backward` is the one training step, with the
two joins; docs/math.md §11 derives it.
"""
import numpy as np
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..core.validation import check_int
from .base import Batch
from .vae import VAE

__all__ = ["ConditionalVAE"]


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
    def fit_labels(self, y, X):
        """``classes_`` for the labels ``y`` of the rows of ``X``, checked."""
        y = self.labels_array(y)
        check_consistent_length(X, y)
        check_classification_targets(y)
        return unique_labels(y)

    def labels_array(self, y):
        """``y`` as a 1-d array of labels; a ValueError for None."""
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
        y = self.labels_array(y)
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

    def labels_onehot(self, y, n_rows):
        """:meth:`onehot`: every verb of this model needs the labels."""
        return self.onehot(y, n_rows)

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
        labels = self.labels_array(classes)
        check_classification_targets(labels)
        classes = unique_labels(labels)
        if len(classes) == 0:
            raise ValueError("classes is empty: a conditional VAE needs at least one label value")
        if len(classes) != len(labels):
            raise ValueError(f"classes must be distinct, got {labels.tolist()}")
        if X is not None:
            X = self.check_fit_data(X)
            if X.shape[1] != n_features:
                raise ValueError(f"X has {X.shape[1]} features, but n_features is {n_features}")
        return self.build(int(n_features), X, classes)

    def build(self, n_features, X, classes):
        """The VAE's, with the label's columns joined to each network's input."""
        super().build(n_features, X, condition_dim=len(classes))
        self.classes_ = classes
        return self

    def init_args(self):
        """What :meth:`initialize` needs beyond ``n_features`` to rebuild
        this model: its ``classes_``, as JSON values (for checkpoints)."""
        check_is_fitted(self)
        return {"classes": self.classes_.tolist()}

    # ------------------------------------------------------------ training
    def build_for_fit(self, X, y):
        """:meth:`build` with the classes found in the labels ``y``."""
        self.build(X.shape[1], X, self.fit_labels(y, X))

    def fit_transform(self, X, y=None):
        """``fit(X, y)``, then the codes ``transform(X, y)``."""
        return self.fit(X, y).transform(X, y)

    def train_step(self, x, y_onehot, eps, beta=1.0, optimizer=None):
        r"""One training step on the batch ``x`` with its one-hot labels
        ``y_onehot`` (n, C) and the noise ``eps`` (n, L): the VAE's
        :meth:`~npvae.VAE.forward_backward` on a batch with labels, as
        docs/math.md §11 derives it, then, given an ``optimizer``, the
        shared update.

        .. math::
            \mathcal{L} = \frac1n \sum_i -\log p(x_i \mid z_i, y_i)
                + \beta\,\mathrm{KL}\big(q(z \mid x_i, y_i) \,\|\, p(z)\big),
            \qquad z_i = \mu([x_i, e_{y_i}]) + \sigma([x_i, e_{y_i}]) \odot \varepsilon_i .

        Returns
        -------
        dict
            The batch's means: ``loss``, ``recon`` and ``kl``, in nats.
        """
        return self.step(Batch(x, y_onehot, eps), beta, optimizer)

    # ------------------------------------------------------------ public verbs
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
        self.checked_count(n_samples)
        Y = self.onehot(y, n_samples)       # checked before any draw
        return self.sampled(n_samples, Y, random_state)

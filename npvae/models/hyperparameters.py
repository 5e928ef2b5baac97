"""Checks of an estimator's hyper-parameters, each error naming the class
and the parameter (``VAE.beta must be ...``), as scikit-learn's
``check_scalar`` does; and hyper-parameters compared by value."""
import math
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_scalar

__all__ = ["by_value", "check_gradient_estimator", "check_number", "check_option"]


def by_value(value):
    """A hyper-parameter with every sequence in it a tuple, to compare by value."""
    if isinstance(value, (str, bytes)) or not np.iterable(value):
        return value
    return tuple(by_value(v) for v in value)


def check_number(model, name, kind, low, high=None, low_open=False, high_open=True,
                 none_ok=False):
    """Check the hyper-parameter ``name`` of ``model`` by scikit-learn's
    ``check_scalar``, with the model's class in the message; beyond it, a
    bool is no number and a real must be finite."""
    value = getattr(model, name)
    if value is None and none_ok:
        return
    where = f"{type(model).__name__}.{name}"
    if isinstance(value, bool) or (kind is Real and isinstance(value, Real)
                                   and not math.isfinite(value)):
        raise (TypeError if isinstance(value, bool) else ValueError)(
            f"{where} must be a finite {'int' if kind is Integral else 'number'}"
            f"{' or None' if none_ok else ''}, got {value!r}")
    bounds = {(False, False): "both", (True, False): "right", (False, True): "left",
              (True, True): "neither"}[low_open, high_open]
    check_scalar(value, where, kind, min_val=low, max_val=high, include_boundaries=bounds)


def check_option(model, name, options):
    """Check that the hyper-parameter ``name`` of ``model`` is one of the
    strings ``options``."""
    value = getattr(model, name)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{type(model).__name__}.{name} must be one of "
                         f"{sorted(options)}, got {value!r}")


def check_gradient_estimator(model):
    """Check that ``model.gradient_estimator`` is one of the model's
    ``gradient_estimators``; DReG asked of a model whose codes all weigh the
    same is named for what it would be, STL (docs/math.md §9b)."""
    if model.gradient_estimator == "dreg" and "dreg" not in model.gradient_estimators:
        raise ValueError(
            f"{type(model).__name__}.gradient_estimator='dreg' needs importance weights: "
            f"with every code weighing the same (1 or 1/k) DReG is 'stl'; use "
            f"gradient_estimator='stl', or an importance-weighted model (IWAE, TwoLayerIWAE)")
    check_option(model, "gradient_estimator", model.gradient_estimators)

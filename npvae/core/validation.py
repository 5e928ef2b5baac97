"""Checks the estimators share: an integer argument, finite results, sizes
that fit in memory, and the refusal of a training step whose loss or
gradient is not finite."""
import math
import numbers
import os

import numpy as np

__all__ = ["check_int", "check_finite", "check_memory", "refuse_non_finite"]


def check_int(name, value, low):
    """Raise a ValueError naming ``name`` unless ``value`` is an integer
    (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_finite(values, what):
    """``values``, or a ValueError when some entry is NaN or infinite (an
    input far outside what the model was trained on, or parameters that a
    diverged fit left huge)."""
    if not np.isfinite(values).all():
        raise ValueError(f"{what} is not finite for some rows: the model's "
                         f"computation overflowed (inputs far outside the training "
                         f"data's range, or parameters a diverged fit left huge)")
    return values


def check_memory(n_values, itemsize, what):
    """Raise a ValueError naming ``what`` (the parameter that sets the size)
    when ``n_values`` values of ``itemsize`` bytes exceed the memory
    available (MemAvailable of /proc/meminfo, else the physical memory):
    refused before allocating, instead of a MemoryError or minutes of work."""
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
        available = 1024 * kb
    except (OSError, StopIteration, ValueError, IndexError):
        available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    needed = float(n_values) * itemsize
    if needed > available:
        raise ValueError(f"{what} needs about {needed / 2**30:.3g} GiB of memory, more than "
                         f"the {available / 2**30:.3g} GiB available; choose a smaller value")


def refuse_non_finite(terms, parameters):
    """Raise FloatingPointError when the loss (``terms["loss"]``, its other
    terms named in the message) or a gradient of ``parameters`` (a
    :class:`npvae.core.parameters.ParameterVector`) is not finite: one Adam step
    with it (inf / inf) would leave NaN parameters."""
    problem = None
    if not math.isfinite(terms["loss"]):
        parts = ", ".join(f"{key} {value}" for key, value in terms.items() if key != "loss")
        problem = f"the loss is {terms['loss']} ({parts})"
    problem = problem or parameters.gradient_error()
    if problem is not None:
        raise FloatingPointError(problem)

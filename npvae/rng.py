"""Random generators from ``random_state`` arguments.

Every random draw in npvae comes from a ``numpy.random.Generator`` passed
in or seeded here, never from NumPy's global state.
"""
import numbers

import numpy as np

__all__ = ["as_generator"]

_SEEDABLE = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)


def as_generator(random_state, name="random_state"):
    """``numpy.random.default_rng(random_state)``, with an error that names
    the argument when it is not something a generator can come from.

    Parameters
    ----------
    random_state : None, int >= 0, Generator, BitGenerator or SeedSequence
        A Generator is returned as it is (draws continue its stream); None
        seeds from the operating system.
    name : str
        The argument's name, for the error message.
    """
    if random_state is None or isinstance(random_state, _SEEDABLE):
        return np.random.default_rng(random_state)
    if (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
            and random_state >= 0):
        return np.random.default_rng(int(random_state))
    hint = ("; a legacy RandomState cannot drive a Generator, pass "
            "numpy.random.default_rng(seed) instead"
            if isinstance(random_state, np.random.RandomState) else "")
    raise ValueError(f"{name} must be None, an integer >= 0 or a numpy.random.Generator, "
                     f"got {random_state!r}{hint}")

"""Random generators from ``random_state`` arguments.

Every random draw in npvae comes from a ``numpy.random.Generator`` passed
in or seeded here, never from NumPy's global state.
"""
import numpy as np

__all__ = ["as_generator"]


def as_generator(random_state, name="random_state"):
    """``numpy.random.default_rng(random_state)``, with an error that names
    the argument when it cannot seed a generator.

    Parameters
    ----------
    random_state : None, int >= 0, sequence of them, Generator, BitGenerator or SeedSequence
        Whatever ``default_rng`` takes, except a bool. A Generator is
        returned as it is (draws continue its stream); None seeds from the
        operating system.
    name : str
        The argument's name, for the error message.

    Raises
    ------
    TypeError
        For a value of the wrong kind (a string, a float, a bool, a legacy
        ``RandomState``).
    ValueError
        For a negative seed.
    """
    accepted = (f"{name} must be None, an integer >= 0 (or a sequence of them), or a "
                f"numpy.random Generator, BitGenerator or SeedSequence, got {random_state!r}")
    if isinstance(random_state, (bool, np.bool_)):
        raise TypeError(accepted)         # True would quietly mean the seed 1
    if isinstance(random_state, np.random.RandomState):
        raise TypeError(f"{accepted}; a legacy RandomState cannot drive a Generator, "
                        "pass numpy.random.default_rng(seed) instead")
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as err:
        raise type(err)(accepted) from None

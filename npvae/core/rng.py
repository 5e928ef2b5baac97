"""Random generators from ``random_state`` arguments.

Every random draw in npvae comes from a ``numpy.random.Generator`` passed
in or seeded here, never from NumPy's global state.
"""
import numpy as np

__all__ = ["as_generator", "row_normals"]


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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x):
    """SplitMix64's finaliser: a bijection of uint64 that scatters every
    input bit over the whole output."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def row_normals(X, n_columns, random_state=0, dtype=np.float64):
    r"""Standard normal draws for each row of ``X`` that depend only on that
    row's values and the seed: a row gets the same draws alone, in any
    batch and at any position.

    Each row's bytes are hashed to a 64-bit key :math:`h` (a sum of its
    32-bit words times fixed random odd multipliers, mod :math:`2^{64}`,
    then mixed); draw :math:`j` comes from the counter
    :math:`\mathrm{mix}(h + \mathrm{seed} + j\,\varphi)` (SplitMix64, a
    counter-based generator), turned into uniforms :math:`u \in (0, 1)` and
    then normals by Box-Muller,
    :math:`\sqrt{-2\log u_1}\,(\cos 2\pi u_2, \sin 2\pi u_2)`.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    n_columns : int
        Draws per row.
    random_state : int >= 0 or Generator
        The seed (a Generator gives one draw to seed with).
    dtype : numpy dtype
        Of the draws.

    Returns
    -------
    ndarray of shape (n, n_columns)
    """
    if isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(2 ** 63))
    else:
        seed = int(as_generator(random_state).integers(2 ** 63))
    words = np.ascontiguousarray(X).view(np.uint8).reshape(len(X), -1)
    words = np.pad(words, ((0, 0), (0, -words.shape[1] % 4))).view(np.uint32)
    multipliers = np.random.default_rng(0).integers(0, 2 ** 63, words.shape[1],
                                                    dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        keys = np.empty(len(X), dtype=np.uint64)
        for start in range(0, len(X), 1024):       # row blocks: no n x d uint64 copy
            block = words[start:start + 1024].astype(np.uint64)
            keys[start:start + 1024] = (block * multipliers).sum(axis=1, dtype=np.uint64)
        keys = _mix(keys + np.uint64(seed))
        pairs = -(-n_columns // 2)
        counters = keys[:, None] + _GOLDEN * np.arange(1, 2 * pairs + 1, dtype=np.uint64)
        # The top 53 bits, centred in their interval: u is never 0 or 1.
        u = ((_mix(counters) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53
    radius = np.sqrt(-2.0 * np.log(u[:, :pairs]))
    angle = 2.0 * np.pi * u[:, pairs:]
    normals = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return normals[:, :n_columns].astype(dtype)

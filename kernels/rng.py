"""Counter-based random numbers: every draw is a pure function of its key.

A draw is addressed by (stream, customer, day, purpose); the stream comes from
(seed, replication). Each (stream, day, purpose) gets its own 64-bit sub-key

    day_key = mix64(stream ^ mix64(GOLDEN * (day << 16 | purpose) + C))

and the customer's draw is SplitMix64 at position ``customer`` of that sub-stream:

    draw = mix64(day_key + customer * GOLDEN).

``mix64`` is a bijection of 64-bit integers and ``GOLDEN`` is odd, so within one
(day, purpose) no two customers share a draw, and for one customer two different
(day, purpose) pairs never give the same sub-key, hence never the same draw. No state
is carried between draws: the same draw comes out on any thread count, in any process,
on any machine. The per-day sub-key is computed once per day, so a customer-day costs
one ``mix64``. (An earlier design packed day and purpose into the high bits of one
counter under a single finaliser round; inputs that differ only in their high bits are
the finaliser's weak case, so each (day, purpose) now gets a fully mixed sub-key.)
"""

import numpy as np

from .jit import SERIAL, njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S16 = np.uint64(16)
_C2 = np.uint64(0xD1B54A32D192ED03)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53

#: Purposes: one per kind of decision, so draws for different decisions never collide.
EVENT = 1  # does anything happen to this customer today?
CHOICE = 2  # which outcome / cause / product, given that something happened
INIT_STAGE = 3  # starting stage
INIT_LEVEL = 4  # responsiveness level
INIT_BAND = 5  # age band
INIT_PHASE = 12  # where a starting subscriber is in its billing period
CANDIDATE = 13  # is an unaware customer a candidate for an event today? (thinning)


@njit(**SERIAL)
def mix64(z):
    """SplitMix64's finaliser (Stafford's variant 13): a bijection on uint64."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(**SERIAL)
def stream_key(seed, replication):
    """The stream of (seed, replication): two rounds of mixing, so nearby seeds are far apart."""
    return mix64(mix64(np.uint64(seed) * GOLDEN + np.uint64(0x632BE59BD9B4E019)) ^ (np.uint64(replication) * _M2))


@njit(**SERIAL)
def day_key(key, day, purpose):
    """Sub-key of stream ``key`` for one (day, purpose)."""
    # keys arrive as Python ints; below 2**63 numba would type them int64, and
    # int64 ^ uint64 silently becomes float64 arithmetic further on
    return np.uint64(key) ^ mix64((((np.uint64(day) << _S16) | np.uint64(purpose)) * GOLDEN) + _C2)


@njit(**SERIAL)
def draw_at(dkey, customer):
    """64 random bits for ``customer`` under a day sub-key."""
    return mix64(dkey + np.uint64(customer) * GOLDEN)


@njit(**SERIAL)
def draw(key, customer, day, purpose):
    """64 random bits for (customer, day, purpose) in stream ``key``."""
    return draw_at(day_key(key, day, purpose), customer)


@njit(**SERIAL)
def to_unit(bits):
    """Top 53 bits as a float in [0, 1)."""
    return np.float64(bits >> _S11) * _INV53


@njit(**SERIAL)
def uniforms(key, customers, day, purpose):
    """Vector of uniforms for an array of customers (used by tests and initialisation)."""
    out = np.empty(customers.shape[0], dtype=np.float64)
    for i in range(customers.shape[0]):
        out[i] = to_unit(draw(key, customers[i], day, purpose))
    return out


@njit(**SERIAL)
def bits(key, customers, day, purpose):
    """Vector of raw 64-bit draws for an array of customers."""
    out = np.empty(customers.shape[0], dtype=np.uint64)
    for i in range(customers.shape[0]):
        out[i] = draw(key, customers[i], day, purpose)
    return out

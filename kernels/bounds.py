"""Lower bounds on the day kernel's cost, for benchmarks only (``benchmarks/kernel_ab.py``).

Each loop does a part of what :func:`cvj.kernels.journey.advance_day` does for every
customer on a day, over the same arrays, with the same random numbers and in the same
blocks of 64 customers (one bit each in a mask, shifted in: the loops stay scalar like
the kernel's), and nothing else: what is left of the kernel's time once everything but
that part is gone. Each writes one value per chunk, so the work cannot be optimised
away.
"""

import numpy as np
from numba import prange

from .jit import PARALLEL, SERIAL, njit
from .journey import _MASK16, BLOCK, CHUNK, _scan
from .rng import EVENT, day_key, draw_at

_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_S32 = np.uint64(32)
_S63 = np.uint64(63)


@njit(**SERIAL)
def _draws(b, e, k_event, t):
    m = _ZERO
    for i in range(np.uint64(b), np.uint64(e)):
        m = (m >> _ONE) | (np.uint64((draw_at(k_event, i) >> _S32) < t) << _S63)
    return m


@njit(**SERIAL)
def _stage_draws(b, e, k_event, stage, row, thr):
    m = _ZERO
    for i in range(np.uint64(b), np.uint64(e)):
        hit = (draw_at(k_event, i) >> _S32) < thr[np.uint64(row[i]), np.uint64(stage[i])]
        m = (m >> _ONE) | (np.uint64(hit) << _S63)
    return m


@njit(**PARALLEL)
def draw_only(n, key, day, t, hits):
    """One event draw per customer compared with one constant threshold ``t``."""
    chunks = (n + CHUNK - 1) // CHUNK
    k_event = day_key(key, day, EVENT)
    t = np.uint64(t)
    for ci in prange(chunks):
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        h = 0
        for b in range(lo, hi, BLOCK):
            h += _draws(b, min(hi, b + BLOCK), k_event, t) != _ZERO
        hits[ci] = h


@njit(**PARALLEL)
def draw_compare_stage(stage, row, key, day, thr, hits):
    """The memoryless kernel's fast path: the threshold of (row, stage), one draw, one
    compare (the shape of the kernel before per-customer memory)."""
    n = stage.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    k_event = day_key(key, day, EVENT)
    for ci in prange(chunks):
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        h = 0
        for b in range(lo, hi, BLOCK):
            h += _stage_draws(b, min(hi, b + BLOCK), k_event, stage, row, thr) != _ZERO
        hits[ci] = h


@njit(**PARALLEL)
def draw_compare_memory(row, sx, clock, key, day, colf, thr, hits):
    """The day kernel's first pass alone (its fast path with memory): the column of
    (slot, days since the clock), the threshold of (row, column), one draw, one compare."""
    n = row.shape[0]
    chunks = (n + CHUNK - 1) // CHUNK
    k_event = day_key(key, day, EVENT)
    uday = np.uint64(day) & _MASK16
    for ci in prange(chunks):
        lo = ci * CHUNK
        hi = min(n, lo + CHUNK)
        h = 0
        for b in range(lo, hi, BLOCK):
            h += _scan(b, min(hi, b + BLOCK), uday, k_event, clock, sx, row, colf, thr) != _ZERO
        hits[ci] = h

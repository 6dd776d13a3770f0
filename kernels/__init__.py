"""Numba kernels of the customer-journey simulator: ``@njit`` functions over arrays only."""

from .jit import get_threads, max_threads, set_threads
from .journey import CHUNK, N_LEVELS, advance_day, count_customers, init_customers, n_chunks
from .rng import day_key, draw, draw_at, stream_key, to_unit

__all__ = [
    "CHUNK",
    "N_LEVELS",
    "advance_day",
    "count_customers",
    "day_key",
    "draw",
    "draw_at",
    "get_threads",
    "init_customers",
    "max_threads",
    "n_chunks",
    "set_threads",
    "stream_key",
    "to_unit",
]

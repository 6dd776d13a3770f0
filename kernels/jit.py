"""JIT options for every kernel, in one place.

``CVJ_NUMBA_CACHE=0`` turns the on-disk cache off (a test rebuilds the cache this way);
``NUMBA_DISABLE_JIT=1`` runs the kernels as plain Python, for coverage of kernel code.
"""

import os

import numba

CACHE = os.environ.get("CVJ_NUMBA_CACHE", "1") != "0"

#: options for serial kernels
SERIAL = dict(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
#: options for the parallel day kernel (``prange`` over fixed chunks of customers)
PARALLEL = dict(SERIAL, parallel=True)


def njit(**options):
    return numba.njit(**options)


def set_threads(n: int) -> None:
    """Use ``n`` worker threads in parallel kernels (1 <= n <= max_threads())."""
    numba.set_num_threads(int(n))


def get_threads() -> int:
    return numba.get_num_threads()


def max_threads() -> int:
    return numba.config.NUMBA_NUM_THREADS

"""JIT options for every kernel, in one place.

Numba's on-disk cache lives in the user's cache directory, never next to the source:
next to the source means inside site-packages for an installed package (read-only for
some users, and left behind by ``pip uninstall``, where it later shadowed an editable
install of the same package). The folder is, in order of precedence:

- ``CVJ_CACHE_DIR`` if set;
- ``NUMBA_CACHE_DIR`` if the user set it for all of numba;
- ``platformdirs.user_cache_dir("cvj")/numba`` (``~/.cache/cvj/numba`` on Linux).

``CVJ_NUMBA_CACHE=0`` turns the on-disk cache off (a test rebuilds the cache this way),
and so does a cache folder that cannot be written; ``NUMBA_DISABLE_JIT=1`` runs the
kernels as plain Python, for coverage of kernel code.
"""

import os
import tempfile

import numba
import numba.core.config


def cache_dir() -> str:
    """The folder numba caches compiled kernels in (see the module docstring)."""
    chosen = os.environ.get("CVJ_CACHE_DIR") or os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return os.path.abspath(chosen)
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("cvj", appauthor=False), "numba")


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


CACHE = os.environ.get("CVJ_NUMBA_CACHE", "1") != "0"
if CACHE:
    CACHE_DIR = cache_dir()
    CACHE = _writable(CACHE_DIR)
    if CACHE:
        # numba reads NUMBA_CACHE_DIR into its config when the environment changes; the
        # cache locator reads the config when a kernel below is decorated, so this must
        # come before any @njit(cache=True). Child processes (workers) inherit it.
        os.environ["NUMBA_CACHE_DIR"] = CACHE_DIR
        numba.core.config.reload_config()
        numba.core.config.CACHE_DIR = CACHE_DIR

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

"""Ctrl-C and SIGTERM held back while compiled kernels are compiled and run.

Numba compiles a kernel on its first call (with a cold cache: seconds), in Python code.
A ``KeyboardInterrupt`` raised in the middle of that compilation does not always reach
the caller: seen here, a ``cvj run`` interrupted in its first seconds went on
simulating (a 2,000,000-customer run of 20,000 days, for hours), or stopped with
Numba's "no compiled object yet for <Library '_event'>" instead of cleaning up.

:func:`held` keeps such a signal until the block ends, then delivers it as the handler
that was in place would have (``KeyboardInterrupt`` for Ctrl-C, the CLI's own handler
for SIGTERM), so a day is never cut in half and an interrupt is never lost. A day takes
milliseconds once the kernels are compiled; the first day waits for the compilation.
Outside the main thread (a Dask worker's task thread), where Python cannot set signal
handlers, the block runs as it is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM held; deliver the first one that came
    when the block ends (after it, if the block raised)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous: dict[int, object] = {}

    def hold(signum, _frame):
        got.append(signum)

    try:
        for s in SIGNALS:
            previous[s] = signal.signal(s, hold)
    except (ValueError, OSError):  # not the main interpreter: leave the handlers as they were
        for s, h in previous.items():
            signal.signal(s, h)
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if got:
            _deliver(got[0], previous[got[0]])


def _deliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_IGN:
        return
    else:  # SIG_DFL, or a handler set outside Python: the signal's own action
        os.kill(os.getpid(), signum)


__all__ = ["SIGNALS", "held"]

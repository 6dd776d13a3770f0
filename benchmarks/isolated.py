"""Run one benchmark case in this (fresh) process and print wall time and memory as JSON.

    python -m benchmarks.isolated IMPL SCENARIO CUSTOMERS DAYS THREADS

(SCENARIO: a name in ``benchmarks.impls.SCENARIOS``).

The baseline is the process's peak resident memory (``VmHWM``) after the interpreter
started, everything was imported and the kernels were compiled or loaded from the
cache by a 2,000-customer warm-up run; the case's own memory is the peak after it
minus that baseline.
"""

from __future__ import annotations

import json
import sys
import time


def status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None where there is no /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> dict:
    impl, scenario, customers, days, threads = (argv if argv is not None else sys.argv[1:])[:5]
    customers, days, threads = int(customers), int(days), int(threads)
    from . import impls

    impls.warm_up((threads,) if impl == impls.KERNEL else (1,))
    run = impls.runner(impl, scenario)
    sc = impls.scenario(scenario, customers, days)
    baseline = status_bytes("VmHWM")
    t0 = time.perf_counter()
    run(sc, threads)
    wall = time.perf_counter() - t0
    peak = status_bytes("VmHWM")
    out = {
        "implementation": impl,
        "scenario": scenario,
        "customers": customers,
        "days": days,
        "threads": threads,
        "wall_s": wall,
        "baseline_bytes": baseline,
        "peak_bytes": peak,
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()

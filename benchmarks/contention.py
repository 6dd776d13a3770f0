"""``python -m benchmarks.contention``: what two cores of this machine give the day kernel.

The kernel scales 1.5-1.7x from 1 to 2 threads on the default at 10^7 customers (the
README's Performance section), where 2 threads that shared nothing would give 2x. This
separates the kernel's own threading from the machine: it times

- a **pure compute** loop (a 64-bit hash, no memory traffic) on 1 and on 2 Numba threads;
- the **day kernel** in one process with 1 thread, alone, then in **two separate
  processes with 1 thread each at the same time** (no shared memory, no shared thread
  pool, nothing of the kernel's own threading involved).

If the two lone processes each slow down as much as the 2-thread kernel falls short
of 2x, what limits the kernel is a resource the two cores share (memory, caches, the
virtual machine's host), not how the kernel uses its threads.

    python -m benchmarks.contention [--customers 10000000] [--days 120]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _kernel(customers: int, days: int, threads: int) -> dict:
    """Run the default shop ``days`` days after 10 warm days; kernel and day seconds."""
    import numba

    import cvj
    import cvj.kernels as K
    from cvj.engine import Engine
    from cvj.model import compile_scenario

    numba.set_num_threads(threads)
    cm = compile_scenario(cvj.load_scenario(None, {"market.customers": customers, "market.days": days + 11}))
    e = Engine(cm)
    spent = [0.0]
    advance = K.advance_day

    def timed(*a):
        t0 = time.perf_counter()
        out = advance(*a)
        spent[0] += time.perf_counter() - t0
        return out

    class _Kernels:
        def __getattr__(self, name):
            return timed if name == "advance_day" else getattr(K, name)

    e._k = _Kernels()
    for _ in range(10):
        e.step()
    spent[0] = 0.0
    t0 = time.perf_counter()
    for _ in range(days):
        e.step()
    return {"kernel_s": spent[0], "day_s": time.perf_counter() - t0}


def _hash_rate(threads: int, rounds: int = 5) -> float:
    """Best seconds of a fixed hash loop (pure compute) on ``threads`` threads."""
    import numba
    import numpy as np
    from numba import njit, prange

    @njit(parallel=True)
    def hashes(n):
        out = np.zeros(64, np.uint64)
        for c in prange(64):
            z = np.uint64(c)
            for _ in range(n):
                z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            out[c] = z
        return out.sum()

    numba.set_num_threads(threads)
    hashes(10)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        hashes(2_000_000)
        best = min(best, time.perf_counter() - t0)
    return best


def _child(customers: int, days: int) -> subprocess.Popen:
    code = f"import json, benchmarks.contention as c; print(json.dumps(c._kernel({customers}, {days}, 1)))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.contention", description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=120)
    a = ap.parse_args(argv)
    h1, h2 = _hash_rate(1), _hash_rate(2)
    print(f"pure compute: 1 thread {h1:.3f} s, 2 threads {h2:.3f} s: {h1 / h2:.2f}x")
    cd = a.customers * a.days
    one = json.loads(_child(a.customers, a.days).communicate()[0])
    procs = [_child(a.customers, a.days) for _ in range(2)]
    pair = [json.loads(p.communicate()[0]) for p in procs]
    two = _kernel(a.customers, a.days, 2)
    print(f"day kernel, {a.customers:,} customers x {a.days} days (after 10 warm days), seconds in the kernel:")
    print(f"  1 process, 1 thread, alone:          {one['kernel_s']:.2f} s ({cd / one['kernel_s'] / 1e6:,.0f}M customer-days/s)")
    for k, r in enumerate(pair):
        print(f"  2 processes at once, 1 thread each: {r['kernel_s']:.2f} s ({one['kernel_s'] / r['kernel_s']:.2f} of alone)"
              f"  [process {k + 1}]")
    both = 2 * cd / max(r["kernel_s"] for r in pair)
    print(f"  the pair together:                   {both / 1e6:,.0f}M customer-days/s "
          f"({both * one['kernel_s'] / cd:.2f}x one alone)")
    print(f"  1 process, 2 threads:                {two['kernel_s']:.2f} s ({cd / two['kernel_s'] / 1e6:,.0f}M customer-days/s, "
          f"{one['kernel_s'] / two['kernel_s']:.2f}x one thread)")


if __name__ == "__main__":
    main()

"""``python -m benchmarks.kernel_ab``: the day kernel A/B, side by side on identical state.

Builds the engine of a benchmark scenario (``--scenario``, default: the format-2
default shop; see :mod:`benchmarks.impls`) at ``--customers``, runs ``--warm`` days so the
population is mixed (buyers, subscribers, lapsed), records the next ``--days`` days'
tables, then replays those days from the same starting state with each kernel in
turn, interleaved over ``--rounds`` rounds (the best round of each counts: other
processes on the machine only ever slow a round down). Kernels:

- ``baseline``: ``kernels/journey.py`` at git revision ``--baseline`` (default HEAD),
  loaded from the repository's history into a package of its own;
- ``current``: the working tree's kernel (what the engine runs);
- ``current, no counting``: the same without the audience cell counts;
- three lower bounds from :mod:`cvj.kernels.bounds` on the same arrays: the fast path
  with memory (column lookup, draw, compare), the memoryless fast path (the
  threshold of (row, stage), draw, compare) and the draw alone.

Every kernel's final state, flows and audience cells are checked against the
baseline's (the bounds excepted), so a faster kernel that changed a number fails
here. Prints ns per customer-day (per thread: wall time x threads / customer-days),
customer-days/s and each row's speed over the baseline's, and the same from the
process's CPU time (less disturbed by other processes when the machine is shared; with
more than one thread it also counts threads waiting at the end of a day).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cvj import kernels
from cvj.engine import Engine, use_threads
from cvj.kernels import bounds, journey
from cvj.model import compile_scenario

from . import impls

ROOT = Path(__file__).resolve().parent.parent
STATE = ("stage", "row", "sx", "orders", "clock", "last_order", "acquired", "converted", "revenue", "active")
OUTS = ("flows", "buys", "first_touch", "cells", "gaps", "subs")


def baseline_module(rev: str):
    """``kernels/journey.py`` (with the ``jit`` and ``rng`` it imports) at ``rev``, as a
    package of its own under /tmp (kept, so numba's cache of it is reused)."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    base = Path("/tmp/cvj_kernel_ab") / sha[:12]
    pkg = base / "cvj_baseline_kernels"
    if not (pkg / "journey.py").exists():
        pkg.mkdir(parents=True, exist_ok=True)
        for name in ("jit.py", "rng.py", "journey.py"):
            src = subprocess.run(
                ["git", "show", f"{sha}:kernels/{name}"], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout
            (pkg / name).write_text(src)
        (pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(base))
    try:
        return importlib.import_module("cvj_baseline_kernels.journey"), sha
    finally:
        sys.path.remove(str(base))


def params(fn) -> list[str]:
    return list(inspect.signature(fn.py_func).parameters)


def record(engine: Engine, days: int) -> list[dict]:
    """The engine's next ``days`` days, each as the day kernel's arguments by name
    (the state arrays left out)."""
    names = params(kernels.advance_day)
    calls = []

    class Recorder:
        def __getattr__(self, name):
            return getattr(kernels, name)

        @staticmethod
        def advance_day(*args):
            kernels.advance_day(*args)
            calls.append({k: v for k, v in zip(names, args) if k not in STATE and k not in OUTS})

    engine._k = Recorder()
    for _ in range(days):
        engine.step()
    engine._k = kernels
    return calls


def counts_changes(module) -> bool:
    """Whether a day kernel's ``cells`` are the day's changes to the audience counts
    (from the kernel with a first pass in blocks on) rather than the whole count."""
    return hasattr(module, "BLOCK")


def replay(
    fn, start: dict, calls: list[dict], n_chunks: int, shapes: dict, count: bool = True, cells0=None
) -> tuple[float, dict]:
    """Run ``fn`` (a day kernel) over the recorded days from a copy of ``start``: the
    wall time of the kernel calls and the end state with every day's summed outputs
    (``cells0``: the audience counts at the start, for a kernel that counts changes)."""
    st = {k: v.copy() for k, v in start.items()}
    out = {k: np.zeros((n_chunks, *s[1:]), np.int32 if k == "cells" else np.int64) for k, s in shapes.items()}
    if not count:
        out["cells"] = np.zeros((n_chunks, 0, shapes["cells"][2]), np.int32)
    names = params(fn)
    totals = {k: [] for k in OUTS}
    wall = cpu = 0.0
    for call in calls:
        args = [st[k] if k in STATE else out[k] if k in OUTS else call[k] for k in names]
        t0, c0 = time.perf_counter(), time.process_time()
        fn(*args)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        for k in OUTS:
            totals[k].append(out[k].sum(axis=0, dtype=np.int64))
        if cells0 is not None and count:
            cells0 = totals["cells"][-1] = cells0 + totals["cells"][-1]
    return (wall, cpu), {"state": st, "totals": totals}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kernel_ab", description=__doc__.splitlines()[0].strip("`: "))
    ap.add_argument("--scenario", default=impls.DEFAULT, choices=(impls.DEFAULT, impls.MEMORYLESS, impls.FORMAT1))
    ap.add_argument("--customers", type=float, default=4e6)
    ap.add_argument("--warm", type=int, default=60, help="days run before the recorded ones")
    ap.add_argument("--days", type=int, default=20, help="days recorded and replayed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=kernels.max_threads())
    ap.add_argument("--baseline", default="HEAD", help="git revision of the baseline kernel")
    args = ap.parse_args(argv)
    n = int(args.customers)

    base, sha = baseline_module(args.baseline)
    cm = compile_scenario(impls.scenario(args.scenario, n, max(365, args.warm + args.days)))
    with use_threads(args.threads):
        e = Engine(cm)
        for _ in range(args.warm):
            e.step()
        start = {k: getattr(e, k).copy() for k in STATE}
        cells0 = e.cells.copy() if e.cells is not None else None
        shapes = {k: getattr(e, "_" + k).shape for k in OUTS}
        calls = record(e, args.days)
        unknown = {k: v for k, v in calls[0].items() if k not in params(base.advance_day) and np.any(v)}
        if unknown:
            print(
                f"the baseline kernel ({sha[:10]}) has no parameter {', '.join(unknown)} "
                f"({', '.join(f'{k} = {v}' for k, v in unknown.items())} here): it runs another model; "
                "pick a later --baseline or another --scenario",
                file=sys.stderr,
            )
            return 2
        nc = max(kernels.n_chunks(n), kernels.max_threads())  # rows of the counts: per chunk or per thread
        lay = cm.layout
        hits = np.zeros(nc, np.int64)

        def changes(module):
            return cells0 if counts_changes(module) else None

        def bound_memory(**_):
            for c in calls:
                bounds.draw_compare_memory(
                    start["row"], start["sx"], start["clock"], c["key"], c["day"], lay.colf, c["thr"], hits
                )

        def bound_stage(**_):
            for c in calls:
                bounds.draw_compare_stage(start["stage"], start["row"], c["key"], c["day"], c["thr"], hits)

        def bound_draw(**_):
            for c in calls:
                bounds.draw_only(n, c["key"], c["day"], 1 << 27, hits)

        kernel_rows = [
            ("baseline", lambda: replay(base.advance_day, start, calls, nc, shapes, cells0=changes(base))),
            ("current", lambda: replay(kernels.advance_day, start, calls, nc, shapes, cells0=changes(journey))),
            (
                "current, no counting",
                lambda: replay(kernels.advance_day, start, calls, nc, shapes, count=False, cells0=changes(journey)),
            ),
        ]

        def timed(f):
            def run():
                t0, c0 = time.perf_counter(), time.process_time()
                f()
                return (time.perf_counter() - t0, time.process_time() - c0), None

            return run

        bound_rows = [
            ("bound: column lookup + draw + compare", timed(bound_memory)),
            ("bound: (row, stage) lookup + draw + compare", timed(bound_stage)),
            ("bound: draw + compare", timed(bound_draw)),
        ]
        rows = kernel_rows + bound_rows
        for _, run in rows:  # compile or load every kernel before timing
            run()
        best = {name: float("inf") for name, _ in rows}
        best_cpu = dict(best)
        results = {}
        for _ in range(args.rounds):
            for name, run in rows:
                (wall, cpu), res = run()
                best[name] = min(best[name], wall)
                best_cpu[name] = min(best_cpu[name], cpu)
                if res is not None:
                    results[name] = res

    ref = results["baseline"]
    for name, res in results.items():
        for k in STATE:
            assert np.array_equal(res["state"][k], ref["state"][k]), f"{name}: state {k} differs from the baseline"
        for k in OUTS:
            if k == "cells" and "no counting" in name:
                continue
            for d, (a, b) in enumerate(zip(res["totals"][k], ref["totals"][k])):
                assert np.array_equal(a, b), f"{name}: {k} of recorded day {d + 1} differs from the baseline"

    cd = n * args.days
    print(
        f"python -m benchmarks.kernel_ab --scenario {args.scenario} --customers {n:.0e} --warm {args.warm} --days {args.days} "
        f"--rounds {args.rounds} --threads {args.threads} --baseline {args.baseline}  (baseline {sha[:10]})"
    )
    print(
        f"{'kernel':44s} {'ns/cust-day/thread':>18s} {'cust-days/s':>12s} {'x baseline':>10s} "
        f"{'CPU ns/cust-day':>15s} {'x baseline':>10s}"
    )
    for name, _ in rows:
        w, c = best[name], best_cpu[name]
        print(
            f"{name:44s} {w * args.threads / cd * 1e9:18.2f} {cd / w / 1e6:11.0f}M {best['baseline'] / w:10.2f} "
            f"{c / cd * 1e9:15.2f} {best_cpu['baseline'] / c:10.2f}"
        )
    print("state, flows, buys, first_touch, cells, gaps and subs identical to the baseline's on every day")
    return 0


if __name__ == "__main__":
    sys.exit(main())

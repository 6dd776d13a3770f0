"""The benchmark suite behind ``python -m benchmarks``: plan, measure, compare, write.

Every row runs one scenario of :mod:`benchmarks.impls` resized to (customers, days)
with one implementation, timed from the validated scenario to the last simulated day
(set-up included, output tables not), after the kernels were compiled or loaded from
the numba cache. A row is the best of ``rounds`` runs; rows of the same size run one
after the other, so their ratios are measured side by side.

The main comparison is on the model with memory (the format-2 default): the kernel on
every thread count, NumPy, pure Python and Mesa (one agent per customer) at the sizes
they can do. The kernel also runs the format-1 shop at every size (the memoryless
model, whose pure-Mesa reference row stays), and at the target size four more
variants of the default that switch per-customer memory and the audience cell
counting off one at a time, so the cost of each feature is a ratio measured in the
same run. The day tables built between days (:func:`cvj.model.channel_reach`,
:func:`cvj.model.day_tables`, :func:`cvj.engine.realised_funnel`) cost the same at any
population; their time per day is measured on its own.

Peak bytes per customer is the process's peak resident memory during the row's first
run above its resident memory just before it (Linux: the peak is reset through
``/proc/self/clear_refs``), divided by customers. It includes everything the run
allocates (state, history, day tables, block buffers, Python objects), so it is
dominated by fixed costs at small sizes.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import impls
from .impls import DEFAULT, FORMAT1, KERNEL, MESA, MESA_REFERENCE, MODEL_OF, NUMPY, PYTHON
from .isolated import status_bytes

QUICK, STANDARD, FULL = "quick", "standard", "full"
GiB = 2**30
#: what each scenario name in the table means (benchmarks/impls.py)
SCENARIO_NOTES = {
    impls.DEFAULT: "scenarios/default.toml (format 2: memory and audience counting on)",
    impls.NO_COUNTING: "the default with the kernel's audience cell counting off (audiences as counted at the start)",
    impls.MEMORYLESS: "the default without memory (year-average rates, no recency windows, one order class)",
    impls.MEMORYLESS_NO_COUNTING: "both off",
    impls.FORMAT1: "scenarios/handbag_shop_format1.toml (format 1, no memory, no counting)",
    impls.NETWORK: "the default with word of mouth on a social network (referrals.model = \"network\")",
}


@dataclass(frozen=True)
class Case:
    implementation: str
    customers: int
    days: int
    threads: int = 1
    fresh_process: bool = False  # run alone in a new interpreter (its memory is the process's)
    scenario: str = DEFAULT  # a name in impls.SCENARIOS

    @property
    def customer_days(self) -> int:
        return self.customers * self.days


@dataclass(frozen=True)
class Plan:
    mode: str
    cases: tuple[Case, ...]
    min_time: float  # repeat a row until its runs add up to this many seconds ...
    max_rounds: int  # ... or it ran this many times; the row reports the fastest
    memory_case: Case  # peak process memory, measured in a fresh process
    cold_start_overrides: tuple[str, ...]  # extra `cvj run` options (quick: a smaller run)
    target_size: tuple[int, int]  # (customers, days) the throughput targets are read at


def thread_counts() -> list[int]:
    from cvj import kernels

    top = kernels.max_threads()
    return sorted({t for t in (1, 2, top) if t <= top})


def plan(mode: str) -> Plan:
    """The rows of a mode. Every size another implementation runs at also gets kernel
    rows at every thread count on the default and on the format-1 shop, so each row has
    a kernel on its own model to be compared with; at the target size the kernel also
    runs the feature variants (:data:`benchmarks.impls.SCENARIOS`)."""
    sizes: dict[tuple[int, int], list[str]] = {}

    def add(customers, days, *names):
        sizes.setdefault((customers, days), [])
        sizes[(customers, days)] += [n for n in names if n not in sizes[(customers, days)]]

    if mode == QUICK:
        add(1_000, 30, MESA, PYTHON, MESA_REFERENCE)
        add(10_000, 30, NUMPY, MESA, PYTHON, MESA_REFERENCE)
        add(100_000, 30, NUMPY)
    else:
        add(1_000, 30, MESA, PYTHON, MESA_REFERENCE)
        add(1_000, 365, MESA, PYTHON, MESA_REFERENCE)
        add(10_000, 30, NUMPY, MESA, PYTHON, MESA_REFERENCE)
        add(100_000, 30, NUMPY, MESA, PYTHON, MESA_REFERENCE)
        add(1_000_000, 30, NUMPY)
        add(1_000_000, 90, NUMPY)
        add(1_000_000, 365, NUMPY)
        add(10_000_000, 30, NUMPY)
        add(10_000_000, 365, NUMPY)
        if mode == FULL:
            add(100_000, 365, MESA, PYTHON, MESA_REFERENCE)
            add(1_000_000, 30, PYTHON)
            add(100_000_000, 30, NUMPY)
    quick = mode == QUICK
    target = (100_000, 30) if quick else (10_000_000, 365)
    threads = thread_counts()
    cases = []
    for (n, d), names in sorted(sizes.items()):
        kernel_scenarios = impls.SCENARIOS if (n, d) == target else (DEFAULT, FORMAT1)
        for name in kernel_scenarios:
            cases += [Case(KERNEL, n, d, t, scenario=name) for t in threads]
        cases += [Case(name, n, d, 1, scenario=MODEL_OF[name]) for name in names]
    if mode == FULL:
        cases.append(Case(KERNEL, 100_000_000, 365, threads[-1], fresh_process=True))
    return Plan(
        mode=mode,
        cases=tuple(cases),
        min_time=0.0 if quick else 1.0,
        max_rounds=1 if quick else 5,
        memory_case=Case(KERNEL, 100_000 if quick else 10_000_000, 30, threads[-1], fresh_process=True),
        cold_start_overrides=("--customers", "10000", "--days", "30") if quick else (),
        target_size=target,
    )


# --------------------------------------------------------------------------- measuring


def _reset_peak() -> bool:
    """Release freed heap memory and reset the process's peak RSS to its current RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class OtherCPU:
    """Cores kept busy by *other* processes while a block runs: the machine's busy CPU
    time (``/proc/stat``) minus this process's and its waited-for children's, over the
    wall time. Unlike the load average it does not count the benchmark's own threads.
    The kernel's clock ticks are 10 ms, so it is rough for blocks shorter than ~1 s."""

    cores: float | None = None

    def __enter__(self):
        self._t0, self._busy0, self._own0 = time.perf_counter(), _machine_busy(), _own_cpu()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._t0
        busy = _machine_busy()
        if busy is not None and self._busy0 is not None and wall > 0:
            self.cores = max(0.0, ((busy - self._busy0) - (_own_cpu() - self._own0)) / wall)


def _machine_busy() -> float | None:
    """CPU seconds all cores spent busy since boot (None where there is no /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(case: Case, min_time: float, max_rounds: int) -> dict:
    """Time one case in this process (best of its rounds) and its peak memory (first round)."""
    if case.fresh_process:
        return measure_fresh(case)
    load = _loadavg()[0]
    run = impls.runner(case.implementation, case.scenario)
    sc = impls.scenario(case.scenario, case.customers, case.days)
    walls, peak = [], None
    with OtherCPU() as others:
        while not walls or (sum(walls) < min_time and len(walls) < max_rounds):
            first = not walls
            tracked = first and _reset_peak()
            before = status_bytes("VmRSS") if tracked else None
            t0 = time.perf_counter()
            result = run(sc, case.threads)
            walls.append(time.perf_counter() - t0)
            if tracked and before is not None:
                peak = status_bytes("VmHWM") - before
            del result
    return _row(case, min(walls), len(walls), peak, load, others.cores)


def measure_fresh(case: Case) -> dict:
    """Run a case in a new interpreter: its peak memory is the process's, above the
    baseline of interpreter + imports + warmed-up kernels (see :mod:`benchmarks.isolated`)."""
    load = _loadavg()[0]
    with OtherCPU() as others:
        out = run_fresh(case)
    row = _row(case, out["wall_s"], 1, out["peak_bytes"] - out["baseline_bytes"], load, others.cores)
    row["process_peak_bytes"] = out["peak_bytes"]
    row["process_baseline_bytes"] = out["baseline_bytes"]
    return row


def run_fresh(case: Case) -> dict:
    cmd = [
        sys.executable, "-m", "benchmarks.isolated",
        case.implementation, case.scenario, str(case.customers), str(case.days), str(case.threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=_root(), env=_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(case: Case, wall: float, rounds: int, peak: int | None, load: float, other_cores: float | None) -> dict:
    return {
        "implementation": case.implementation,
        "scenario": case.scenario,
        "customers": case.customers,
        "days": case.days,
        "threads": case.threads,
        "rounds": rounds,
        "wall_s": wall,
        "customer_days_per_s": case.customer_days / wall,
        "peak_bytes_per_customer": None if peak is None else peak / case.customers,
        "ratio_to_kernel": None,
        "fresh_process": case.fresh_process,
        "load_1min": load,
        "other_cores": other_cores,
    }


def add_ratios(rows: list[dict]) -> None:
    """``ratio_to_kernel``: throughput over the kernel's on the same scenario (the same
    model) and size on the most threads; a kernel row in a fresh process is its own."""
    best_threads = max(r["threads"] for r in rows if r["implementation"] == KERNEL)
    ref = {
        (r["scenario"], r["customers"], r["days"]): r["customer_days_per_s"]
        for r in rows
        if r["implementation"] == KERNEL and r["threads"] == best_threads and not r["fresh_process"]
    }
    for r in rows:
        k = ref.get((r["scenario"], r["customers"], r["days"]))
        if r["fresh_process"] and r["implementation"] == KERNEL:
            k = r["customer_days_per_s"]
        r["ratio_to_kernel"] = None if k is None else r["customer_days_per_s"] / k


def _root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_root(), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def cvj_command() -> list[str]:
    """``cvj`` of this interpreter's environment (``python -m cvj`` if the script is missing)."""
    script = Path(sys.executable).parent / "cvj"
    if script.exists():
        return [str(script)]
    found = shutil.which("cvj")
    return [found] if found else [sys.executable, "-m", "cvj"]


def cold_start(overrides: tuple[str, ...]) -> list[dict]:
    """``cvj run`` of the default scenario in a fresh process, first with an empty numba
    cache (NUMBA_CACHE_DIR = a new temporary directory: every kernel compiles), then
    again with the cache that run left behind."""
    cmd = [*cvj_command(), "run", "-q", *overrides]
    rows = []
    with tempfile.TemporaryDirectory(prefix="cvj-numba-cache-") as cache:
        for state in ("cold", "warm"):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(NUMBA_CACHE_DIR=cache), check=False)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            m = re.search(r"([\d,]+) customer-days in ([\d.]+) s", proc.stderr)
            rows.append(
                {
                    "numba_cache": state,
                    "command": " ".join(["cvj", *cmd[len(cvj_command()) :]]),
                    "wall_s": wall,
                    "simulate_s": float(m.group(2)) if m else None,
                    "customer_days": int(m.group(1).replace(",", "")) if m else None,
                }
            )
    return rows


# --------------------------------------------------------------------------- targets


def _find(rows, impl, customers=None, days=None, threads=None, fresh=False, scenario=DEFAULT):
    for r in rows:
        if (
            r["implementation"] == impl
            and r["scenario"] == scenario
            and (customers is None or r["customers"] == customers)
            and (days is None or r["days"] == days)
            and (threads is None or r["threads"] == threads)
            and r["fresh_process"] == fresh
        ):
            return r
    return None


def _largest(rows, impl, days):
    """An implementation's row at its largest population, at ``days`` where it ran them:
    a per-customer implementation's speed per customer-day falls with population."""
    mine = [r for r in rows if r["implementation"] == impl and not r["fresh_process"]]
    return max(mine, key=lambda r: (r["days"] == days, r["customers"], r["days"])) if mine else None


def feature_costs(rows: list[dict], p: Plan) -> list[dict]:
    """The kernel on every scenario of :data:`benchmarks.impls.SCENARIOS` at the target
    size, per thread count: throughput and its ratio to the default (memory and
    counting on), and what each feature costs: the throughput with it off over the
    throughput with it on (the other feature held on, then off)."""
    n, d = p.target_size
    out = []
    for t in sorted({r["threads"] for r in rows if r["implementation"] == KERNEL}):
        got = {name: _find(rows, KERNEL, n, d, t, scenario=name) for name in impls.SCENARIOS}
        if any(r is None for r in got.values()):
            continue
        speed = {name: r["customer_days_per_s"] for name, r in got.items()}
        for name in impls.SCENARIOS:
            memory, counting = impls.FEATURES[name]
            out.append(
                {
                    "kind": "scenario", "threads": t, "name": name, "memory": memory, "counting": counting,
                    "customer_days_per_s": speed[name], "ratio": speed[name] / speed[DEFAULT],
                }
            )
        for feature, on, off in (
            ("memory, with counting", DEFAULT, impls.MEMORYLESS),
            ("memory, without counting", impls.NO_COUNTING, impls.MEMORYLESS_NO_COUNTING),
            ("audience counting, with memory", DEFAULT, impls.NO_COUNTING),
            ("audience counting, without memory", impls.MEMORYLESS, impls.MEMORYLESS_NO_COUNTING),
            ("format 2 default against the format-1 shop", DEFAULT, FORMAT1),
            ("word of mouth on a network against the mean-field default", impls.NETWORK, DEFAULT),
        ):
            out.append({"kind": "feature", "threads": t, "name": feature, "on": on, "off": off, "ratio": speed[off] / speed[on]})
    return out


def day_overhead(p: Plan, rounds: int = 5) -> list[dict]:
    """Wall time per simulated day of the tables built between days (channel reach, the
    day tables, the channels' dashboard figures), which does not depend on the
    population, for the default and the format-1 shop (best of ``rounds`` passes over
    the first days of a small run)."""
    from cvj.engine import Engine, realised_funnel
    from cvj.model import channel_reach, compile_scenario, day_tables

    out = []
    days = 30
    for name in (DEFAULT, FORMAT1):
        cm = compile_scenario(impls.scenario(name, 10_000, days))
        e = Engine(cm)
        states = []
        while not e.done:  # the inputs of each day, as the engine saw them
            states.append((e.day + 1, e.counts.copy(), e.stock.copy(), None if e.cells is None else e.cells.copy()))
            e.step()
        best = {"channel_reach": math.inf, "day_tables": math.inf, "realised_funnel": math.inf}
        for _ in range(rounds):
            spent = dict.fromkeys(best, 0.0)
            for d, counts, stock, cells in states:
                t0 = time.perf_counter()
                reach = channel_reach(cm, counts, stock, cm.budget[d], cells)
                t1 = time.perf_counter()
                tables = day_tables(cm, counts, reach, d)
                t2 = time.perf_counter()
                realised_funnel(cm, reach, tables, 0, e.key, d)
                t3 = time.perf_counter()
                spent["channel_reach"] += t1 - t0
                spent["day_tables"] += t2 - t1
                spent["realised_funnel"] += t3 - t2
            best = {k: min(best[k], spent[k] / len(states)) for k in best}
        out.append({"scenario": name, "table_columns": cm.layout.n_cols, **{f"{k}_s": v for k, v in best.items()}})
    return out


def targets(rows: list[dict], memory: dict, p: Plan) -> list[dict]:
    """Every target of issues 6 and 11 with its measured value (informational: nothing
    asserts speed). Throughput targets are read on the default (format 2, memory on)."""
    top = max(r["threads"] for r in rows if r["implementation"] == KERNEL)
    n, d = p.target_size
    at = f"{n:,} customers x {d} days"
    k2 = _find(rows, KERNEL, n, d, top)
    k1 = _find(rows, KERNEL, n, d, 1)
    npy = _find(rows, NUMPY, n, d)
    mesa = _largest(rows, MESA, d)
    reference = _largest(rows, MESA_REFERENCE, d)
    k2_format1 = _find(rows, KERNEL, n, d, top, scenario=FORMAT1)
    big = _find(rows, KERNEL, 100_000_000, 365, fresh=True)
    out = []

    def target(name, goal, value, unit, ok, how):
        status = "PASS" if ok else "MISS"
        out.append({"target": name, "goal": goal, "measured": value, "unit": unit, "status": status, "how": how})

    def missing(name, goal, why):
        out.append({"target": name, "goal": goal, "measured": None, "unit": "", "status": "NOT RUN", "how": why})

    thr = k2["customer_days_per_s"]
    target(
        f"kernel throughput, {top} threads",
        ">= 500M customer-days/s",
        thr / 1e6,
        "M customer-days/s",
        thr >= 500e6,
        f"kernel row at {at}, default (format 2, memory on)",
    )
    if mesa is not None:
        x = thr / mesa["customer_days_per_s"]
        target(
            "kernel vs Mesa, model with memory",
            ">= 1000x per customer-day",
            x,
            "x",
            x >= 1000,
            f"kernel ({top} threads) at {at} over Mesa (benchmarks/mesa_impl.py) at "
            f"{mesa['customers']:,} x {mesa['days']} days, both on the default",
        )
    else:
        missing("kernel vs Mesa, model with memory", ">= 1000x per customer-day", "no Mesa row")
    if reference is not None and k2_format1 is not None:
        x = k2_format1["customer_days_per_s"] / reference["customer_days_per_s"]
        target(
            "kernel vs pure-Mesa reference, format 1",
            ">= 1000x per customer-day",
            x,
            "x",
            x >= 1000,
            f"kernel ({top} threads) at {at} over sim/reference.py at "
            f"{reference['customers']:,} x {reference['days']} days, both on the format-1 shop",
        )
    else:
        missing("kernel vs pure-Mesa reference, format 1", ">= 1000x per customer-day", "no reference row")
    if npy is not None:
        x = thr / npy["customer_days_per_s"]
        how = f"kernel ({top} threads) over NumPy, both at {at} on the default"
        target("kernel vs NumPy", ">= 4x per customer-day", x, "x", x >= 4, how)
    else:
        missing("kernel vs NumPy", ">= 4x per customer-day", f"no NumPy row at {at}")
    if k1 is not None and top > 1:
        x = thr / k1["customer_days_per_s"]
        target(f"kernel 1 -> {top} threads", ">= 1.8x", x, "x", x >= 1.8, f"kernel rows at {at} on the default")
    else:
        missing("kernel 1 -> 2 threads", ">= 1.8x", "only one thread on this machine")
    b = memory["kernel_state_bytes_per_customer"]
    target("kernel state", "<= 16 bytes per customer", b, "bytes/customer", b <= 16, "nbytes of Engine's per-customer arrays")
    if big is not None:
        target(
            "100M customers x 365 days, wall",
            "< 120 s",
            big["wall_s"],
            "s",
            big["wall_s"] < 120,
            f"kernel, {big['threads']} threads, fresh process, default",
        )
        target(
            "100M customers x 365 days, memory",
            "< 4 GiB",
            big["process_peak_bytes"] / GiB,
            "GiB",
            big["process_peak_bytes"] < 4 * GiB,
            "peak RSS (VmHWM) of the whole process, interpreter and imports included",
        )
    else:
        for what, goal in (("wall", "< 120 s"), ("memory", "< 4 GiB")):
            missing(f"100M customers x 365 days, {what}", goal, "run with --full")
    return out


# --------------------------------------------------------------------------- output


def _si(x: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:,.3g}{suffix}"
    return f"{x:,.3g}"


def _ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.2f}" if r >= 0.1 else f"1/{1 / r:,.0f}"


def _md(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A Markdown table; the first ``left`` columns are text (left-aligned), the rest numbers."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(report: dict) -> str:
    m = report["meta"]
    rows = report["rows"]
    parts = [
        f"Benchmarks ({m['mode']}): `{m['command']}`",
        (
            f"{m['cpu']}, {m['cores']} cores, numba {m['numba']} ({m['threading_layer']} threads), numpy {m['numpy']}, "
            f"mesa {m['mesa']}, Python {m['python']}; load average (1 min) {m['load_before'][0]:.2f} before, "
            f"{m['load_after'][0]:.2f} after (both count this benchmark's own threads); other processes kept "
            f"{m['other_cores'] or 0:.2f} cores busy on average while the rows ran; {m['duration_s']:.0f} s in all."
        ),
        "",
        _md(
            [
                "implementation", "scenario", "customers", "days", "threads", "rounds", "wall s", "customer-days/s",
                "peak bytes/customer", "x kernel", "others",
            ],
            [
                [
                    r["implementation"] + (" (fresh process)" if r["fresh_process"] else ""),
                    r["scenario"],
                    f"{r['customers']:,}",
                    str(r["days"]),
                    str(r["threads"]),
                    str(r["rounds"]),
                    f"{r['wall_s']:.3f}",
                    _si(r["customer_days_per_s"]),
                    "-" if r["peak_bytes_per_customer"] is None else f"{r['peak_bytes_per_customer']:,.1f}",
                    _ratio(r["ratio_to_kernel"]),
                    "-" if r["other_cores"] is None else f"{r['other_cores']:.2f}",
                ]
                for r in rows
            ],
            left=2,
        ),
        "",
        (
            "x kernel: customer-days/s over the kernel's on the same scenario (the same model) and size on "
            "the most threads; others: cores kept busy by other processes during the row (machine's busy CPU "
            "time from /proc/stat minus this benchmark's, over wall time; rough below ~1 s). Scenarios: "
            + "; ".join(f"{k}: {v}" for k, v in SCENARIO_NOTES.items())
            + "."
        ),
        "",
    ]
    costs = report["feature_costs"]
    if costs:
        n, d = report["meta"]["target_size"]
        parts += [
            _md(
                ["kernel scenario", "memory", "audience counting", "threads", "customer-days/s", "x default"],
                [
                    [c["name"], "on" if c["memory"] else "off", "on" if c["counting"] else "off", str(c["threads"]),
                     _si(c["customer_days_per_s"]), f"{c['ratio']:.2f}"]
                    for c in costs if c["kind"] == "scenario"
                ],
                left=3,
            ),
            "",
            _md(
                ["feature", "threads", "customer-days/s off / on", "measured as"],
                [
                    [c["name"], str(c["threads"]), f"{c['ratio']:.2f}", f"{c['off']} over {c['on']}"]
                    for c in costs if c["kind"] == "feature"
                ],
            ),
            "",
            (
                f"Feature costs: the kernel rows at {n:,} customers x {d} days above; a ratio of 1.5 means the kernel "
                "runs 1.5x as many customer-days a second with the feature off. The variants are not the same "
                "journeys (without memory the rates are year averages; without counting the audiences stay as "
                "counted at the start), so a ratio also holds what changes in how many customers move."
            ),
            "",
        ]
    overhead = report["day_overhead"]
    parts += [
        _md(
            ["per-day tables", "table columns", "channel_reach ms", "day_tables ms", "realised_funnel ms", "ms per day"],
            [
                [o["scenario"], str(o["table_columns"]), f"{o['channel_reach_s'] * 1e3:.2f}", f"{o['day_tables_s'] * 1e3:.2f}",
                 f"{o['realised_funnel_s'] * 1e3:.2f}",
                 f"{(o['channel_reach_s'] + o['day_tables_s'] + o['realised_funnel_s']) * 1e3:.2f}"]
                for o in overhead
            ],
        ),
        "",
        (
            "Per-day tables: the work between two kernel calls that does not depend on the population (one "
            "thread, best of 5 passes over the days of a 10,000-customer, 30-day run)"
            + (
                f"; on the default at the target size that is {report['day_overhead_share']:.0%} of the kernel "
                "row's wall time on the most threads."
                if report.get("day_overhead_share") is not None else "."
            )
        ),
        "",
    ]
    mem = report["memory"]
    pm = mem["process"]
    parts += [
        _md(
            ["memory", "value"],
            [
                ["kernel state (Engine arrays' nbytes)", f"{mem['kernel_state_bytes_per_customer']:.2f} bytes/customer"],
                ["kernel state with the customers table", f"{mem['kernel_state_bytes_per_customer_tracked']:.2f} bytes/customer"],
                ["NumPy version's state (its arrays' nbytes)", f"{mem['numpy_state_bytes_per_customer']:.1f} bytes/customer"],
                [
                    f"peak RSS, {pm['customers']:,} customers x {pm['days']} days, fresh process",
                    f"{pm['peak_bytes'] / 2**20:,.0f} MiB",
                ],
                ["  of which interpreter + imports + warm-up (baseline)", f"{pm['baseline_bytes'] / 2**20:,.0f} MiB"],
                [
                    "  above the baseline",
                    f"{pm['above_baseline_bytes'] / 2**20:,.0f} MiB = "
                    f"{pm['above_baseline_bytes_per_customer']:.1f} bytes/customer",
                ],
            ],
        ),
        "",
        _md(
            ["cold start", "numba cache", "process wall s", "simulate s (as cvj reports it)"],
            [
                [
                    f"`{c['command']}`", c["numba_cache"], f"{c['wall_s']:.2f}",
                    "-" if c["simulate_s"] is None else f"{c['simulate_s']:.2f}",
                ]
                for c in report["cold_start"]
            ],
            left=2,
        ),
        "",
        _md(
            ["target", "goal", "measured", "status", "how"],
            [
                [
                    t["target"],
                    t["goal"],
                    "-" if t["measured"] is None else f"{t['measured']:,.4g} {t['unit']}",
                    t["status"],
                    t["how"],
                ]
                for t in report["targets"]
            ],
            left=2,
        ),
    ]
    return "\n".join(parts)


def write(report: dict, out: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    cols = [
        "implementation",
        "scenario",
        "customers",
        "days",
        "threads",
        "rounds",
        "wall_s",
        "customer_days_per_s",
        "peak_bytes_per_customer",
        "ratio_to_kernel",
        "fresh_process",
        "load_1min",
        "other_cores",
    ]
    schema = pa.schema(
        [
            ("implementation", pa.string()),
            ("scenario", pa.string()),
            ("customers", pa.int64()),
            ("days", pa.int32()),
            ("threads", pa.int16()),
            ("rounds", pa.int16()),
            ("wall_s", pa.float64()),
            ("customer_days_per_s", pa.float64()),
            ("peak_bytes_per_customer", pa.float64()),
            ("ratio_to_kernel", pa.float64()),
            ("fresh_process", pa.bool_()),
            ("load_1min", pa.float64()),
            ("other_cores", pa.float64()),
        ],
        metadata={"cvj.benchmarks": json.dumps({k: v for k, v in report.items() if k != "rows"})},
    )
    table = pa.Table.from_pylist([{c: r[c] for c in cols} for r in report["rows"]], schema=schema)
    written = [out / "benchmarks.parquet", out / "benchmarks.json", out / "benchmarks.md"]
    pq.write_table(table, written[0])
    written[1].write_text(json.dumps(report, indent=2) + "\n")
    written[2].write_text(render(report) + "\n")
    png = plot(report, out / "throughput.png")
    if png is not None:
        written.append(png)
    return written


def plot(report: dict, path: Path) -> Path | None:
    """Throughput against customers at the shortest horizon (left) and against days at
    the largest population run at several horizons (right), one line per
    implementation, scenario (the default solid, the format-1 shop dashed; the feature
    variants, run at one size, are left out) and thread count, log axes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[test]')", file=sys.stderr)
        return None
    rows = [r for r in report["rows"] if not r["fresh_process"] and r["scenario"] in (DEFAULT, FORMAT1)]
    series = [
        (n, sc, t)
        for sc in (DEFAULT, FORMAT1)
        for n in impls.NAMES
        for t in sorted({r["threads"] for r in rows if r["implementation"] == n and r["scenario"] == sc})
    ]
    colour = {s: f"C{i}" for i, s in enumerate(series)}
    short = min(r["days"] for r in rows)
    horizons = {}
    for r in rows:
        horizons.setdefault(r["customers"], set()).add(r["days"])
    # the population run at the most horizons (the largest one on a tie)
    n_days = max(horizons, key=lambda n: (len(horizons[n]), n))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=110, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    for (name, sc, t) in series:
        label = name + (", format 1" if sc == FORMAT1 and name == KERNEL else "")
        label += f", {t} thread{'s' if t > 1 else ''}" if name in impls.THREADED else ""
        style = dict(marker="o", color=colour[(name, sc, t)], label=label, linestyle="--" if sc == FORMAT1 else "-")
        mine = [r for r in rows if r["implementation"] == name and r["threads"] == t and r["scenario"] == sc]
        pts = sorted((r["customers"], r["customer_days_per_s"]) for r in mine if r["days"] == short)
        if pts:
            axes[0].plot(*zip(*pts), **style)
        pts = sorted((r["days"], r["customer_days_per_s"]) for r in mine if r["customers"] == n_days)
        if len(pts) > 1:
            axes[1].plot(*zip(*pts), **style)
    m = report["meta"]
    axes[0].set_title(f"{short} days", fontsize=10)
    axes[0].set_xlabel("customers")
    axes[1].set_title(f"{n_days:,} customers", fontsize=10)
    axes[1].set_xlabel("days")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("customer-days per second")
    days = sorted(horizons[n_days])
    axes[1].set_xticks(days, [str(d) for d in days])
    axes[1].minorticks_off()
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"cvj, default scenario (format 2) and format-1 shop: {m['cores']}-core {m['cpu']}, "
        f"load average {m['load_before'][0]:.2f} at the start "
        f"({m['mode']}, {m['started_utc']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg() -> list[float]:
    try:
        return list(os.getloadavg())
    except OSError:
        return [math.nan] * 3


def main(mode: str, out: Path, command: str) -> dict:
    import mesa
    import numba
    import numpy

    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = _loadavg()
    p = plan(mode)
    print(f"benchmarks ({mode}): {len(p.cases)} rows; load average {load_before[0]:.2f}", file=sys.stderr)
    impls.warm_up(thread_counts())
    rows = []
    with OtherCPU() as others:
        for case in p.cases:
            row = measure(case, p.min_time, p.max_rounds)
            rows.append(row)
            print(
                f"  {case.implementation:14s} {case.scenario:22s} {case.customers:>11,} x {case.days:>3} days, "
                f"{case.threads} thr: "
                f"{row['wall_s']:8.3f} s  {_si(row['customer_days_per_s'])} customer-days/s  "
                f"(load {row['load_1min']:.2f}, others {row['other_cores'] or 0:.2f} cores)",
                file=sys.stderr,
            )
    add_ratios(rows)
    pm = measure_fresh(p.memory_case)
    memory = {
        "kernel_state_bytes_per_customer": impls.kernel_state_bytes(),
        "kernel_state_bytes_per_customer_tracked": impls.kernel_state_bytes(track_customers=True),
        "numpy_state_bytes_per_customer": impls.numpy_state_bytes(),
        "process": {
            "customers": p.memory_case.customers,
            "days": p.memory_case.days,
            "threads": p.memory_case.threads,
            "peak_bytes": pm["process_peak_bytes"],
            "baseline_bytes": pm["process_baseline_bytes"],
            "above_baseline_bytes": pm["process_peak_bytes"] - pm["process_baseline_bytes"],
            "above_baseline_bytes_per_customer": pm["peak_bytes_per_customer"],
            "note": (
                "VmHWM of a fresh process; baseline = VmHWM after interpreter start, imports and a 2,000-customer "
                "warm-up run"
            ),
        },
    }
    print("  per-day tables ...", file=sys.stderr)
    overhead = day_overhead(p)
    n, d = p.target_size
    k2 = _find(rows, KERNEL, n, d, thread_counts()[-1])
    per_day = next(o for o in overhead if o["scenario"] == DEFAULT)
    share = d * (per_day["channel_reach_s"] + per_day["day_tables_s"] + per_day["realised_funnel_s"]) / k2["wall_s"]
    print("  cold start ...", file=sys.stderr)
    cold = cold_start(p.cold_start_overrides)
    from cvj import kernels  # noqa: F401  (loaded by the warm-up)

    report = {
        "meta": {
            "mode": mode,
            "command": command,
            "started_utc": started,
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "max_threads": numba.config.NUMBA_NUM_THREADS,
            "threading_layer": _threading_layer(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "numba": numba.__version__,
            "mesa": mesa.__version__,
            "load_before": load_before,
            "load_after": _loadavg(),
            "other_cores": others.cores,
            "duration_s": time.perf_counter() - t_start,
            "timing": "wall seconds from the validated scenario to the last day, best of `rounds`, numba cache warm",
            "scenarios": SCENARIO_NOTES,
            "target_size": list(p.target_size),
        },
        "rows": rows,
        "feature_costs": feature_costs(rows, p),
        "day_overhead": overhead,
        "day_overhead_share": share,
        "memory": memory,
        "cold_start": cold,
    }
    report["targets"] = targets(rows, memory, p)
    return report


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return "unknown"


__all__ = ["Case", "Plan", "main", "measure", "plan", "render", "targets", "write"]

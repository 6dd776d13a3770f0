"""CI runs the benchmark suite's quick mode so it never rots. Nothing here is about speed:
only that the command runs and writes well-formed outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .stat_checks import NO_JIT

pytestmark = pytest.mark.skipif(NO_JIT, reason="benchmarks time the compiled kernel; NUMBA_DISABLE_JIT is set")

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = [
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


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


@pytest.mark.slow
def test_quick_writes_a_well_formed_table(quick):
    out, stdout = quick
    table = pq.read_table(out / "benchmarks.parquet")
    assert table.column_names == COLUMNS
    rows = table.to_pylist()
    names = {r["implementation"] for r in rows}
    assert names == {"kernel", "numpy", "python", "mesa", "mesa-reference"}
    # every implementation runs its model: the format-2 default, the reference the format-1 shop
    for r in rows:
        if r["implementation"] in ("numpy", "python", "mesa"):
            assert r["scenario"] == "default"
        if r["implementation"] == "mesa-reference":
            assert r["scenario"] == "format1"
    for r in rows:
        assert r["customers"] > 0 and r["days"] > 0 and r["threads"] >= 1 and r["rounds"] >= 1
        assert r["wall_s"] > 0
        assert r["customer_days_per_s"] == pytest.approx(r["customers"] * r["days"] / r["wall_s"])
        assert r["ratio_to_kernel"] is not None and r["ratio_to_kernel"] > 0
    # every (scenario, size) has a kernel row on the most threads, whose ratio is 1, and
    # the others' ratio is their throughput over it
    top = max(r["threads"] for r in rows if r["implementation"] == "kernel")
    def key(r):
        return r["scenario"], r["customers"], r["days"]

    for k in {key(r) for r in rows}:
        (ref,) = [r for r in rows if r["implementation"] == "kernel" and r["threads"] == top and key(r) == k]
        assert ref["ratio_to_kernel"] == pytest.approx(1.0)
        for r in rows:
            if key(r) == k:
                assert r["ratio_to_kernel"] == pytest.approx(r["customer_days_per_s"] / ref["customer_days_per_s"])
    # the printed table is the written one
    assert "| implementation | scenario | customers |" in stdout
    assert (out / "benchmarks.md").read_text().strip() in stdout


@pytest.mark.slow
def test_quick_reports_memory_cold_start_and_every_target(quick):
    out, _ = quick
    report = json.loads((out / "benchmarks.json").read_text())
    assert report["meta"]["mode"] == "quick"
    # the kernel's 15 bytes: stage, slot, orders, acquired, converted (1 each), row,
    # clock, last order (2 each), revenue (4), and its bitmap of who is past unaware
    # (one bit, in 64-bit words: 1,563 of them for 100,000 customers); the NumPy
    # version keeps the same state without the bitmap (it does not thin the unaware)
    assert report["memory"]["kernel_state_bytes_per_customer"] == 15 + 1563 * 8 / 100_000
    assert report["memory"]["numpy_state_bytes_per_customer"] == 15.0
    proc = report["memory"]["process"]
    assert proc["peak_bytes"] >= proc["baseline_bytes"] > 0
    assert [c["numba_cache"] for c in report["cold_start"]] == ["cold", "warm"]
    assert all(c["wall_s"] > 0 and c["simulate_s"] > 0 for c in report["cold_start"])
    targets = report["targets"]
    assert len(targets) == 8
    assert {t["status"] for t in targets} <= {"PASS", "MISS", "NOT RUN"}
    for t in targets:
        assert (t["measured"] is None) == (t["status"] == "NOT RUN")
    # the Parquet file carries the same report in its metadata
    meta = json.loads(pq.read_schema(out / "benchmarks.parquet").metadata[b"cvj.benchmarks"])
    assert meta["targets"] == targets


@pytest.mark.slow
def test_quick_reports_the_cost_of_each_feature(quick):
    """The kernel runs every feature variant at the target size on every thread count,
    and each feature's cost is the ratio of two rows of the same run."""
    out, _ = quick
    report = json.loads((out / "benchmarks.json").read_text())
    rows = pq.read_table(out / "benchmarks.parquet").to_pylist()
    n, d = report["meta"]["target_size"]
    speed = {
        (r["scenario"], r["threads"]): r["customer_days_per_s"]
        for r in rows
        if r["implementation"] == "kernel" and (r["customers"], r["days"]) == (n, d) and not r["fresh_process"]
    }
    scenarios = {"default", "no-counting", "memoryless", "memoryless-no-counting", "format1", "network"}
    threads = {t for _, t in speed}
    assert set(speed) == {(s, t) for s in scenarios for t in threads}
    costs = report["feature_costs"]
    features = [c for c in costs if c["kind"] == "feature"]
    assert len(features) == 6 * len(threads)
    for c in features:
        assert c["ratio"] == pytest.approx(speed[(c["off"], c["threads"])] / speed[(c["on"], c["threads"])])
    for c in costs:
        if c["kind"] == "scenario":
            assert c["ratio"] == pytest.approx(speed[(c["name"], c["threads"])] / speed[("default", c["threads"])])
    # the per-day tables, measured for the default and the format-1 shop
    assert [o["scenario"] for o in report["day_overhead"]] == ["default", "format1"]
    assert all(o["day_tables_s"] > 0 for o in report["day_overhead"])


@pytest.mark.slow
def test_quick_draws_the_plot(quick):
    pytest.importorskip("matplotlib")
    out, _ = quick
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

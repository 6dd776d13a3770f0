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
    assert {"kernel", "numpy", "python"} <= names
    for r in rows:
        assert r["customers"] > 0 and r["days"] > 0 and r["threads"] >= 1 and r["rounds"] >= 1
        assert r["wall_s"] > 0
        assert r["customer_days_per_s"] == pytest.approx(r["customers"] * r["days"] / r["wall_s"])
        assert r["ratio_to_kernel"] is not None and r["ratio_to_kernel"] > 0
    # every size has a kernel row on the most threads, whose ratio is 1
    top = max(r["threads"] for r in rows if r["implementation"] == "kernel")
    for size in {(r["customers"], r["days"]) for r in rows}:
        (ref,) = [r for r in rows if r["implementation"] == "kernel" and r["threads"] == top and (r["customers"], r["days"]) == size]
        assert ref["ratio_to_kernel"] == pytest.approx(1.0)
    # the printed table is the written one
    assert "| implementation | customers |" in stdout
    assert (out / "benchmarks.md").read_text().strip() in stdout


@pytest.mark.slow
def test_quick_reports_memory_cold_start_and_every_target(quick):
    out, _ = quick
    report = json.loads((out / "benchmarks.json").read_text())
    assert report["meta"]["mode"] == "quick"
    assert report["memory"]["kernel_state_bytes_per_customer"] == 8.0
    proc = report["memory"]["process"]
    assert proc["peak_bytes"] >= proc["baseline_bytes"] > 0
    assert [c["numba_cache"] for c in report["cold_start"]] == ["cold", "warm"]
    assert all(c["wall_s"] > 0 and c["simulate_s"] > 0 for c in report["cold_start"])
    targets = report["targets"]
    assert len(targets) == 7
    assert {t["status"] for t in targets} <= {"PASS", "MISS", "NOT RUN"}
    for t in targets:
        assert (t["measured"] is None) == (t["status"] == "NOT RUN")
    # the Parquet file carries the same report in its metadata
    meta = json.loads(pq.read_schema(out / "benchmarks.parquet").metadata[b"cvj.benchmarks"])
    assert meta["targets"] == targets


@pytest.mark.slow
def test_quick_draws_the_plot(quick):
    pytest.importorskip("matplotlib")
    out, _ = quick
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

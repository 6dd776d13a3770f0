"""Reproducibility as a contract: the same scenario and seed give identical Arrow tables
on any number of threads, in any process, with or without a numba cache; other seeds
give other tables; replication r does not depend on which other replications run.

The population (100,000) spans four of the kernel's 32,768-customer chunks, so two
threads really do split the customers between them; every table is compared,
including the one-row-per-customer table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import cvj
from cvj import kernels
from tests.stat_checks import NO_JIT

CUSTOMERS = 40_000 if NO_JIT else 100_000
DAYS = 8 if NO_JIT else 30
# the format-2 default (per-customer memory, audiences, funnel channels), started with
# some buyers so that repeat orders (and their gaps) happen within the horizon
OVERRIDES = {
    "market.customers": CUSTOMERS,
    "market.days": DAYS,
    "market.initial_stages": {"unaware": 0.85, "aware": 0.04, "engaged": 0.03, "subscribed": 0.03, "ascended": 0.05},
}
REPLICATIONS = [0, 3]
ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
import pyarrow as pa
import cvj
overrides, threads, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sc = cvj.load_scenario(overrides=overrides)
res = cvj.run(sc, replications=json.loads(sys.argv[4]), threads=threads, customers_table=True)
for name, table in res.tables.items():
    with pa.OSFile(f"{out}/{name}.arrow", "wb") as fh:
        with pa.ipc.new_file(fh, table.schema) as writer:
            writer.write_table(table)
"""


def _run(threads=None, overrides=OVERRIDES, replications=REPLICATIONS):
    sc = cvj.load_scenario(overrides=overrides)
    return cvj.run(sc, replications=replications, threads=threads, customers_table=True)


@pytest.fixture(scope="module")
def one_thread():
    return _run(threads=1)


def assert_same_tables(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for name, table in a.items():
        assert table.num_rows > 0, name
        assert table.equals(b[name]), f"table {name} differs"


def _in_subprocess(tmp: Path, env_extra: dict, threads: int) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(OVERRIDES), str(threads), str(tmp), json.dumps(REPLICATIONS)],
        check=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    out = {}
    for path in sorted(tmp.glob("*.arrow")):
        with pa.OSFile(str(path), "rb") as fh:
            out[path.stem] = pa.ipc.open_file(fh).read_all()
    return out


@pytest.mark.skipif(kernels.max_threads() < 2, reason="needs two cores")
def test_one_and_two_threads_give_identical_tables(one_thread):
    assert_same_tables(one_thread.tables, _run(threads=2).tables)


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="with NUMBA_DISABLE_JIT there is no compiled code to cache")
def test_other_processes_and_a_rebuilt_numba_cache_give_identical_tables(one_thread, tmp_path):
    """Three more processes: one compiling into an empty numba cache directory, one
    loading the kernels from that rebuilt cache, one with the cache switched off
    (CVJ_NUMBA_CACHE=0, see kernels/jit.py)."""
    cache = tmp_path / "numba_cache"
    threads = min(2, kernels.max_threads())
    fresh = _in_subprocess(tmp_path / "fresh", {"NUMBA_CACHE_DIR": str(cache)}, threads)
    assert any(cache.rglob("*.nbi")), "the subprocess did not rebuild the numba cache"
    assert_same_tables(one_thread.tables, fresh)
    cached = _in_subprocess(tmp_path / "cached", {"NUMBA_CACHE_DIR": str(cache)}, 1)
    assert_same_tables(one_thread.tables, cached)
    uncached = _in_subprocess(tmp_path / "uncached", {"CVJ_NUMBA_CACHE": "0"}, threads)
    assert_same_tables(one_thread.tables, uncached)


def test_other_seeds_give_other_tables(one_thread):
    other = _run(threads=1, overrides=dict(OVERRIDES, **{"market.seed": 2027}))
    for name in ("daily_stages", "transitions", "customers"):
        assert not one_thread.tables[name].equals(other.tables[name]), name
    # and the seed is the only difference: the same seed again is identical
    assert_same_tables(one_thread.tables, _run(threads=1).tables)


def test_replication_r_alone_equals_replication_r_in_a_batch(one_thread):
    for r in REPLICATIONS:
        alone = _run(threads=1, replications=[r])
        assert alone.replications == (r,)
        assert_same_tables(one_thread.parts[r], alone.parts[r])
    # the order in which replications are asked for does not matter either
    reordered = _run(threads=1, replications=list(reversed(REPLICATIONS)))
    for r in REPLICATIONS:
        assert_same_tables(one_thread.parts[r], reordered.parts[r])
    # and different replications are different runs
    a, b = (one_thread.parts[r]["daily_stages"] for r in REPLICATIONS)
    assert not a.drop_columns(["replication"]).equals(b.drop_columns(["replication"]))

"""Runs end to end through the Python API: conservation, thread-count independence,
metadata, and atomic output."""

import importlib
import json

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import cvj
from cvj import output
from cvj.stages import LAPSED, STAGES

SMALL = {"market.customers": 20_000, "market.days": 60}


@pytest.fixture(scope="module")
def small():
    return cvj.load_scenario(None, SMALL)


@pytest.fixture(scope="module")
def result(small):
    return cvj.run(small, replications=2, customers_table=True)


def test_tables_and_columns(result):
    t = result.tables
    assert set(t) == {"daily_stages", "transitions", "finance", "channels", "orders", "summary", "customers"}
    assert t["daily_stages"].column_names == [
        "replication", "day", "segment", "age_band", "stage", "aida_phase", "adl_phase", "customers",
    ]
    assert t["transitions"].column_names[-4:] == ["from_stage", "to_stage", "cause", "customers"]
    assert {"day", "item", "kind", "spend", "revenue", "cost", "units"} <= set(t["finance"].column_names)
    assert t["summary"].num_rows == 2
    # names, not codes, dictionary-encoded
    stage = t["daily_stages"].column("stage")
    assert str(stage.type).startswith("dictionary") and set(stage.combine_chunks().dictionary.to_pylist()) == set(STAGES)


def test_customers_per_day_constant(result, small):
    d = result.tables["daily_stages"]
    per_day = d.group_by(["replication", "day"]).aggregate([("customers", "sum")])
    assert set(per_day.column("customers_sum").to_pylist()) == {small.market.customers}


def test_flows_balance_stage_counts(small):
    e = cvj.Engine(cvj.compile_scenario(small))
    while not e.done:
        e.step()
    h = e.history
    # counts derived from flows equal a direct recount of the state
    np.testing.assert_array_equal(h.stages[-1], e._count_stages())
    for d in range(1, small.market.days + 1):
        out_of = h.flows[d].sum(axis=-1)  # [G, 10] moves out of each stage
        into = np.zeros_like(out_of)
        into[:, 1:9] += h.flows[d][:, :8, :-1].sum(axis=-1)
        into[:, 1] += h.flows[d][:, LAPSED, :-1].sum(axis=-1)
        into[:, LAPSED] += h.flows[d][:, :, -1].sum(axis=-1)
        np.testing.assert_array_equal(h.stages[d] - h.stages[d - 1], into - out_of)


def test_money_adds_up(result):
    f = result.tables["finance"]
    s = result.tables["summary"].to_pylist()
    for r, row in enumerate(s):
        fr = f.filter(pc.equal(f["replication"], r))
        spend = pc.sum(fr["spend"]).as_py()
        revenue = pc.sum(fr["revenue"]).as_py()
        cost = pc.sum(fr["cost"]).as_py()
        assert row["spend"] == pytest.approx(spend, rel=1e-12)
        assert row["revenue"] == pytest.approx(revenue, rel=1e-12)
        assert row["profit"] == pytest.approx(revenue - cost - spend, rel=1e-12)
        assert row["front_end_profit"] + row["back_end_profit"] == pytest.approx(row["profit"], rel=1e-12)
        # per-customer revenue (float32 per customer) agrees with the offer totals
        c = result.tables["customers"].filter(pc.equal(result.tables["customers"]["replication"], r))
        assert pc.sum(c["revenue"]).as_py() == pytest.approx(revenue, rel=1e-6)
    assert not any(v != v for row in s for v in row.values() if isinstance(v, float))  # no NaN


def test_same_tables_on_one_and_two_threads(small):
    one = cvj.run(small, threads=1, customers_table=True)
    two = cvj.run(small, threads=2, customers_table=True)
    for name in one.tables:
        assert one.tables[name].equals(two.tables[name]), name


def test_replication_r_alone_equals_replication_r_in_a_batch(small, result):
    alone = cvj.run(small, replications=[1], customers_table=True)
    for name, table in alone.tables.items():
        assert table.equals(result.parts[1][name]), name


def test_different_seeds_differ(small):
    a = cvj.run(small)
    b = cvj.run(small.model_copy(update={"market": small.market.model_copy(update={"seed": 7})}))
    assert not a.tables["daily_stages"].equals(b.tables["daily_stages"])


def test_write_is_readable_as_datasets_with_metadata(result, tmp_path, small):
    out = result.write(tmp_path / "out")
    for name in result.tables:
        t = ds.dataset(out / name, format="parquet").to_table()
        assert t.num_rows == result.tables[name].num_rows
    meta = output.read_metadata(next((out / "summary").glob("*.parquet")))
    assert meta["cvj.scenario_sha256"] == small.sha256()
    assert json.loads(meta["cvj.scenario"])["market"]["customers"] == small.market.customers
    assert meta["cvj.seed"] == str(small.market.seed) and meta["cvj.version"] == cvj.__version__
    assert json.loads((out / "_cvj.json").read_text())["complete"] is True
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"select count(*) from read_parquet('{out}/daily_stages/**/*.parquet')").fetchall()[0][0]
    assert n == result.tables["daily_stages"].num_rows


def test_existing_output_is_not_overwritten_without_force(result, tmp_path):
    out = tmp_path / "out"
    result.write(out)
    with pytest.raises(cvj.OutputError, match="already exists"):
        result.write(out)
    result.write(out, force=True)
    assert (out / "summary").is_dir()


def test_a_failed_write_leaves_nothing(result, tmp_path, monkeypatch):
    calls = []

    def failing(table, path, metadata):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)

    monkeypatch.setattr(importlib.import_module("cvj.run"), "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        result.write(tmp_path / "out")
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # neither DIR nor the temporary directory


def test_unwritable_output_is_refused_before_running(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(cvj.OutputError, match="cannot create the output directory"):
        output.AtomicDir(blocker / "out")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not _can_write(ro):  # root ignores permission bits
            with pytest.raises(cvj.OutputError, match="not writable"):
                output.AtomicDir(ro / "out")
    finally:
        ro.chmod(0o700)


def _can_write(d):
    try:
        (d / "probe").write_text("x")
        (d / "probe").unlink()
        return True
    except OSError:
        return False

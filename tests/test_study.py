"""Studies: loading and validation, common random numbers, the output layout, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import cvj
import cvj.study
import cvj.study.output
import cvj.study.runner
from cvj.cli import main
from cvj.output import read_metadata
from cvj.study import compare, load_study, run_task, study_from_json
from tests.conftest import DEFAULT_SCENARIO as DEFAULT
from tests.conftest import ROOT

INVALID = Path(__file__).resolve().parent / "invalid_studies"

SMALL_STUDY = f"""
format = 1
name = "small"
scenario = "{DEFAULT}"
replications = 3
days = 40
customers = 4000
baseline = "mid"
kpis = ["profit", "conversions", "cac"]

[marketer]
policy = "fixed"

[variants.free]
overrides = {{ "offers.entry.price" = 0.0 }}

[variants.mid]

[variants.dear]
overrides = {{ offers.entry.price = 27.0, "channels.paid_social.daily_budget" = 500.0 }}
marketer = {{ policy = "shift", review_days = 5, channels = ["paid_social", "search_ads"] }}
"""


@pytest.fixture
def small_study(tmp_path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL_STUDY)
    return p


# --------------------------------------------------------------------------- loading


def test_load_study_resolves_variants(small_study):
    st = load_study(small_study)
    assert st.variant_names == ("free", "mid", "dear")
    base = cvj.load_scenario(DEFAULT)
    dear = st.variants["dear"].scenario
    assert dear.offers.entry.price == 27.0 and dear.channels["paid_social"].daily_budget == 500.0
    assert st.variants["mid"].scenario.offers.entry.price == base.offers.entry.price
    assert all(v.scenario.market.customers == 4000 and v.scenario.market.days == 40 for v in st.variants.values())
    # the file's order of segments and channels is kept (it changes which customer is which)
    assert dear.segment_names == base.segment_names and dear.channel_names == base.channel_names
    assert st.variants["dear"].marketer.policy == "shift" and st.variants["dear"].marketer.review_days == 5
    assert st.variants["mid"].marketer.policy == "fixed"
    assert study_from_json(st.to_json()) == st.__class__(**{**st.__dict__, "source": "<json>"})


def test_shipped_studies_load():
    for name in ("compare_entry_offers.toml", "compare_budgets.toml"):
        st = load_study(ROOT / "scenarios" / name)
        assert st.baseline in st.variants and st.replications >= 10


CASES = {
    "unknown_base.toml": ("scenario", "no such scenario file"),
    "unknown_override_field.toml": ("variants.cheap.overrides.offers.entry.prise", "no such field"),
    "unknown_common_override.toml": ("overrides.channels.tiktok.daily_budget", "no such field"),
    "wrong_type.toml": ("variants.cheap.overrides.offers.entry.price", "valid number"),
    "zero_replications.toml": ("replications = 0", "greater than or equal to 1"),
    "unknown_key.toml": ("replicatons", "unknown key"),
    "unknown_variant_key.toml": ("variants.cheap.overides", "unknown key"),
    "unknown_baseline.toml": ("baseline", "not one of the variants"),
    "unknown_kpi.toml": ("kpis.1", "unknown KPI"),
    "bad_policy.toml": ("variants.cheap.marketer.policy", "'fixed' or 'shift'"),
    "unknown_marketer_channel.toml": ("marketer.channel_caps.tiktok", "not a channel with a budget"),
    "missing_format.toml": ("format", "required key is missing"),
    "wrong_format.toml": ("format = 2", "unsupported study format"),
    "invalid_variant_scenario.toml": ("variants.cheap.overrides.market.customers = 0", "greater than 0"),
    "variant_name_newline.toml": ('variants.free\\n = "free\\n"', "a name cannot hold U+000A"),
    "variant_name_too_long.toml": ("variants." + "v" * 300, "a name has at most 64 characters, this one has 300"),
    "variant_name_path.toml": ('variants.../../x = "../../x"', "a name cannot hold U+002F SOLIDUS"),
    "study_name_control.toml": ('name = "s\\u001b[2J"', "cannot hold U+001B"),
}


def test_every_invalid_study_has_a_case():
    assert sorted(p.name for p in INVALID.glob("*.toml") if p.name != "base.toml") == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_invalid_study_is_a_clear_error(name):
    where, what = CASES[name]
    with pytest.raises(cvj.ScenarioError) as info:
        load_study(INVALID / name)
    text = str(info.value)
    assert str(INVALID / name) in text or (name == "unknown_base.toml" and "unknown_base.toml" in text)
    assert where in text and what in text, text
    assert "\n" not in text


@pytest.mark.parametrize(
    "name", ["unknown_base.toml", "unknown_override_field.toml", "wrong_type.toml", "zero_replications.toml"]
)
def test_invalid_study_through_the_cli(name, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compare", str(INVALID / name), "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output and CASES[name][0] in lines[0]
    assert not out.exists()


def test_no_such_study_file(tmp_path):
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "no such file" in res.output


# --------------------------------------------------------------------------- runs


def test_variant_replication_equals_a_standalone_run(small_study):
    st = load_study(small_study)
    written = {  # the same scenarios, overridden the way `cvj run` does it
        "free": {"market.customers": 4000, "market.days": 40, "offers.entry.price": 0.0},
        "mid": {"market.customers": 4000, "market.days": 40},
    }
    for variant, r in (("free", 2), ("mid", 0)):
        sc = cvj.load_scenario(DEFAULT, written[variant])
        assert st.variants[variant].scenario.sha256() == sc.sha256()
        standalone = cvj.run(sc, replications=[r]).tables
        task = run_task(st.to_json(), variant, r)
        for name in ("daily_stages", "transitions", "finance", "summary"):
            assert task[name].equals(standalone[name]), (variant, r, name)


def test_run_task_is_pure(small_study):
    st = load_study(small_study)
    a = run_task(st.to_json(), "dear", 1)
    b = run_task(st, "dear", 1)
    assert a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)
    assert a["budget_moves"].num_rows > 0  # the shift marketer acted


def test_common_random_numbers_share_streams(small_study):
    st = load_study(small_study)
    assert {st.stream(v, 2) for v in st.variant_names} == {2}
    from dataclasses import replace

    independent = replace(st, common_random_numbers=False)
    assert sorted(independent.stream(v, 2) for v in st.variant_names) == [2, 5, 8]


def test_compare_in_process_and_in_workers_agree(small_study):
    st = load_study(small_study)
    one = compare(st, workers=1)
    two = compare(st, workers=2)
    assert one.runs.equals(two.runs)
    assert one.contrasts.equals(two.contrasts)
    assert one.budget_moves.equals(two.budget_moves)


class _Recorder:
    """A stand-in for a foreign executor (e.g. Dask): plain submit() -> future."""

    def __init__(self):
        self.calls = []

    def submit(self, fn, *args):
        self.calls.append((fn, args))

        class Done:
            def __init__(self, value):
                self.value = value

            def result(self):
                return self.value

            def cancel(self):
                return False

        return Done(fn(*args))


def test_executor_seam(small_study):
    st = load_study(small_study)
    ex = _Recorder()
    res = compare(st, executor=ex)
    assert len(ex.calls) == len(st.variants) * st.replications
    fn, args = ex.calls[0]
    assert fn is run_task and isinstance(args[0], str) and isinstance(args[1], str) and isinstance(args[2], int)
    assert res.runs.equals(compare(st, workers=1).runs)


def test_contrasts_against_the_runs(small_study):
    st = load_study(small_study)
    res = compare(st, workers=1, target_halfwidth={"profit": 1.0})
    runs = res.runs.to_pylist()
    con = {(r["variant"], r["kpi"]): r for r in res.contrasts.to_pylist()}
    assert set(con) == {(v, k) for v in ("free", "dear") for k in st.kpis}
    x = [r["profit"] for r in runs if r["variant"] == "free"]
    y = [r["profit"] for r in runs if r["variant"] == "mid"]
    c = con[("free", "profit")]
    assert c["n"] == 3
    assert c["mean_difference"] == pytest.approx(sum(x) / 3 - sum(y) / 3)
    assert c["ci_low"] < c["mean_difference"] < c["ci_high"]
    assert c["replications_needed"] > 3  # a half-width of 1 currency unit is far away
    assert c["var_independent"] > 0 and c["crn_variance_factor"] == pytest.approx(c["var_independent"] / c["var_paired"])


# --------------------------------------------------------------------------- output and CLI


def test_cli_compare_writes_a_partitioned_dataset(small_study, tmp_path):
    out = tmp_path / "study"
    res = CliRunner().invoke(
        main, ["compare", str(small_study), "--out", str(out), "--workers", "1", "--target-halfwidth", "cac=0.5", "-q"]
    )
    assert res.exit_code == 0, res.output
    assert "Variants ranked by profit" in res.output
    assert "common random numbers" in res.output
    assert "needs about" in res.output
    manifest = json.loads((out / "_cvj.json").read_text())
    assert manifest["kind"] == "study" and manifest["complete"] and manifest["replications"] == 3
    for name in ("daily_stages", "transitions", "finance", "kpis_daily"):
        files = sorted((out / name).glob("variant=*/replication=*/part-0.parquet"))
        assert len(files) == 9, name
        body = pq.read_schema(files[0])
        assert "replication" not in body.names and "variant" not in body.names
        meta = read_metadata(files[0])
        assert {"cvj.scenario", "cvj.scenario_sha256", "cvj.seed", "cvj.version", "cvj.variant"} <= set(meta)
        # one dataset for pyarrow and for DuckDB, partition keys as columns
        t = ds.dataset(out / name, format="parquet", partitioning="hive").to_table()
        assert t.schema.field("replication").type == pa.int32()
        assert sorted(set(t.column("variant").to_pylist())) == ["dear", "free", "mid"]
        n = duckdb.sql(
            "select count(distinct (variant, replication)) "
            f"from read_parquet('{out / name}/**/*.parquet', hive_partitioning = true)"
        ).fetchall()[0][0]
        assert n == 9
    runs = pq.read_table(out / "runs")
    assert runs.num_rows == 9 and {"variant", "replication", "profit", "cac"} <= set(runs.column_names)
    contrasts = pq.read_table(out / "contrasts")
    assert contrasts.num_rows == 2 * 3
    assert "cvj.study" in read_metadata(next((out / "contrasts").glob("*.parquet")))
    for name in ("summary", "budget_moves"):  # every table of a run is partitioned the same way
        assert len(list((out / name).glob("variant=*/replication=*/part-0.parquet"))) == 9, name
    moves = ds.dataset(out / "budget_moves", format="parquet", partitioning="hive").to_table()
    assert set(moves.column("variant").to_pylist()) == {"dear"}
    assert ds.dataset(out / "summary", format="parquet", partitioning="hive").to_table().num_rows == 9
    assert manifest["study_sha256"] == cvj.study.output.study_sha256(load_study(small_study))
    # the stored daily stages are the runs' own
    stages = ds.dataset(out / "daily_stages", format="parquet", partitioning="hive").to_table()
    last = (
        stages.filter(pc.equal(stages.column("day"), 40))
        .group_by(["variant", "replication"])
        .aggregate([("customers", "sum")])
    )
    assert last.num_rows == 9 and set(last.column("customers_sum").to_pylist()) == {4000}


def test_cli_refuses_an_existing_output(small_study, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    res = CliRunner().invoke(main, ["compare", str(small_study), "--out", str(out)])
    assert res.exit_code == 2 and "already exists" in res.output


def _interrupt_after(monkeypatch, n: int) -> list:
    """Ctrl-C in the n-th run (in this process: --workers 1)."""
    calls = []
    real = cvj.study.runner.run_task

    def interrupted(*args):
        calls.append(args[1:])
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(cvj.study.runner, "run_task", interrupted)
    return calls


def test_interrupt_before_the_first_run_leaves_nothing(small_study, tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, 1)
    out = tmp_path / "study"
    res = CliRunner().invoke(main, ["compare", str(small_study), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 130
    assert "nothing was written" in res.output
    assert os.listdir(tmp_path) == ["small.toml"]


def test_interrupt_leaves_an_incomplete_study_that_resume_finishes(small_study, tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, 4)
    out = tmp_path / "study"
    res = CliRunner().invoke(main, ["compare", str(small_study), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 130
    assert "interrupted: 3 of 9 runs are in" in res.output and "finish with --resume" in res.output
    # marked incomplete, no study tables, no temporary files, no lock: nothing to mistake for a result
    assert json.loads((out / "_cvj.json").read_text())["complete"] is False
    assert sorted(p.name for p in out.iterdir()) == sorted(["_cvj.json", *cvj.study.output.PARTITION_TABLES])
    assert len(list((out / "summary").glob("variant=*/replication=*/part-0.parquet"))) == 3
    assert not list(out.rglob("*.tmp"))

    res = CliRunner().invoke(main, ["compare", str(small_study), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 2 and "already exists; use --resume" in res.output

    calls = _interrupt_after(monkeypatch, -1)  # count the runs
    res = CliRunner().invoke(main, ["compare", str(small_study), "--out", str(out), "--workers", "1", "--resume"])
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "3 of 9 runs are done, 6 to run" in res.output
    assert "(3 already in DIR, 6 run now)" in res.output
    assert len(calls) == 6 and not {("free", 0), ("mid", 0), ("dear", 0)} & set(calls)
    assert json.loads((out / "_cvj.json").read_text())["complete"] is True
    fresh = compare(load_study(small_study), workers=1)
    assert pq.read_table(out / "runs").equals(fresh.runs)
    assert pq.read_table(out / "contrasts").equals(fresh.contrasts)


def test_readme_section_commands_are_the_shipped_ones():
    text = (ROOT / "README.md").read_text()
    assert "## Compare offers and budgets" in text
    section = text.split("## Compare offers and budgets", 1)[1]
    for name in ("compare_entry_offers.toml", "compare_budgets.toml"):
        assert f"cvj compare scenarios/{name}" in section

"""cvj report: the chart specifications and their data against the run's own tables,
escaping of user text, and refusing what is not a finished cvj output. No browser
here (tests/test_report_browser.py drives Chromium)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import cvj
import cvj.report
from cvj.cli import main
from cvj.errors import OutputError
from cvj.report import charts
from cvj.report.page import render, script_json
from cvj.study import compare, load_study
from tests.stat_checks import CLASSIC

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "scenarios" / "default.toml"
# relative tolerance of money sums: float64 sums of ~10^5 terms in another order
RTOL = 1e-9

STUDY = f"""
format = 1
name = "report-study"
description = "three variants"
scenario = "{DEFAULT}"
replications = 3
days = 60
customers = 5000
baseline = "mid"
kpis = ["profit", "conversions", "cac"]

[variants.mid]
description = "the plan"

[variants.free]
overrides = {{ "offers.entry.price" = 0.0 }}

[variants.shift]
marketer = {{ policy = "shift", review_days = 5 }}
"""


def _run(tmp, name, customers_table, replications=1, overrides=None):
    sc = cvj.load_scenario(CLASSIC, {"market.customers": 20_000, "market.days": 120, **(overrides or {})})
    return cvj.run(sc, replications=replications, customers_table=customers_table).write(tmp / name)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("report"), "run", customers_table=True)


@pytest.fixture(scope="module")
def run_report(run_dir):
    return cvj.report.build(run_dir)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report_study")
    (tmp / "s.toml").write_text(STUDY)
    compare(load_study(tmp / "s.toml"), out=tmp / "study", workers=1)
    return tmp / "study"


@pytest.fixture(scope="module")
def study_report(study_dir):
    return cvj.report.build(study_dir)


def panel(rep, pid):
    return next(p for p in rep.panels if p.id == pid)


def rows(table_dir: Path):
    return pq.read_table(table_dir).to_pylist()


def dataset(spec: dict) -> list[dict]:
    """The one inline dataset of an Altair chart."""
    (values,) = spec["datasets"].values()
    return values


# --------------------------------------------------------------------------- a run


def test_run_report_has_every_panel(run_report):
    ids = [p.id for p in run_report.panels]
    assert ids == [
        "front_back",
        "stages",
        "funnel",
        "flow",
        "profit",
        "spend",
        "cac_roas",
        "channels",
        "retention",
        "second_order",
    ]
    for p in run_report.charts:
        title = p.spec["title"]["text"] if isinstance(p.spec["title"], dict) else p.spec["title"]
        assert title and p.data is not None and p.data.num_rows > 0, p.id
        assert p.spec["$schema"].startswith("https://vega.github.io/schema/vega" + ("/" if p.grammar == "vega" else "-lite/"))
    assert [t["kpi"] for t in run_report.tiles][:3] == ["profit", "revenue", "spend"]


def test_every_vega_lite_chart_is_valid_against_the_schema(run_report, study_report):
    """The page skips Altair's schema check for speed; here every chart gets it."""
    import jsonschema
    from altair.vegalite.v6.schema import load_schema

    check = jsonschema.Draft7Validator(load_schema())
    for p in [*run_report.charts, *study_report.charts]:
        if p.grammar == "vega-lite":
            assert [e.message for e in check.iter_errors(p.spec)] == [], p.id
    broken = dict(panel(run_report, "stages").spec, mark={"type": "no such mark"})
    assert list(check.iter_errors(broken))  # the check can fail


def test_scorecard_is_the_summary_formatted(run_dir, run_report):
    (s,) = rows(run_dir / "summary")
    tiles = {t["kpi"]: t for t in run_report.tiles}
    assert tiles["profit"]["value"] == f"{s['profit']:,.0f} USD"
    cac = f"{s['cac']:,.0f}" if s["cac"] >= 1000 else f"{s['cac']:,.2f}"  # cents only below 1,000
    assert tiles["cac"]["value"] == cac and "USD" in tiles["cac"]["hint"]
    assert tiles["roas"]["value"] == (f"{s['roas']:,.2f}" if s["roas"] >= 1 else f"{s['roas']:.3g}")  # 3 digits below 1
    assert tiles["payback_day"]["value"] == (f"day {s['payback_day']}" if s["payback_day"] is not None else "not reached")
    assert tiles["conversions"]["value"] == f"{s['conversions']:,.0f}"
    assert tiles["front_end_profit"]["negative"] == (s["front_end_profit"] < 0)


def test_stages_chart_is_the_daily_stages_table(run_dir, run_report):
    p = panel(run_report, "stages")
    enc = p.spec["encoding"]
    assert (enc["x"]["field"], enc["y"]["field"], enc["color"]["field"]) == ("day", "customers", "stage")
    assert enc["y"]["stack"] == "zero" and p.spec["mark"]["type"] == "area"
    got = {(r["day"], r["stage"]): r["customers"] for r in dataset(p.spec)}
    assert {s for _, s in got} == set(charts.FUNNEL)  # unaware and lapsed are in the note, not the chart
    want = {}
    for r in rows(run_dir / "daily_stages"):
        if r["stage"] in charts.FUNNEL:
            want[(r["day"], r["stage"])] = want.get((r["day"], r["stage"]), 0) + r["customers"]
    assert got == want  # 121 days: every day is a point


def test_funnel_balances_with_the_stage_counts_of_the_last_day(run_dir, run_report):
    """Conservation: the customers in a stage on the last day are those who were in it
    (at the start or by a move) less those who moved on or lapsed. The end counts come
    from daily_stages (the engine's state), the moves from transitions."""
    funnel = {r["stage"]: r for r in charts.funnel_rows(charts_data(run_dir))}
    out = {}
    for r in rows(run_dir / "transitions"):
        out[r["from_stage"]] = out.get(r["from_stage"], 0) + r["customers"]
    end = {}
    for r in rows(run_dir / "daily_stages"):
        if r["day"] == 120:
            end[r["stage"]] = end.get(r["stage"], 0) + r["customers"]
    for s in charts.FUNNEL:
        assert funnel[s]["entered"] - out.get(s, 0) == end[s], s
        if s != charts.FUNNEL[-1] and funnel[s]["entered"] > 0:
            assert funnel[s]["conversion"] == pytest.approx(funnel[s]["moved_on"] / funnel[s]["entered"])
            assert 0 <= funnel[s]["moved_on"] <= out.get(s, 0)
    spec = panel(run_report, "funnel").spec
    assert spec["layer"][0]["encoding"]["y"]["sort"] == list(charts.FUNNEL)


def charts_data(run_dir):
    from cvj.report.source import open_output, read_run

    return read_run(open_output(run_dir))


def _starts(run_dir):
    out = {}
    for r in rows(run_dir / "daily_stages"):
        if r["day"] == 0:
            out[r["stage"]] = out.get(r["stage"], 0) + r["customers"]
    return out


def test_flow_ribbons_tile_both_columns_and_sum_to_the_transitions(run_dir, run_report):
    p = panel(run_report, "flow")
    assert p.grammar == "vega"
    links = p.data.to_pylist()
    by_cause = {}
    for r in rows(run_dir / "transitions"):
        by_cause[r["cause"]] = by_cause.get(r["cause"], 0) + r["customers"]
    got = {}
    for link in links:
        got[link["cause"]] = got.get(link["cause"], 0) + link["customers"]
    assert got == by_cause
    # on each node the ribbons are contiguous and do not overlap
    for key, y0 in (("cause", "source_y0"), ("to_stage", "target_y0")):
        for name in {link[key] for link in links}:
            mine = sorted((link for link in links if link[key] == name), key=lambda link: link[y0])
            for a, b in itertools.pairwise(mine):
                assert a[y0] + a["customers"] == pytest.approx(b[y0])
    nodes = p.spec["data"][0]["values"]
    assert sum(n["customers"] for n in nodes if n["side"] == "cause") == sum(
        n["customers"] for n in nodes if n["side"] == "stage"
    )
    labels = [n["label_y"] for n in nodes if n["side"] == "stage"]
    assert all(b - a >= 13 - 1e-9 for a, b in itertools.pairwise(labels))  # labels never overlap


def test_profit_curve_ends_at_the_profit_kpi_and_marks_the_payback_day(run_dir, run_report):
    (s,) = rows(run_dir / "summary")
    p = panel(run_report, "profit")
    data = p.data.to_pylist()
    assert data[-1]["day"] == s["days"]
    assert data[-1]["cumulative_profit"] == pytest.approx(s["profit"], rel=RTOL)
    marks = [layer for layer in p.spec["layer"] if layer.get("transform")]
    if s["payback_day"] is None:
        assert not marks
    else:
        assert marks[0]["transform"][0]["filter"] == f"datum.day == {s['payback_day']}"
        before = [r for r in data if r["day"] < s["payback_day"]]
        assert all(r["cumulative_profit"] < 0 for r in before)


def test_spend_cac_and_roas_agree_with_the_kpis(run_dir, run_report):
    (s,) = rows(run_dir / "summary")
    spend = panel(run_report, "spend").data
    assert pc.sum(spend["spend"]).as_py() == pytest.approx(s["spend"], rel=RTOL)
    daily = spend.to_pylist()
    assert all(r["daily_spend"] == pytest.approx(r["spend"] / r["days"]) for r in daily)
    last = panel(run_report, "cac_roas").data.to_pylist()[-1]
    assert last["day"] == s["days"]
    assert last["cac"] == pytest.approx(s["cac"], rel=RTOL) and last["roas"] == pytest.approx(s["roas"], rel=RTOL)


def test_channel_attribution_is_the_moves_each_channel_caused(run_dir, run_report):
    sc = json.loads(pq.read_schema(next((run_dir / "summary").glob("*.parquet"))).metadata[b"cvj.scenario"])
    entry, core = sc["offers"]["entry"]["price"], sc["offers"]["core"]["price"]
    conv, revenue = {}, {}
    for r in rows(run_dir / "transitions"):
        if (r["from_stage"], r["to_stage"]) == ("subscribed", "converted"):
            conv[r["cause"]] = conv.get(r["cause"], 0) + r["customers"]
            revenue[r["cause"]] = revenue.get(r["cause"], 0) + r["customers"] * entry
        if (r["from_stage"], r["to_stage"]) == ("excited", "ascended"):
            revenue[r["cause"]] = revenue.get(r["cause"], 0) + r["customers"] * core
    data = panel(run_report, "channels").data.to_pylist()
    for ch in sc["channels"]:
        last = [r for r in data if r["channel"] == ch][-1]
        assert last["cum_conversions"] == conv.get(ch, 0), ch
        assert last["cum_purchase_revenue"] == pytest.approx(revenue.get(ch, 0), rel=RTOL)
        assert last["cac"] == (pytest.approx(last["cum_spend"] / conv[ch]) if conv.get(ch) else None)


def test_retention_is_a_survival_curve_of_each_cohort(run_dir, run_report):
    cust = pq.read_table(run_dir / "customers", columns=["day_converted", "day_lapsed"])
    conv = cust["day_converted"].to_numpy(zero_copy_only=False)
    lapsed = cust["day_lapsed"].to_numpy(zero_copy_only=False)
    data = panel(run_report, "retention").data.to_pylist()
    assert data
    days = 120
    for r in data:
        first = 30 * r["cohort_index"] + 1
        mine = (conv >= first) & (conv < first + 30)
        lost = mine & ~np.isnan(lapsed) & (lapsed >= conv) & (lapsed - conv <= r["age_days"])
        assert r["customers"] == mine.sum() and r["retained"] == mine.sum() - lost.sum()
        assert min(30 * (r["cohort_index"] + 1), days) + r["age_days"] <= days  # the whole cohort was observed
    for c in {r["cohort"] for r in data}:  # lapsing is absorbing here: never rises with age
        curve = [r["retention"] for r in sorted(data, key=lambda r: r["age_days"]) if r["cohort"] == c]
        assert all(a >= b for a, b in itertools.pairwise(curve))


def test_second_orders_come_from_the_orders_table(run_dir, run_report):
    """Every customer with two or more orders made exactly one second order, and every
    customer with an order made one first order (the customers table counts orders)."""
    cust = pq.read_table(run_dir / "customers", columns=["orders", "day_converted", "last_order_day"])
    orders = cust["orders"].to_numpy()
    p = panel(run_report, "second_order")
    assert pc.sum(p.data["orders"]).as_py() == (orders >= 2).sum()
    assert f"from {(orders >= 1).sum():,} first-time buyers" in p.spec["title"]["subtitle"]
    # customers with exactly two orders: their gap is last order - first (= conversion) day
    two = orders == 2
    gaps = cust["last_order_day"].to_numpy(zero_copy_only=False)[two] - cust["day_converted"].to_numpy(zero_copy_only=False)[two]
    week = {r["week"]: r["orders"] for r in p.data.to_pylist()}
    for w, n in zip(*np.unique(gaps // 7, return_counts=True)):
        assert week.get(int(w), 0) >= n  # their second orders are among those drawn in that week


def test_second_orders_without_an_orders_table_use_ascension(run_dir, tmp_path):
    """An output without the orders table (an earlier cvj) takes ascension after conversion."""
    old = tmp_path / "old"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("orders", "report"))
    d = charts_data(old)
    assert d.order_gaps is None
    p = charts.second_order(d)
    cust = pq.read_table(old / "customers", columns=["day_converted", "day_ascended"])
    conv = cust["day_converted"].to_numpy(zero_copy_only=False)
    asc = cust["day_ascended"].to_numpy(zero_copy_only=False)
    assert pc.sum(p.data["orders"]).as_py() == np.isfinite(asc).sum()
    assert f"from {np.isfinite(conv).sum():,} first-time buyers" in p.spec["title"]["subtitle"]
    assert "no orders table" in p.notes[0]


def test_a_run_without_customers_table_says_what_is_missing(tmp_path):
    d = _run(tmp_path, "run", customers_table=False, replications=2)
    rep = cvj.report.build(d)
    last = rep.panels[-1]
    assert last.spec is None and "--customers-table" in last.notes[0]
    assert "second_order" in [p.id for p in rep.charts]  # from the orders table, which every run writes
    assert "2 replications" in rep.facts
    (s0, s1) = rows(d / "summary")
    profit = next(t for t in rep.tiles if t["kpi"] == "profit")
    assert profit["raw"] == pytest.approx((s0["profit"] + s1["profit"]) / 2)
    assert "over 2 replications" in profit["spread"]


# --------------------------------------------------------------------------- a study


def test_study_report_panels_and_ranking(study_dir, study_report):
    assert [p.id for p in study_report.panels] == ["ranking", "forest", "distribution", "budgets", "crn_gain"]
    runs = rows(study_dir / "runs")
    ranking = panel(study_report, "ranking").data.to_pylist()
    means = {v: np.mean([r["profit"] for r in runs if r["variant"] == v]) for v in ("mid", "free", "shift")}
    assert [r["variant"] for r in ranking] == sorted(means, key=lambda v: -means[v])
    for r in ranking:
        assert r["mean"] == pytest.approx(means[r["variant"]], rel=RTOL)
        assert r["ci_low"] < r["mean"] < r["ci_high"]
    assert next(r for r in ranking if r["variant"] == "mid")["category"] == "baseline"
    assert [c["text"] for c in study_report.table["rows"][0]][:2] == ["1", ranking[0]["variant"]]


def test_forest_is_the_contrasts_table_with_its_verdicts(study_dir, study_report):
    con = rows(study_dir / "contrasts")
    p = panel(study_report, "forest")
    data = p.data.to_pylist()
    assert len(data) == len(con) == 2 * 3
    for c, r in zip(con, data):
        assert (r["variant"], r["kpi"], r["difference"], r["ci_low"], r["ci_high"]) == (
            c["variant"],
            c["kpi"],
            c["mean_difference"],
            c["ci_low"],
            c["ci_high"],
        )
        if not c["significant"]:
            assert r["category"] == "not significant"
        else:
            lower = c["kpi"] == "cac"
            assert r["category"] == ("better" if (c["mean_difference"] < 0) == lower else "worse")
    assert p.spec["facet"]["row"]["field"] == "kpi_title"
    assert p.spec["resolve"]["scale"]["x"] == "independent"


def test_budget_chart_is_the_marketers_daily_budget(study_dir, study_report):
    p = panel(study_report, "budgets")
    data = p.data.to_pylist()
    assert {r["variant"] for r in data} == {"shift", "mid"}
    fin = pq.read_table(study_dir / "finance" / "variant=shift").to_pylist()
    day, ch = 30, "paid_social"
    vals = [r["budget"] for r in fin if r["day"] == day and r["item"] == ch]
    got = next(r for r in data if r["variant"] == "shift" and r["day"] == day and r["channel"] == ch)
    assert got["budget"] == pytest.approx(np.mean(vals)) and got["budget_min"] == min(vals) and got["budget_max"] == max(vals)
    assert p.extra["budget_moves"].num_rows == pq.read_table(study_dir / "budget_moves").num_rows


def test_crn_gain_chart_is_the_contrasts_factor(study_dir, study_report):
    con = {(c["variant"], c["kpi"]): c["crn_variance_factor"] for c in rows(study_dir / "contrasts")}
    for r in panel(study_report, "crn_gain").data.to_pylist():
        assert r["crn_gain"] == con[(r["variant"], r["kpi"])]


# --------------------------------------------------------------------------- writing and escaping


def test_written_report_has_a_png_and_a_csv_per_chart(run_dir, tmp_path):
    rep = cvj.report.report(run_dir, out=tmp_path / "rep")
    assert rep.path == tmp_path / "rep" / "index.html"
    for p in rep.charts:
        png = (tmp_path / "rep" / f"{p.id}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        assert (tmp_path / "rep" / f"{p.id}.csv").read_text().count("\n") == p.data.num_rows + 1
    html = rep.path.read_text()
    assert "https://cdn" not in html and 'src="http' not in html  # nothing to fetch
    assert len(re.findall(r'<script type="application/json" id="spec-', html)) == len(rep.charts)
    # written again: the earlier report is replaced, as cvj's own output
    cvj.report.report(run_dir, out=tmp_path / "rep")


def test_report_refuses_to_replace_what_it_did_not_write(run_dir, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not the output of cvj report"):
        cvj.report.report(run_dir, out=target)
    assert (target / "notes.txt").read_text() == "keep me"


def test_run_directory_with_its_report_can_be_replaced_with_force(tmp_path):
    d = _run(tmp_path, "run", customers_table=False, overrides={"market.customers": 2000, "market.days": 20})
    cvj.report.report(d)
    res = cvj.run(cvj.load_scenario(None, {"market.customers": 2000, "market.days": 20}))
    res.write(d, force=True)  # DIR/report is cvj's own: --force may replace DIR
    assert not (d / "report").exists()


def test_user_text_is_escaped_in_the_page(tmp_path):
    evil = "</script><script>alert(1)</script> & <b>"
    sc = cvj.load_scenario(None, {"market.customers": 2000, "market.days": 20, "name": evil, "description": evil})
    d = cvj.run(sc).write(tmp_path / "run")
    html = render(cvj.report.build(d), bundle="/* bundle */")
    assert "<script>alert(1)" not in html and "<b>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert html.count("<script") == html.count("</script>")  # every element closes where it should


def test_script_json_cannot_close_its_element():
    spec = {"title": "</script><!-- \u2028", "values": [float("nan"), 1.5]}
    text = script_json(spec)
    assert "<" not in text and ">" not in text and "\u2028" not in text
    assert json.loads(text) == {"title": "</script><!-- \u2028", "values": [None, 1.5]}


# --------------------------------------------------------------------------- not a finished output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such directory"),
        (lambda p: p.mkdir(), "no _cvj.json"),
        (lambda p: (p.mkdir(), (p / "_cvj.json").write_text("{not json")), "unreadable"),
        (lambda p: (p.mkdir(), (p / "_cvj.json").write_text('{"kind": "report"}')), 'kind "report"'),
        (lambda p: (p.mkdir(), (p / "_cvj.json").write_text('{"kind": "run", "complete": true}')), "not a whole cvj run output"),
        (
            lambda p: (p.mkdir(), (p / "_cvj.json").write_text('{"kind": "study", "complete": false, "runs": 4}')),
            "the study did not finish",
        ),
    ],
)
def test_not_a_finished_cvj_output_is_one_line_and_exit_2(tmp_path, make, message):
    target = tmp_path / "dir"
    make(target)
    with pytest.raises(OutputError, match=re.escape(message)):
        cvj.report.build(target)
    r = CliRunner().invoke(main, ["report", str(target)])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and message in r.output and "Traceback" not in r.output
    assert not (target / "report").exists()


def test_cli_report_writes_the_page(run_dir, tmp_path):
    r = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "page")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "page" / "index.html").is_file()
    assert str(tmp_path / "page" / "index.html") in r.output


def test_run_and_compare_write_their_report_with_report(tmp_path):
    r = CliRunner().invoke(main, ["run", "--customers", "2000", "--days", "20", "--out", str(tmp_path / "run"), "-q", "--report"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "report" / "index.html").is_file() and "report: " in r.output
    (tmp_path / "s.toml").write_text(STUDY.replace("replications = 3", "replications = 2"))
    r = CliRunner().invoke(
        main, ["compare", str(tmp_path / "s.toml"), "--out", str(tmp_path / "st"), "--workers", "1", "-q", "--report"]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "st" / "report" / "index.html").is_file()


@pytest.mark.parametrize("command", [["run", "--customers", "2000", "--days", "20"], ["compare", str(DEFAULT)]])
def test_report_without_out_is_one_line_and_exit_2(command):
    r = CliRunner().invoke(main, [*command, "--report"])
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0 and "--report needs --out" in r.output


def test_a_subscription_run_shows_its_subscribers_and_mrr(tmp_path):
    """The subscriptions panel is the subscriptions table: paying subscribers and trials
    by day, the MRR at the end in its subtitle; the scorecard leads with MRR; the chart
    is valid Vega-Lite."""
    import jsonschema
    from altair.vegalite.v6.schema import load_schema

    sc = cvj.load_scenario(ROOT / "tests" / "journeys" / "subscription.toml",
                           {"market.customers": 20_000, "market.days": 90})
    out = cvj.run(sc, replications=2).write(tmp_path / "saas")
    rep = cvj.report.build(out)
    p = panel(rep, "subscriptions")
    t = pq.read_table(out / "subscriptions").to_pandas()
    last = t[t.day == 90]
    got = {r["who"]: r["customers"] for r in p.data.to_pylist() if r["day"] == 90}
    assert got["paying"] == pytest.approx(last.subscribers.sum() / 2)
    assert got["in a free trial"] == pytest.approx(last.in_trial.sum() / 2)
    mrr = last.mrr.sum() / 2
    assert f"{mrr:,.0f}" in p.spec["title"]["subtitle"]
    assert rep.tiles[0]["kpi"] == "mrr_end"
    assert [e.message for e in jsonschema.Draft7Validator(load_schema()).iter_errors(p.spec)] == []
    # a run without a subscription has no such panel
    assert "subscriptions" not in {q.id for q in cvj.report.build(_run(tmp_path, "plain", False)).charts}

"""KPIs that can be undefined (never paid back, no conversions) are told, not dropped:
a contrast says in how many replications each variant had the KPI, compares the share
(exact McNemar test on the pairs), and says "never pays back within the horizon"
where that is the answer; ``cvj run`` says the same of its replications."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console
from scipy import stats

from cvj.console import censored, kpi_summary, verdict
from cvj.study.stats import contrasts, defined_shares


class Study:
    baseline, variant_names, kpis, confidence = "base", ("base", "pilot", "never"), ("payback_day", "profit"), 0.95


BASE = [100, 110, 95, 105, 120, 98, 101, 99, 104, 97]
PILOT = [150, None, 140, None, 160, None, 155, None, 145, 150]  # pays back in 6 of 10


def runs():
    rows = {"base": [], "pilot": [], "never": []}
    for i in range(10):
        rows["base"].append({"payback_day": BASE[i], "profit": 10.0 + i})
        rows["pilot"].append({"payback_day": PILOT[i], "profit": 5.0 + i})
        rows["never"].append({"payback_day": None, "profit": -50.0 - i})
    return rows


def test_a_contrast_counts_where_the_kpi_is_defined_and_compares_the_shares():
    by = {(r["variant"], r["kpi"]): r for r in contrasts(Study, runs()).to_pylist()}
    r = by[("pilot", "payback_day")]
    assert (r["replications"], r["variant_defined"], r["baseline_defined"], r["n"]) == (10, 6, 10, 6)
    assert r["defined_share_difference"] == pytest.approx(-0.4)
    # exact McNemar: 4 discordant pairs, all one way: p = 2 * 0.5**4
    assert r["defined_p_value"] == pytest.approx(2 * 0.5**4) == pytest.approx(stats.binomtest(0, 4, 0.5).pvalue)
    # the difference is over the 6 pairs where both paid back
    assert r["mean_difference"] == pytest.approx(sum(p - b for p, b in zip(PILOT, BASE) if p is not None) / 6)
    text = verdict(r, 0.95)
    assert text.startswith("pays back in 6 of 10 (baseline 10 of 10, p = 0.12); where both: worse")
    assert by[("pilot", "profit")]["variant_defined"] == 10 and censored(by[("pilot", "profit")]) is None


def test_never_paying_back_is_the_answer_not_too_few_replications():
    r = {(x["variant"], x["kpi"]): x for x in contrasts(Study, runs()).to_pylist()}[("never", "payback_day")]
    assert r["n"] == 0 and r["p_value"] is None and r["variant_defined"] == 0
    assert verdict(r, 0.95) == "never pays back within the horizon (0 of 10; baseline pays back in 10 of 10)"
    assert r["defined_p_value"] == pytest.approx(2 * 0.5**10)


def test_shares_of_identical_patterns_do_not_differ():
    s = defined_shares([1.0, None, 3.0], [2.0, None, 1.0])
    assert (s["x_defined"], s["y_defined"], s["share_difference"], s["p_value"]) == (2, 2, 0.0, 1.0)
    s = defined_shares([1.0, math.nan], [None, 2.0])
    assert (s["x_defined"], s["y_defined"], s["p_value"]) == (1, 1, 1.0)


def test_identical_pairs_are_said_to_be_identical():
    class Two:
        baseline, variant_names, kpis, confidence = "a", ("a", "b"), ("profit",), 0.95

    same = {v: [{"profit": 1.0 + i} for i in range(4)] for v in ("a", "b")}
    r = contrasts(Two, same).to_pylist()[0]
    assert verdict(r, 0.95) == "identical in every replication (the change does not act on it)"


def rows_of(payback):
    return [
        {"scenario": "s", "seed": 1, "replication": i, "customers": 10, "days": 30, "profit": 1.0 * i, "payback_day": p}
        for i, p in enumerate(payback)
    ]


def cells(table) -> dict[str, list[str]]:
    """The table as printed: each row's cells after the first, by the first."""
    buf = io.StringIO()
    Console(file=buf, width=200, markup=False).print(table)
    out = {}
    for line in buf.getvalue().splitlines():
        parts = [x.strip() for x in line.split("│")[1:-1]]
        if parts:
            out[parts[0]] = parts[1:]
    return out


def test_run_statistics_give_mean_ci_and_how_often_the_kpi_was_defined():
    t = cells(kpi_summary(rows_of([10, None, 14, 12]), "USD")[0])
    assert t["payback_day"][0] == "12.0" and t["payback_day"][2] == "pays back in 3 of 4 replications (mean of those)"
    low, high = (float(x) for x in t["payback_day"][1].split(" .. "))
    half = stats.t.ppf(0.975, 2) * 2 / math.sqrt(3)  # sd of 10, 14, 12 is 2
    assert (low, high) == pytest.approx((12 - half, 12 + half), abs=0.05)
    t = cells(kpi_summary(rows_of([None] * 3), "USD")[0])
    assert t["payback_day"][0] == "-" and t["payback_day"][2] == "never pays back within the horizon (3 of 3 replications)"
    t = cells(kpi_summary(rows_of([None]), "USD")[0])
    assert t["payback_day"] == ["-", "never pays back within the horizon"]

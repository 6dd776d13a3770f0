"""A sample of the market (``market.sample``): the same business at a smaller size.

Budgets, audience sizes and retainer sessions scale by ``sample / customers``, so every
simulated customer meets the same channels as in the whole market; the summary reports
money and counts for the whole market. The check that matters statistically: the
sample's market-level KPIs estimate the full run's, within a band derived from the
replications' spread."""

import numpy as np
import pytest

import cvj
from cvj.model import compile_scenario

from .stat_checks import CLASSIC


def test_a_sample_scales_budgets_audiences_and_sessions_exactly():
    full = compile_scenario(cvj.load_scenario(None, {"market.customers": 400_000}))
    part = compile_scenario(cvj.load_scenario(None, {"market.customers": 400_000, "market.sample": 100_000}))
    assert (part.customers, part.market, part.scale) == (100_000, 400_000, 0.25)
    np.testing.assert_allclose(part.budget, full.budget * 0.25)
    np.testing.assert_allclose(part.contacts, full.contacts * 0.25)
    sized = full.audience > 0
    np.testing.assert_allclose(part.audience[sized], np.minimum(full.audience[sized] * 0.25, 100_000))
    np.testing.assert_array_equal(part.per_unit, full.per_unit)  # prices do not change
    np.testing.assert_array_equal(part.seg_end, np.cumsum([70_000, 10_000, 20_000]))


def test_summary_reports_the_whole_market():
    sc = cvj.load_scenario(CLASSIC, {"market.customers": 200_000, "market.sample": 20_000, "market.days": 60})
    res = cvj.run(sc)
    row = res.summary.to_pylist()[0]
    fin = res.tables["finance"]
    spend = sum(fin.column("spend").to_pylist())
    assert row["customers"] == 200_000 and row["simulated"] == 20_000
    assert row["spend"] == pytest.approx(spend * 10, rel=1e-12)  # the sample's spend, for the market
    ends = sum(row[f"end_{s}"] for s in cvj.STAGES)
    assert abs(ends - 200_000) <= len(cvj.STAGES)  # counts scaled, rounded per stage


@pytest.mark.slow
def test_a_sample_estimates_the_full_markets_kpis():
    """Profit and conversions per market from 1:4 samples against the full market, by
    replications: the difference of means within z * sqrt(s1^2/n + s2^2/n), z = 3.29
    (two-sided 0.001)."""
    base = {"market.customers": 80_000, "market.days": 120}
    n = 8
    full = cvj.run(cvj.load_scenario(CLASSIC, base), replications=n).summary.to_pylist()
    part = cvj.run(cvj.load_scenario(CLASSIC, {**base, "market.sample": 20_000}), replications=n).summary.to_pylist()
    for kpi in ("spend", "conversions", "profit"):
        a = np.array([r[kpi] for r in full], float)
        b = np.array([r[kpi] for r in part], float)
        band = 3.29 * np.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
        assert abs(a.mean() - b.mean()) <= band + 1e-9 * abs(a.mean()), (kpi, a.mean(), b.mean(), band)
        if kpi == "conversions":  # power: a summary left at the sample's size is rejected
            assert abs(a.mean() - b.mean() / 4) > 3.29 * np.sqrt(a.var(ddof=1) / n + (b / 4).var(ddof=1) / n)

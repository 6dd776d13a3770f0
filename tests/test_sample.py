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


def test_the_shipped_studies_simulate_the_shop_on_a_sample_not_by_hand():
    """The shipped studies name a sample of the shop's market instead of hand-scaled
    budgets and audiences: their variants compile to what the hand-scaled 1:5 model of
    the shop compiled to (the same simulated customers meet the same channels)."""
    from pathlib import Path

    from cvj.study import load_study

    root = Path(__file__).resolve().parents[1] / "scenarios"
    for name in ("compare_budgets.toml", "compare_entry_offers.toml"):
        st = load_study(root / name)
        for v in st.variants.values():
            sc = v.scenario
            assert (sc.market.customers, sc.market.sample) == (1_000_000, 200_000)
            by_hand = sc.model_dump(mode="json")
            by_hand["market"].update(customers=200_000, sample=None)
            for ch in by_hand["channels"].values():
                for key in ("daily_budget", "monthly_cost", "contacts_per_day", "audience"):
                    if isinstance(ch.get(key), (int, float)):
                        ch[key] = ch[key] // 5 if isinstance(ch[key], int) else ch[key] / 5
            a = compile_scenario(sc)
            b = compile_scenario(cvj.scenario.validate_scenario(by_hand))
            for field in ("budget", "audience", "contacts", "per_unit", "max_units", "seg_end"):
                np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12, err_msg=field)


def test_the_marketers_caps_scale_with_the_sample():
    """A marketer's caps are written for the market, like the budgets: on a 1:5 sample
    the cap binds at a fifth of it (what the engine spends), so the moves are the same
    as a hand-scaled model's."""
    from cvj.mesa_model import JourneyModel, MarketerSettings

    sc = cvj.load_scenario(CLASSIC, {"market.sample": 20_000, "market.customers": 100_000, "market.days": 30})
    hand = cvj.load_scenario(CLASSIC, {
        "market.customers": 20_000, "market.days": 30,
        "channels.paid_social.daily_budget": 80.0, "channels.search_ads.daily_budget": 40.0,
        "channels.paid_social.audience": 140_000, "channels.search_ads.audience": 30_000,
        "channels.email.daily_budget": 8.0, "channels.seo_content.audience": 100_000,
        "channels.seo_content.monthly_cost": 500.0, "channels.seo_content.contacts_per_day": 600.0,
    })
    market = MarketerSettings(policy="shift", review_days=7, daily_budget_cap=500.0,
                              channel_caps={"search_ads": 250.0}, channels=["paid_social", "search_ads"])
    sample = MarketerSettings(policy="shift", review_days=7, daily_budget_cap=100.0,
                              channel_caps={"search_ads": 50.0}, channels=["paid_social", "search_ads"])
    a = JourneyModel(compile_scenario(sc), marketer=market)
    b = JourneyModel(compile_scenario(hand), marketer=sample)
    a.run_model()
    b.run_model()
    moves_a, moves_b = a.tables()["budget_moves"], b.tables()["budget_moves"]
    assert moves_a.num_rows > 0  # the cap (500 for the market: 100 in the sample) binds at once
    assert moves_a.column("amount").to_pylist() == pytest.approx(moves_b.column("amount").to_pylist())

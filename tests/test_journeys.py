"""The journeys docs/model.md says format 2 can write, each a small file in
tests/journeys/, run for real: every test checks the feature that defines its journey
and prints the figure docs/model.md quotes (``pytest tests/test_journeys.py -s``)."""

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

import cvj

HERE = Path(__file__).parent / "journeys"


def run(name, **kw):
    sc = cvj.load_scenario(HERE / f"{name}.toml")
    return sc, cvj.run(sc, customers_table=True, **kw).tables


def col(table, name):
    a = table.column(name)
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=float)


def test_nurture_sequence_sells_only_on_its_days():
    _, t = run("nurture_sequence")
    cu = t["customers"]
    sub, conv = col(cu, "day_subscribed"), col(cu, "day_converted")
    bought = ~np.isnan(conv) & ~np.isnan(sub) & (sub > 0)
    d = (conv[bought] - sub[bought] - 1).astype(int)  # full days after the opt-in
    days, counts = np.unique(d, return_counts=True)
    print("\nnurture: entry purchases by day after the opt-in:", dict(zip(days.tolist(), counts.tolist())))
    assert bought.sum() > 500
    assert set(days.tolist()) <= {0, 2, 5, 9}  # nothing else converts a subscriber
    ch = t["channels"]
    assert pc.sum(ch.column("sends")).as_py() > 0


def test_free_trial_ends_in_a_wave_of_purchases_on_day_14():
    _, t = run("free_trial")
    cu = t["customers"]
    exc, asc = col(cu, "day_excited"), col(cu, "day_ascended")
    ok = ~np.isnan(asc) & ~np.isnan(exc)
    d = (asc[ok] - exc[ok] - 1).astype(int)
    share14 = float(np.mean(d == 14))
    print(f"\nfree trial: {ok.sum():,} purchases; {share14:.1%} on day 14 of the trial, "
          f"{np.mean(d < 14):.1%} before, {np.mean(d > 14):.1%} after")
    # day 14's chance 0.35 against 0.003 a day before: most buyers decide when the trial ends
    assert share14 > 0.5 and np.bincount(d).argmax() == 14


def test_handbags_are_bought_again_after_months_not_weeks():
    _, t = run("repurchase_cycle")
    o = t["orders"]
    gap = col(o, "days_since_previous")
    n = col(o, "orders")
    early = n[gap < 14].sum() / n.sum()
    cycle = n[(gap >= 60) & (gap < 120)].sum() / n.sum()
    print(f"\nrepurchase cycle: {n.sum():,.0f} repeat orders after an earlier one; "
          f"{early:.1%} within 14 days, {cycle:.1%} after 60-119 days")
    assert cycle > 0.5 and early < 0.05


def test_inactivity_churn_grows_with_inactivity():
    _, t = run("inactivity_churn")
    cu = t["customers"]
    lapsed = col(cu, "day_lapsed")
    n = cu.num_rows
    # daily lapse hazard among those still there, early and later
    days = np.nan_to_num(lapsed, nan=np.inf)

    def hazard(lo, hi):
        at_risk = np.sum(days >= lo)
        return np.sum((days >= lo) & (days < hi)) / at_risk / (hi - lo)

    early, later = hazard(1, 31), hazard(91, 121)
    print(f"\ninactivity churn: daily lapse hazard {early:.5f} in days 1-30, {later:.5f} in days 91-120 "
          f"({n:,} buyers)")
    assert later > 4 * early  # Weibull k = 2: the hazard grows linearly with time


def test_dashboard_channels_show_their_figures():
    sc, t = run("dashboard_channels")
    rows = {r["channel"]: r for r in cvj.results.channel_funnel(t["channels"])}
    social, email = rows["social"], rows["email"]
    print(
        f"\ndashboard: social CPM {social['cpm']:.2f}, CTR {social['ctr']:.2%}, CPC {social['cpc']:.2f}; "
        f"retargeting CTR {rows['retargeting']['ctr']:.2%}; email open {email['open_rate']:.1%}, "
        f"click {email['click_rate']:.2%}, unsubscribe {email['unsubscribe_rate']:.2%}"
    )
    assert social["cpm"] == pytest.approx(10.0, rel=1e-3)
    assert social["ctr"] == pytest.approx(0.012, rel=0.05)
    # the weekly cap: at most 2 emails a week per person with permission
    ch = t["channels"].filter(pc.equal(t["channels"].column("channel").cast("string"), "email"))
    # (sends are reported as whole emails: rounding adds at most half an email a day)
    assert np.all(col(ch, "sends") <= col(ch, "audience") * 2 / 7 + 0.5)
    assert np.any(col(ch, "sends") > col(ch, "audience") * 2 / 7 - 0.5)  # and it binds here
    # age bands: the social channel reaches 18-34 more than 35 and over
    ds = t["daily_stages"]
    last = ds.filter(pc.equal(ds.column("day"), sc.market.days))
    unaware = {
        b: sum(r["customers"] for r in last.to_pylist() if r["age_band"] == b and r["stage"] == "unaware")
        for b in sc.band_names
    }
    print(f"dashboard: still unaware at the end: {unaware}")
    assert unaware["18-34"] < unaware["35 and over"]
    # Black Friday (days 26-29 from 2 November) lifts entry purchases per subscriber
    tr = t["transitions"]
    buys = np.zeros(sc.market.days + 1)
    for r in tr.to_pylist():
        if r["from_stage"] == "subscribed" and r["to_stage"] == "converted":
            buys[r["day"]] += r["customers"]
    subs = np.zeros(sc.market.days + 1)
    for r in ds.to_pylist():
        if r["stage"] == "subscribed":
            subs[r["day"]] += r["customers"]
    rate = buys[1:] / np.maximum(subs[:-1], 1)
    bf = rate[25:29].mean()
    around = np.r_[rate[11:25], rate[29:43]].mean()
    print(f"dashboard: entry purchases per subscriber a day: {bf:.4f} on Black Friday weekend, {around:.4f} around it")
    assert bf > 2 * around

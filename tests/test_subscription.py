"""A core offer billed per period (``offers.core.subscription``): bills fall exactly
every period from the sign-up (or the end of the free trial), whatever the calendar,
channels or upsells do; trial conversion and churn by renewal are binomial at the rates
written; subscribers at the start are spread over their month; the subscriptions
table's stocks (paying subscribers, trials, MRR) equal what the customers table counts;
a referral programme paying per first payment pays for exactly those."""

from pathlib import Path

import numpy as np
import pytest

import cvj
from cvj.errors import ScenarioError

from .stat_checks import chi_square_gof, per_test_alpha, two_sided_z

JOURNEY = Path(__file__).parent / "journeys" / "subscription.toml"
REPEAT = ("ascended", "advocate", "promoter")


@pytest.fixture(scope="module")
def saas():
    sc = cvj.load_scenario(JOURNEY)
    return sc, cvj.run(sc, customers_table=True).tables


def col(table, name):
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)


def test_bills_fall_every_period_after_the_trial_and_nowhere_else(saas):
    sc, t = saas
    o = t["orders"]
    n, gap, orders = col(o, "order_number"), col(o, "days_since_previous"), col(o, "orders")
    first_bill = n == 3  # entry, trial sign-up, then the bill that ends the trial
    renewals = n >= 4
    assert orders[first_bill].sum() > 10_000 and orders[renewals].sum() > 100_000
    assert set(gap[first_bill].tolist()) == {sc.offers.core.subscription.trial_days}
    assert set(gap[renewals].tolist()) == {30}


def test_calendar_channels_and_upsells_leave_the_bills_alone():
    """A Black-Friday lift of 5, an email list reaching every subscriber, an upsell
    bought often: none of them moves a bill or adds one."""
    sc = cvj.load_scenario(JOURNEY, {
        "market.customers": 40_000,
        "market.days": 120,
        "start_date": "2026-11-02",
        "calendar.events": [{"name": "Black Friday", "start": "2026-11-27", "end": "2026-12-05", "lift": 5.0}],
        "offers.upsells.seats": {"price": 9.0, "take_rate": 0.02},
        "channels.email": {"pricing": "per_send", "unit_cost": 0.001, "daily_budget": 50.0, "open_rate": 0.3,
                           "click_rate": 0.05, "unsubscribe_rate": 0.01},
        "shop.conversion": {"ascended": 0.5},
    })
    t = cvj.run(sc).tables
    o = t["orders"]
    n, gap = col(o, "order_number"), col(o, "days_since_previous")
    assert set(gap[n == 3].tolist()) == {14} and set(gap[n >= 4].tolist()) == {30}
    fin = t["finance"].to_pandas().groupby("item")["units"].sum()
    assert fin["seats"] > 1000  # upsells were bought, and moved no bill
    ch = t["channels"].to_pandas()
    assert ch["sends"].sum() > 0 and ch["unsubscribes"].sum() > 0


def renewal_estimates(t, trial: bool = True):
    """Churn at each bill from the customers table. A customer who signed up during the
    run and paid ``b`` bills either left at bill ``b + 1`` (it is lapsed) or is still
    subscribed (its next bill falls after the horizon: censored). So among customers
    who had paid ``j`` bills when the next fell due, the share who left at it is
    ``left with j paid / (left with j paid + paid more than j)``; with a trial, ``j =
    0`` is the trial's end, without one the sign-up is the first bill (``j >= 1``)."""
    cu = t["customers"]
    signed = col(cu, "day_ascended")
    new = ~np.isnan(signed) & (signed > 0)
    bills = col(cu, "orders")[new] - 2 - (0 if trial else -1)  # bills paid after the sign-up
    lapsed = ~np.isnan(col(cu, "day_lapsed")[new])
    out = []
    for j in range(4):
        left = int(np.sum(lapsed & (bills == j)))
        paid = int(np.sum(bills >= j + 1))
        out.append((left, left + paid))
    return out


def test_trial_conversion_and_churn_by_renewal_are_binomial(saas):
    sc, t = saas
    sub = sc.offers.core.subscription
    truth = [1 - sub.trial_conversion, *sub.churn, sub.churn[-1]]  # bill 0 ends the trial
    z = two_sided_z(per_test_alpha(len(truth)))
    for (left, due), p in zip(renewal_estimates(t), truth):
        assert due > 3000
        se = np.sqrt(p * (1 - p) / due)
        assert abs(left / due - p) < z * se, (left, due, p)
        # power: the same test rejects a rate a quarter off
        assert abs(1.25 * p - p) > 2 * z * se
    s = t["summary"].to_pylist()[0]
    left, due = renewal_estimates(t)[0]
    assert s["trial_conversion"] == pytest.approx(1 - left / due, abs=0.02)


def test_subscribers_at_the_start_are_spread_over_their_month(saas):
    _, t = saas
    days = t["subscriptions"].to_pandas().groupby("day").sum(numeric_only=True)
    start = int(days.loc[0, "subscribers"])
    # days 1-14: no trial has ended yet, so every bill due is a starting subscriber's
    due = (days.loc[1:14, "payments"] + days.loc[1:14, "cancellations"]).to_numpy()
    gof = chi_square_gof(due, np.full(14, due.sum() / 14), per_test_alpha(2))
    assert gof.statistic < gof.critical, gof
    # and 14 of their 30 days: binomial in the starting subscribers
    p = 14 / 30
    assert abs(due.sum() - start * p) < two_sided_z(per_test_alpha(2)) * np.sqrt(start * p * (1 - p))


def test_subscriptions_table_counts_what_the_customers_table_holds(saas):
    sc, t = saas
    cu = t["customers"].to_pandas()
    days = t["subscriptions"].to_pandas().groupby("day").sum(numeric_only=True)
    last = days.iloc[-1]
    active = cu[cu.final_stage.isin(REPEAT)]
    assert last["in_trial"] == (active.orders == 2).sum()
    assert last["subscribers"] == (active.orders >= 3).sum()
    assert last["mrr"] == pytest.approx(last["subscribers"] * sc.offers.core.price)
    s = t["summary"].to_pylist()[0]
    assert s["subscribers_end"] == last["subscribers"] and s["arr_end"] == pytest.approx(12 * s["mrr_end"])
    fin = t["finance"].to_pandas().groupby("item")[["units", "revenue"]].sum()
    assert fin.loc["core", "units"] == days["payments"].sum()
    assert fin.loc["core_trial", "units"] == days["trial_starts"].sum() and fin.loc["core_trial", "revenue"] == 0
    # every customer's revenue is its bills
    paid = cu.orders - 2  # the entry offer (free) and the trial sign-up (free): the rest are bills
    starters = cu.day_ascended == 0
    np.testing.assert_allclose(cu.revenue[~starters & cu.day_ascended.notna()],
                               29.0 * paid[~starters & cu.day_ascended.notna()].clip(lower=0))


def test_the_referral_programme_pays_per_first_payment(saas):
    _, t = saas
    cu = t["customers"].to_pandas()
    referred_paid = ((cu.acquired_by == "referral") & (cu.orders >= 3)).sum()
    referred_trials = ((cu.acquired_by == "referral") & cu.day_ascended.notna()).sum()
    ch = t["channels"].to_pandas()
    units = ch[ch.channel == "referral_programme"].units.sum()
    assert referred_paid > 100 and referred_trials > referred_paid
    assert units == referred_paid
    assert ch[ch.channel == "referral_programme"].spend.sum() == pytest.approx(20.0 * referred_paid)


def test_without_a_trial_the_sign_up_is_the_first_bill():
    sc = cvj.load_scenario(JOURNEY, {
        "market.customers": 30_000, "market.days": 150,
        "offers.core.subscription": {"period": "month", "churn": 0.1},
    })
    t = cvj.run(sc, customers_table=True).tables
    o = t["orders"]
    n, gap = col(o, "order_number"), col(o, "days_since_previous")
    assert set(gap[n >= 3].tolist()) == {30}
    s = t["summary"].to_pylist()[0]
    assert s["trial_conversion"] is None
    left, due = renewal_estimates(t, trial=False)[1]  # paid the sign-up, left at the 1st renewal
    se = np.sqrt(0.1 * 0.9 / due)
    assert abs(left / due - 0.1) < two_sided_z(per_test_alpha(1)) * se


def test_threads_do_not_change_the_subscriptions_table():
    sc = cvj.load_scenario(JOURNEY, {"market.customers": 70_000, "market.days": 60})
    a = cvj.run(sc, threads=1).tables
    b = cvj.run(sc, threads=2).tables
    assert a["subscriptions"].equals(b["subscriptions"]) and a["summary"].equals(b["summary"])


@pytest.mark.parametrize("overrides,path", [
    ({"offers.core.repeat_rate": 0.01}, "offers.core.repeat_rate"),
    ({"organic.lapse.ascended": 0.01}, "organic.lapse.ascended"),
    ({"offers.core.subscription.trial_days": 0}, "offers.core.subscription.trial_conversion"),
    ({"offers.core.subscription.churn": [0.1] * 7}, "offers.core.subscription.churn"),
    ({"offers.core.subscription.period": "week"}, "offers.core.subscription.period"),
    ({"offers.core.subscription": None, "offers.core.repeat_rate": 0.0}, "channels.referral_programme.commission_on"),
])
def test_a_subscription_that_cannot_be_billed_is_refused_naming_the_field(overrides, path):
    with pytest.raises(ScenarioError) as exc:
        cvj.load_scenario(JOURNEY, overrides)
    assert path in str(exc.value)

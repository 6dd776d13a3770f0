"""Scenario format 2 proved by laws: each mechanism on a tiny scenario where it acts alone,
its simulated output against a closed form written here from docs/model.md (never by
calling the code under test), and a power check showing that the same test rejects a
model a few per cent off.

1. Time in a stage follows the dwell profile written: piecewise advance and lapse
   profiles competing by the hazard rule, a Weibull and a gamma waiting time discretised
   as docs/model.md says (buckets that keep their survival exact); chi-square on the
   day each customer left (customers table) at 10^6 customers.
2. Dashboard figures are binomial in what was bought (clicks of impressions, sessions of
   clicks, opens of sends, clicks of opens); unsubscribes are the kernel's per-customer
   events at hazard ``sends per member x unsubscribe_rate`` and match sends x rate within
   a derived band; the weekly email cap binds.
3. Repeat orders by order number follow the hazards written (a repurchase profile
   times the order multiplier): chi-square of the orders table's gaps per order number,
   and each multiplier fitted from the table by maximum likelihood (LR test).
4. Audiences count exactly the customers the customers table says are in them (nurture
   days, retargeting window, win-back, age band, permission), and age-band x segment
   affinity scales a channel's hazard as written (chi-square).
5. The calendar multiplies purchase hazards (repeat and entry purchases) by weekday and
   event, and leaves other moves alone.
6. Format-1 files load through the upgrader; ``cvj upgrade`` writes a file that gives
   identical tables; format-2 keys in a format-1 file are refused in one line; a
   referral programme's push before ``advocate`` becomes an organic advance.
7. Common random numbers in format 2: a variant that changes only money shares every draw.

Every hypothesis test of this file belongs to one family, counted in ``FAMILY``, and runs
at ``FAMILY_ALPHA / m`` (Bonferroni, tests/stat_checks.py): a correct model fails any of
them with probability below 0.001. Run with ``-s`` to see every statistic.
"""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pyarrow.compute as pc
import pytest
from scipy import stats

import cvj
from cvj.errors import ScenarioError
from cvj.scenario import read_toml
from tests.conftest import ROOT
from tests.stat_checks import NO_JIT, chi_square_gof, per_test_alpha, scenario, two_sided_z

#: every hypothesis test below, by law; each runs at FAMILY_ALPHA / m (Bonferroni)
FAMILY = {
    "dwell": 3,  # piecewise advance + lapse, Weibull lapse, gamma lapse
    "funnel": 8 * 2,  # seven binomial laws and a Poisson one, each by its total (z) and its dispersion
    "unsubscribes": 1,  # the dashboard reading sends x unsubscribe_rate, within its derived band
    "orders": 4 + 3,  # gaps of order numbers 3, 4, 5, 6; multipliers fitted for orders 3, 4, 5
    "band_affinity": 1,
    "calendar": 3,  # repeat purchases, entry purchases, a move that is not a purchase
}
M = sum(FAMILY.values())
ALPHA = per_test_alpha(M)
Z = two_sided_z(ALPHA)
#: the "slightly wrong model" of every power check: one rate off by this much (relative)
OFF = 0.03


def col(table, name) -> np.ndarray:
    """A column as float64, nulls as NaN."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def rows_of(table, column, value):
    return table.filter(pc.equal(table.column(column).cast("string"), value))


def h(p):
    """Daily probability -> hazard (docs/model.md, "One rule for combining causes")."""
    return -np.log1p(-np.asarray(p, dtype=np.float64))


def report(what, gof):
    print(f"{what}: X2 {gof.statistic:.1f}, df {gof.df}, critical {gof.critical:.1f} at {ALPHA:.1e}, p {gof.p_value:.3g}")
    return gof


# --------------------------------------------------------------------------- 1. dwell

DWELL_N = 10_000 if NO_JIT else 1_000_000
DWELL_DAYS = 40 if NO_JIT else 90
PW_ADVANCE = {"from_days": [0, 3, 10, 30], "daily": [0.0, 0.08, 0.03, 0.005]}
PW_LAPSE = {"from_days": [0, 5, 20], "daily": [0.01, 0.004, 0.02]}
WEIBULL = {"shape": "weibull", "scale_days": 20.0, "k": 1.8, "share": 0.85}
GAMMA = {"shape": "gamma", "scale_days": 6.0, "k": 2.5}
#: the buckets of a named shape (docs/model.md, "Rates that depend on time")
SHAPE_STARTS = (0, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365)

# three cohorts, each in its own stage and alone there: nothing else acts
DWELL = {
    "format": 2,
    "name": "dwell",
    "market": {
        "customers": DWELL_N,
        "days": DWELL_DAYS,
        "seed": 41,
        "initial_stages": {"converted": 0.4, "engaged": 0.3, "subscribed": 0.3},
    },
    "segments": {"all": {"share": 1.0, "responsiveness_spread": 0.0}},
    "organic": {
        "advance": {"converted": PW_ADVANCE},
        "lapse": {"converted": PW_LAPSE, "engaged": WEIBULL, "subscribed": GAMMA},
    },
    "offers": {"entry": {"price": 1.0}, "core": {"price": 1.0}},
}


def piecewise_daily(rate: dict, days: int, scale: float = 1.0) -> np.ndarray:
    """p(d), d = 0 .. days-1: ``daily[i]`` from ``from_days[i]`` on."""
    d = np.arange(days)
    j = np.searchsorted(np.asarray(rate["from_days"]), d, side="right") - 1
    return np.minimum(np.asarray(rate["daily"])[j] * scale, 1.0)


def shape_daily(rate: dict, days: int, scale_days: float | None = None) -> np.ndarray:
    """p(d) of a named shape: constant within each bucket [lo, hi) of SHAPE_STARTS with
    ``p = 1 - (S(hi) / S(lo))^(1 / (hi - lo))``, ``S(t) = 1 - share F(t)``."""
    scale = rate["scale_days"] if scale_days is None else scale_days
    if rate["shape"] == "weibull":
        dist = stats.weibull_min(rate["k"], scale=scale)
    else:
        dist = stats.gamma(rate["k"], scale=scale)
    share = rate.get("share", 1.0)

    def S(t):
        return 1.0 - share * dist.cdf(t)

    p = np.empty(days)
    for d in range(days):
        lo = max(b for b in SHAPE_STARTS if b <= d)
        hi = min(b for b in SHAPE_STARTS if b > d)
        p[d] = 1.0 - (S(hi) / S(lo)) ** (1.0 / (hi - lo)) if S(lo) > 0 else 1.0  # nobody left to wait
    return p


def leave_law(hazards: list[np.ndarray], days: int) -> np.ndarray:
    """Competing causes with hazards ``h_r(d)``: on day ``t`` (d = t - 1) something
    happens with probability ``1 - exp(-sum h)`` and it is cause ``r`` in proportion to
    ``h_r``. Returns P(leave by cause r on day t), rows r, columns t = 1..days, and a
    last column: still there after ``days``."""
    H = np.array(hazards)
    total = H.sum(axis=0)
    out = np.zeros((len(hazards), days + 1))
    alive = 1.0
    for t in range(1, days + 1):
        d = t - 1
        if total[d] > 0:
            out[:, t - 1] = alive * -np.expm1(-total[d]) * H[:, d] / total[d]
        alive *= math.exp(-total[d])
    out[0, days] = alive
    return out


def left_on(cu, cohort: np.ndarray, exits: list[str], days: int) -> np.ndarray:
    """Observed counts in the layout of :func:`leave_law`."""
    out = np.zeros((len(exits), days + 1))
    for r, name in enumerate(exits):
        t = col(cu, name)[cohort]
        t = t[~np.isnan(t)].astype(np.int64)
        out[r, :days] = np.bincount(t, minlength=days + 1)[1:]
    out[0, days] = cohort.sum() - out.sum()
    return out


@pytest.fixture(scope="module")
def dwell_run():
    sc = scenario(DWELL)
    return cvj.run(sc, customers_table=True).tables["customers"]


def _dwell_cases(cu, off: float = 0.0):
    """(what, observed, expected) for each cohort; ``off`` perturbs the law's rates."""
    D = DWELL_DAYS
    conv, eng, sub = (col(cu, f"day_{s}") == 0 for s in ("converted", "engaged", "subscribed"))
    assert conv.sum() + eng.sum() + sub.sum() == DWELL_N
    adv = h(piecewise_daily(PW_ADVANCE, D, 1.0 + off))
    lapse = h(piecewise_daily(PW_LAPSE, D))
    return [
        ("piecewise advance and lapse (converted)", left_on(cu, conv, ["day_excited", "day_lapsed"], D),
         conv.sum() * leave_law([adv, lapse], D)),
        ("Weibull lapse (engaged)", left_on(cu, eng, ["day_lapsed"], D),
         eng.sum() * leave_law([h(shape_daily(WEIBULL, D, WEIBULL["scale_days"] * (1.0 + off)))], D)),
        ("gamma lapse (subscribed)", left_on(cu, sub, ["day_lapsed"], D),
         sub.sum() * leave_law([h(shape_daily(GAMMA, D, GAMMA["scale_days"] * (1.0 + off)))], D)),
    ]


@pytest.mark.slow
def test_time_in_stage_follows_the_dwell_profile(dwell_run):
    """Pearson chi-square of (cause, day left) + still there, per cohort: each cohort is
    one multinomial (customers are independent: nothing couples them here)."""
    for what, obs, exp in _dwell_cases(dwell_run):
        gof = report(f"dwell, {what}", chi_square_gof(obs, exp, ALPHA))
        assert gof.statistic < gof.critical, f"{what}: p = {gof.p_value:.2e}"


def test_a_shape_keeps_the_survival_of_every_bucket_exact():
    """The discretisation written above is what docs/model.md promises (survival after
    each bucket's last day d = hi - 1 is S(hi)), and it is what the compiler puts in the
    day tables' columns, d by d (so a failure of the chi-square above is the kernel's)."""
    from cvj.model import compile_scenario
    from cvj.stages import STAGE_ID

    cm = compile_scenario(scenario(dict(DWELL, market=dict(DWELL["market"], customers=100))))
    for stage, rate in (("engaged", WEIBULL), ("subscribed", GAMMA)):
        p = shape_daily(rate, 365)
        alive = np.cumprod(1.0 - p)  # after day d
        dist = stats.weibull_min(rate["k"], scale=rate["scale_days"]) if rate["shape"] == "weibull" else stats.gamma(
            rate["k"], scale=rate["scale_days"])
        for hi in SHAPE_STARTS[1:-1]:
            want = 1.0 - rate.get("share", 1.0) * dist.cdf(hi)
            np.testing.assert_allclose(alive[hi - 1], want, rtol=1e-9, atol=1e-15)
        cols = [cm.layout.column(STAGE_ID[stage], d) for d in range(365)]
        np.testing.assert_allclose(cm.lapse[0, cols], h(np.minimum(p, 1 - 1e-12)), rtol=1e-9)
    cols = [cm.layout.column(STAGE_ID["converted"], d) for d in range(DWELL_DAYS)]
    np.testing.assert_allclose(cm.organic[0, cols], h(piecewise_daily(PW_ADVANCE, DWELL_DAYS)), rtol=1e-12)
    np.testing.assert_allclose(cm.lapse[0, cols], h(piecewise_daily(PW_LAPSE, DWELL_DAYS)), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs the full population (JIT off: shrunk)")
def test_dwell_test_rejects_profiles_a_few_percent_off(dwell_run):
    """Power: the same chi-square against the piecewise advance 3% higher and the shapes'
    scale 3% longer rejects every cohort; and the law one day off (d counted from 1, the
    convention before docs/model.md fixed d = 0 on the day after) is rejected too."""
    for what, obs, exp in _dwell_cases(dwell_run, off=OFF):
        gof = report(f"dwell power ({OFF:.0%} off), {what}", chi_square_gof(obs, exp, ALPHA))
        assert gof.statistic > gof.critical, f"{what}: a {OFF:.0%} change is not rejected (p = {gof.p_value:.2e})"
    D = DWELL_DAYS
    cu = dwell_run
    conv = col(cu, "day_converted") == 0
    shifted = [h(np.r_[piecewise_daily(r, D + 1)[1:]]) for r in (PW_ADVANCE, PW_LAPSE)]
    gof = report("dwell power (one day off)", chi_square_gof(
        left_on(cu, conv, ["day_excited", "day_lapsed"], D), conv.sum() * leave_law(shifted, D), ALPHA))
    assert gof.statistic > gof.critical


# --------------------------------------------------------------------------- 2. funnel

FUNNEL_N = 5_000 if NO_JIT else 100_000
FUNNEL_DAYS = 40 if NO_JIT else 240
FUNNEL = {
    "format": 2,
    "name": "funnel",
    "age_bands": ["young", "old"],
    "market": {"customers": FUNNEL_N, "days": FUNNEL_DAYS, "seed": 8, "initial_stages": {"subscribed": 1.0}},
    "segments": {"all": {"share": 1.0, "responsiveness_spread": 0.0, "age_shares": {"young": 0.4, "old": 0.6}}},
    # conversion only of aware visitors, and nobody is aware: the channels buy and report,
    # nobody moves, only the email's unsubscribes act on the customers. (Some conversion
    # must be given: without any, a channel without funnel figures, like the retainer
    # below, is read as a format-1 push channel and reports no sessions.)
    "shop": {"conversion": {"aware": 0.3}},
    "channels": {
        "social": {"pricing": "cpm", "unit_cost": 10.0, "daily_budget": FUNNEL_N / 200, "max_units_per_person": 50.0,
                   "ctr": 0.012, "landing_rate": 0.85},
        "search": {"pricing": "cpc", "unit_cost": 1.0, "daily_budget": FUNNEL_N * 0.003, "ctr": 0.05, "landing_rate": 0.9},
        "email": {"pricing": "per_send", "unit_cost": 0.001, "daily_budget": 1000.0, "max_per_week": 3.5,
                  "open_rate": 0.2, "click_rate": 0.03, "unsubscribe_rate": 0.005, "landing_rate": 0.9},
        # probes: tiny buys whose audience counts show the permission and age-band filters
        "unsubscribed": {"pricing": "cpm", "unit_cost": 10.0, "daily_budget": 1.0, "ctr": 0.01,
                         "audience": {"stages": ["subscribed"], "permission": False}},
        "permitted": {"pricing": "cpm", "unit_cost": 10.0, "daily_budget": 1.0, "ctr": 0.01,
                      "audience": {"stages": ["subscribed"], "permission": True}},
        "young": {"pricing": "cpm", "unit_cost": 10.0, "daily_budget": 1.0, "ctr": 0.01,
                  "audience": {"stages": ["subscribed"], "age_bands": ["young"]}},
        # a retainer buys sessions: its dashboard count is Poisson about them
        "seo": {"pricing": "fixed", "monthly_cost": 500.0, "contacts_per_day": FUNNEL_N / 100},
    },
    "offers": {"entry": {"price": 1.0}, "core": {"price": 1.0}},
}


@pytest.fixture(scope="module")
def funnel_run():
    sc = scenario(FUNNEL)
    t = cvj.run(sc).tables

    def channel(name):
        r = rows_of(t["channels"], "channel", name)
        assert np.array_equal(col(r, "day"), np.arange(1, FUNNEL_DAYS + 1))
        return {k: col(r, k) for k in ("units", "spend", "audience", "impressions", "clicks", "sessions", "sends",
                                        "opens", "unsubscribes")}

    return sc, t, {name: channel(name) for name in sc.channels}


def binomial_laws(ch, off: float = 0.0):
    """(what, successes k_d, trials n_d, p) per day; ``off`` scales p. The last law is
    Poisson, not binomial: n_d is its mean (sessions bought) and p = 1."""
    s, q, e = ch["social"], ch["search"], ch["email"]
    f = 1.0 + off
    m = e["audience"]
    return [
        ("social clicks of impressions", s["clicks"], s["impressions"], 0.012 * f),
        ("social sessions of clicks", s["sessions"], s["clicks"], 0.85 * f),
        ("search sessions of clicks", q["sessions"], q["clicks"], 0.9 * f),
        ("email opens of sends", e["opens"], e["sends"], 0.2 * f),
        ("email clicks of opens", e["clicks"], e["opens"], 0.03 / 0.2 * f),
        ("email sessions of clicks", e["sessions"], e["clicks"], 0.9 * f),
        # the kernel's own events: each member unsubscribes with 1 - exp(-x u), x = sends a member
        ("unsubscribes of members", e["unsubscribes"], m, -np.expm1(-(e["units"] / m) * 0.005 * f)),
        (POISSON, ch["seo"]["sessions"], ch["seo"]["units"], 1.0 * f),
    ]


POISSON = "SEO sessions of sessions bought (Poisson)"


def variance(what, n, p):
    return n * p if what == POISSON else n * p * (1 - p)


def total_z(what, k, n, p):
    """Sum over days of k_d ~ Bin(n_d, p_d) (or Poisson(n_d p_d)), each given its n_d: a
    martingale, so the standardised total is N(0, 1) for large totals."""
    return float((k.sum() - (n * p).sum()) / math.sqrt(variance(what, n, p).sum()))


def dispersion(k, n, p, v):
    """Sum of squared standardised daily residuals ~ chi2(days) (normal approximation
    per day; every day here has a variance above 25). Returns (X2, days)."""
    return float(((k - n * p) ** 2 / v).sum()), int(k.size)


@pytest.mark.slow
def test_dashboard_figures_are_binomial_in_what_was_bought(funnel_run):
    """For each figure: its total against the binomial mean (|z| < z at ALPHA) and its
    day-to-day spread against the binomial variance (two-sided chi2(days))."""
    _sc, _t, ch = funnel_run
    for what, k, n, p in binomial_laws(ch):
        assert np.all(k == np.round(k)) and np.all(k >= 0) and (what == POISSON or np.all(k <= n)), what
        z = total_z(what, k, n, p)
        x2, df = dispersion(k, n, p, variance(what, n, p))
        lo, hi = stats.chi2.ppf(ALPHA / 2, df), stats.chi2.isf(ALPHA / 2, df)
        print(f"{what}: total {k.sum():,.0f} of {n.sum():,.0f}, z {z:+.2f} (|z| < {Z:.2f}); "
              f"dispersion X2 {x2:.1f} in [{lo:.1f}, {hi:.1f}] (df {df})")
        assert abs(z) < Z, f"{what}: z = {z:.2f}"
        assert lo < x2 < hi, f"{what}: dispersion X2 = {x2:.1f} outside [{lo:.1f}, {hi:.1f}]"


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs the full population (JIT off: shrunk)")
def test_funnel_tests_reject_rates_a_few_percent_off_and_poisson_noise(funnel_run):
    """Power: every total rejects its rate 3% higher. The dispersion test rejects Poisson
    noise (variance n p instead of n p (1 - p)) where the two differ (p >= 0.5)."""
    _sc, _t, ch = funnel_run
    for what, k, n, p in binomial_laws(ch, off=OFF):
        z = total_z(what, k, n, p)
        print(f"power: {what} with p {OFF:.0%} higher: z {z:+.2f}")
        assert abs(z) > Z, f"{what}: a {OFF:.0%} change is not rejected (z = {z:.2f})"
    for what, k, n, p in binomial_laws(ch):
        if what != POISSON and np.all(p >= 0.5):
            x2, df = dispersion(k, n, p, n * p)
            lo = stats.chi2.ppf(ALPHA / 2, df)
            print(f"power: {what} as Poisson: X2 {x2:.1f} < {lo:.1f}")
            assert x2 < lo, what


@pytest.mark.slow
def test_figures_follow_what_was_bought_exactly(funnel_run):
    """What is bought, not drawn: impressions of a CPM budget, clicks of a CPC budget and
    the impressions a CTR implies, spend = units x price."""
    sc, _t, ch = funnel_run
    s, q = ch["social"], ch["search"]
    np.testing.assert_array_equal(s["units"], sc.channels["social"].daily_budget / (10.0 / 1000))
    np.testing.assert_array_equal(s["impressions"], np.round(s["units"]))
    np.testing.assert_array_equal(q["clicks"], np.round(q["units"]))
    np.testing.assert_array_equal(q["impressions"], np.round(q["clicks"] / 0.05))
    for name in ("social", "search"):
        assert np.all(ch[name]["spend"] <= sc.channels[name].daily_budget * (1 + 1e-12))


@pytest.mark.slow
def test_email_cap_binds_and_members_are_the_permitted(funnel_run):
    """The audience of an email is everyone who may be emailed: the N who started with
    permission less the kernel's unsubscribes of earlier days. The budget buys far more
    than the cap, so sends are exactly members x max_per_week / 7 (rounded to whole
    emails), never more."""
    _sc, _t, ch = funnel_run
    e = ch["email"]
    lost = np.r_[0.0, np.cumsum(e["unsubscribes"])[:-1]]  # before each day
    np.testing.assert_array_equal(e["audience"], FUNNEL_N - lost)
    cap = e["audience"] * 3.5 / 7
    assert 1000.0 / 0.001 > cap.max()  # the budget does not bind
    np.testing.assert_array_equal(e["units"], cap)
    assert np.all(e["sends"] <= cap + 0.5) and np.all(np.abs(e["sends"] - e["units"]) <= 0.5)
    # the filters of the probes: permission lost, kept, and one age band
    np.testing.assert_array_equal(ch["unsubscribed"]["audience"], lost)
    np.testing.assert_array_equal(ch["permitted"]["audience"], FUNNEL_N - lost)


@pytest.mark.slow
def test_age_band_audience_counts_its_band(funnel_run):
    _sc, t, ch = funnel_run
    ds = t["daily_stages"]
    young = rows_of(rows_of(ds, "age_band", "young"), "stage", "subscribed")
    counts = col(young, "customers")  # days 0 .. D
    np.testing.assert_array_equal(ch["young"]["audience"], counts[:-1])
    assert 0 < counts[0] < FUNNEL_N


@pytest.mark.slow
def test_unsubscribes_match_sends_times_the_rate(funnel_run):
    """docs/model.md's dashboard reading: unsubscribes = sends x unsubscribe_rate. The
    kernel draws each member's unsubscribe with probability 1 - exp(-x u) (x = sends a
    member, u the rate), which is below x u by at most (x u)^2 / 2 a member, and sends are
    whole emails (|sends - units| <= 1/2). So the band around sends x u is the binomial
    z sd plus those two derived biases, summed over the days."""
    _sc, _t, ch = funnel_run
    e = ch["email"]
    u = 0.005
    m, x = e["audience"], e["units"] / e["audience"]
    p = -np.expm1(-x * u)
    sd = math.sqrt((m * p * (1 - p)).sum())
    bias = (m * (x * u) ** 2 / 2).sum() + (0.5 * u * np.ones_like(m)).sum()
    got, want = e["unsubscribes"].sum(), (e["sends"] * u).sum()
    band = Z * sd + bias
    print(f"unsubscribes {got:,.0f} against sends x rate {want:,.1f}, band {band:.1f} (sd {sd:.1f}, bias {bias:.1f})")
    assert abs(got - want) <= band
    if not NO_JIT:  # power: the band excludes the rate 3% higher
        print(f"power: sends x rate {OFF:.0%} higher is {abs(got - want * (1 + OFF)):.1f} away")
        assert abs(got - want * (1 + OFF)) > band


# --------------------------------------------------------------------------- 3. order numbers

ORDERS_N = 5_000 if NO_JIT else 100_000
ORDERS_DAYS = 100 if NO_JIT else 200
REPEAT = {"from_days": [0, 10, 30], "daily": [0.002, 0.03, 0.01]}
MULTIPLIERS = {"3": 1.0, "4": 1.3, "5+": 1.6}
TESTED_ORDERS = (3, 4, 5, 6)
# everyone buys the entry offer on day 1 and the core offer on day 3 (daily chance 1),
# then only repeats the core offer: order n's wait after order n - 1 has the hazard
# multiplier(n) x h(d) with the repurchase profile h of days since the previous order
ORDERS = {
    "format": 2,
    "name": "order-numbers",
    "market": {"customers": ORDERS_N, "days": ORDERS_DAYS, "seed": 23, "initial_stages": {"subscribed": 1.0}},
    "segments": {"all": {"share": 1.0, "responsiveness_spread": 0.0}},
    "organic": {"advance": {"subscribed": 1.0, "converted": 1.0, "excited": 1.0}},
    "offers": {
        "entry": {"price": 9.0},
        "core": {"price": 100.0, "repeat_rate": REPEAT, "order_multipliers": MULTIPLIERS},
    },
}


def multiplier(n: int, multipliers: dict) -> float:
    keys = list(multipliers)
    last = keys[-1]
    return multipliers[str(n)] if str(n) in multipliers else multipliers[last] if n >= int(last.rstrip("+")) else 1.0


def order_gap_law(multipliers: dict, days: int, core_day: int = 3) -> dict[int, np.ndarray]:
    """E[share of customers] whose order n came g days after order n - 1 within the
    horizon (g = 1 .. days), for each tested n. The day of order n - 1 is the sum of the
    earlier gaps (a convolution from the core order on ``core_day``)."""
    hd = h(piecewise_daily(REPEAT, days))  # hazard at d = g - 1
    when = np.zeros(days + 1)  # P(order n - 1 on day t)
    when[core_day] = 1.0
    out = {}
    for n in range(3, max(TESTED_ORDERS) + 1):
        H = multiplier(n, multipliers) * hd
        gap = np.exp(-np.r_[0.0, np.cumsum(H)[:-1]]) * -np.expm1(-H)  # P(gap = g), g = 1..days
        law = np.zeros(days)
        nxt = np.zeros(days + 1)
        for t in np.flatnonzero(when):
            g = np.arange(1, days - t + 1)
            law[g - 1] += when[t] * gap[g - 1]
            nxt[t + g] += when[t] * gap[g - 1]
        out[n] = law
        when = nxt
    return out


@pytest.fixture(scope="module")
def orders_run():
    return cvj.run(scenario(ORDERS)).tables["orders"]


def _order_counts(o, n: int) -> np.ndarray:
    """Order n by days since order n - 1 (g = 1 .. days), and last: customers without
    order n within the horizon."""
    num, gap, cnt = col(o, "order_number"), col(o, "days_since_previous"), col(o, "orders")
    obs = np.bincount(gap[num == n].astype(np.int64), weights=cnt[num == n], minlength=ORDERS_DAYS + 1)[1:]
    return np.r_[obs, ORDERS_N - obs.sum()]


def _order_law(n: int, multipliers: dict) -> np.ndarray:
    law = order_gap_law(multipliers, ORDERS_DAYS)[n]
    return np.r_[law, 1.0 - law.sum()]


def test_repeat_orders_follow_the_order_number_hazards(orders_run):
    """Per order number n, each customer places order n at most once: the gap counts
    (and "not within the horizon") are one multinomial, tested by chi-square."""
    o = orders_run
    second = o.filter(pc.equal(o.column("order_number"), 2))
    assert second.column("days_since_previous").to_pylist() == [2] and second.column("orders").to_pylist() == [ORDERS_N]
    for n in TESTED_ORDERS:
        gof = report(f"order {n} gaps", chi_square_gof(_order_counts(o, n), ORDERS_N * _order_law(n, MULTIPLIERS), ALPHA))
        assert gof.statistic < gof.critical, f"order {n}: p = {gof.p_value:.2e}"


#: the multiplier fitted from order n's gaps (the others as written)
FITTED = {3: "3", 4: "4", 5: "5+"}


def _fit_multiplier(o, n: int):
    """Maximum likelihood of order n's multiplier from its gap multinomial, with the
    likelihood-ratio statistic of any other value: 2 (l(m_hat) - l(m)) ~ chi2(1)."""
    from scipy.optimize import minimize_scalar

    key = FITTED[n]
    obs = _order_counts(o, n)

    def loglik(m):
        p = _order_law(n, dict(MULTIPLIERS, **{key: m}))
        keep = p > 0
        assert obs[~keep].sum() == 0
        return float((obs[keep] * np.log(p[keep])).sum())

    m0 = MULTIPLIERS[key]
    best = minimize_scalar(lambda m: -loglik(m), bounds=(0.8 * m0, 1.25 * m0), method="bounded",
                           options={"xatol": 1e-6 * m0})
    top = -best.fun
    return best.x, lambda m: 2.0 * (top - loglik(m))


def test_order_multipliers_fitted_from_the_orders_table(orders_run):
    """The multiplier of each order number, fitted from the orders table alone, is the
    one written: the likelihood-ratio test of the written value does not reject at
    ALPHA. So the 4th-order hazard is 1.3 times the 3rd's at equal days since the
    previous order (the printed ratio of the fits)."""
    crit = float(stats.chi2.isf(ALPHA, 1))
    fits = {}
    for n, key in FITTED.items():
        m_hat, lr = _fit_multiplier(orders_run, n)
        fits[n] = m_hat
        print(f"order {n}: multiplier fitted {m_hat:.4f} (written {MULTIPLIERS[key]}), LR {lr(MULTIPLIERS[key]):.2f} "
              f"< {crit:.2f}; LR of {OFF:.0%} more: {lr(MULTIPLIERS[key] * (1 + OFF)):.1f}")
        assert lr(MULTIPLIERS[key]) < crit, f"order {n}"
    print(f"orders: 4th / 3rd order hazard fitted {fits[4] / fits[3]:.4f} (written {MULTIPLIERS['4'] / MULTIPLIERS['3']})")


@pytest.mark.skipif(NO_JIT, reason="power needs the full population (JIT off: shrunk)")
def test_order_multiplier_test_rejects_multipliers_a_few_percent_off(orders_run):
    crit = float(stats.chi2.isf(ALPHA, 1))
    for n, key in FITTED.items():
        _, lr = _fit_multiplier(orders_run, n)
        for wrong in (MULTIPLIERS[key] * (1 - OFF), MULTIPLIERS[key] * (1 + OFF)):
            assert lr(wrong) > crit, f"order {n}: multiplier {wrong:.3f} not rejected (LR {lr(wrong):.1f})"


# --------------------------------------------------------------------------- 4. audiences

AUD_N = 3_000 if NO_JIT else 50_000
AUD_DAYS = 30 if NO_JIT else 60
NURTURE_DAYS = [0, 2, 5, 9]
AUDIENCES = {
    "format": 2,
    "name": "audiences",
    "age_bands": ["young", "old"],
    "market": {"customers": AUD_N, "days": AUD_DAYS, "seed": 31,
               "initial_stages": {"aware": 0.5, "engaged": 0.3, "subscribed": 0.2}},
    "segments": {"all": {"share": 1.0, "age_shares": {"young": 0.3, "old": 0.7}}},
    "organic": {"advance": {"aware": 0.05, "engaged": 0.02},
                "lapse": {"engaged": 0.01, "subscribed": 0.01}},
    "shop": {"conversion": {"engaged": 0.05, "subscribed": 0.2}},
    "channels": {
        "nurture": {"pricing": "per_send", "unit_cost": 0.002, "daily_budget": 1000.0, "open_rate": 0.5,
                    "click_rate": 0.1, "audience": {"stages": ["subscribed"], "days": NURTURE_DAYS}},
        "retargeting": {"pricing": "cpm", "unit_cost": 14.0, "daily_budget": 20.0, "ctr": 0.02,
                        "audience": {"stages": ["engaged"], "within_days": 14}},
        # opens only: a win-back that brings nobody back, so lapsing stays final
        "win_back": {"pricing": "per_send", "unit_cost": 0.002, "daily_budget": 1000.0, "open_rate": 0.1,
                     "audience": {"stages": ["lapsed"], "after_days": 10}},
        "young_subscribers": {"pricing": "cpm", "unit_cost": 10.0, "daily_budget": 5.0, "ctr": 0.01,
                              "audience": {"stages": ["subscribed"], "age_bands": ["young"]}},
    },
    "offers": {"entry": {"price": 9.0}, "core": {"price": 100.0}},
}


@pytest.fixture(scope="module")
def audiences_run():
    t = cvj.run(scenario(AUDIENCES), customers_table=True).tables
    return t


def _in_stage(cu, stage: str, leave: list[str], day: int) -> np.ndarray:
    """Customers in ``stage`` at the start of ``day``: entered before it and not yet left
    (every stage here is entered at most once: nothing comes back)."""
    came = col(cu, f"day_{stage}")
    inside = ~np.isnan(came) & (came < day)
    for name in leave:
        left = col(cu, name)
        inside &= np.isnan(left) | (left >= day)
    return inside


def test_audiences_count_exactly_the_customers_in_them(audiences_run):
    """For every day, each channel's audience (channels table) equals the count, from the
    customers table, of the people its audience describes; d = day - last activity - 1."""
    t = audiences_run
    cu = t["customers"]
    sub, eng, lapsed = col(cu, "day_subscribed"), col(cu, "day_engaged"), col(cu, "day_lapsed")
    young = np.asarray(cu.column("age_band").cast("string").to_pylist()) == "young"
    assert np.all(np.isnan(col(cu, "day_aware")) | (col(cu, "day_aware") == 0))  # nobody came back
    aud = {name: col(rows_of(t["channels"], "channel", name), "audience") for name in AUDIENCES["channels"]}
    sends = col(rows_of(t["channels"], "channel", "nurture"), "sends")
    for day in range(1, AUD_DAYS + 1):
        in_sub = _in_stage(cu, "subscribed", ["day_converted", "day_lapsed"], day)
        nurture = in_sub & np.isin(day - sub - 1, NURTURE_DAYS)
        in_eng = _in_stage(cu, "engaged", ["day_subscribed", "day_lapsed"], day)
        retarget = in_eng & (day - eng - 1 <= 14)
        # email needs permission: a lapsed customer has it if it subscribed before lapsing
        win_back = ~np.isnan(lapsed) & (lapsed < day) & (day - lapsed - 1 >= 10) & ~np.isnan(sub)
        want = {"nurture": nurture.sum(), "retargeting": retarget.sum(), "win_back": win_back.sum(),
                "young_subscribers": (in_sub & young).sum()}
        got = {name: aud[name][day - 1] for name in want}
        assert got == want, f"day {day}"
        # a nurture email goes to every member (the budget buys more than one a member)
        assert sends[day - 1] == nurture.sum(), f"day {day}"
    # the law is not empty: every audience had members
    assert all(aud[name].max() > 0 for name in aud)


AFF_N = 20_000 if NO_JIT else 1_000_000
AFF_DAYS = 20 if NO_JIT else 30
AFF_SEGMENT = {"A": 1.0, "B": 0.5}
AFF_BAND = {"young": 1.5, "old": 0.6}
AFF_CONVERSION = 0.3
AFF_X = 0.2  # sessions bought a day per audience member (everyone)
AFFINITY = {
    "format": 2,
    "name": "band-affinity",
    "age_bands": ["young", "old"],
    "market": {"customers": AFF_N, "days": AFF_DAYS, "seed": 59, "initial_stages": {"aware": 1.0}},
    "segments": {
        "A": {"share": 0.5, "responsiveness_spread": 0.0, "age_shares": {"young": 0.6, "old": 0.4}},
        "B": {"share": 0.5, "responsiveness_spread": 0.0, "age_shares": {"young": 0.3, "old": 0.7}},
    },
    "shop": {"conversion": {"aware": AFF_CONVERSION}},
    "channels": {
        "seo": {"pricing": "fixed", "monthly_cost": 1000.0, "contacts_per_day": AFF_X * AFF_N, "saturation": 1.0,
                "affinity": AFF_SEGMENT, "band_affinity": AFF_BAND},
    },
    "offers": {"entry": {"price": 9.0}, "core": {"price": 100.0}},
}


@pytest.fixture(scope="module")
def affinity_run():
    sc = scenario(AFFINITY)
    ds = cvj.run(sc).tables["daily_stages"]
    aware = {}
    for g in sc.segments:
        for b in sc.age_bands:
            r = rows_of(rows_of(rows_of(ds, "segment", g), "age_band", b), "stage", "aware")
            aware[g, b] = col(r, "customers")  # days 0 .. D
    return aware


def _affinity_x2(aware, band=AFF_BAND):
    """Each (segment, band) leaves aware only for engaged, at the constant daily hazard
    contacts x affinity x band affinity x conversion (docs/model.md), contacts =
    saturation (1 - exp(-x / saturation)); the day it leaves is geometric. Independent
    multinomials: the chi-squares and their df add up."""
    contacts = 1.0 - math.exp(-AFF_X)
    x2, df = 0.0, 0
    for (g, b), a in aware.items():
        lam = contacts * AFF_SEGMENT[g] * band[b] * AFF_CONVERSION
        t = np.arange(1, AFF_DAYS + 1)
        law = np.r_[np.exp(-lam * (t - 1)) * -math.expm1(-lam), math.exp(-lam * AFF_DAYS)]
        obs = np.r_[a[:-1] - a[1:], a[-1]]
        gof = chi_square_gof(obs, a[0] * law, ALPHA)
        x2, df = x2 + gof.statistic, df + gof.df
    return x2, df, float(stats.chi2.isf(ALPHA, df))


@pytest.mark.slow
def test_band_and_segment_affinity_scale_the_channel_hazard(affinity_run):
    x2, df, crit = _affinity_x2(affinity_run)
    print(f"affinity: X2 {x2:.1f}, df {df}, critical {crit:.1f} at {ALPHA:.1e}")
    assert x2 < crit


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs the full population (JIT off: shrunk)")
def test_affinity_test_rejects_a_band_affinity_a_few_percent_off(affinity_run):
    x2, df, crit = _affinity_x2(affinity_run, dict(AFF_BAND, young=AFF_BAND["young"] * (1 + OFF)))
    print(f"affinity power (young {OFF:.0%} higher): X2 {x2:.1f}, df {df}, critical {crit:.1f}")
    assert x2 > crit


# --------------------------------------------------------------------------- 5. calendar

CAL_N = 20_000 if NO_JIT else 1_000_000
CAL_DAYS = 40 if NO_JIT else 100
CAL_START = date(2026, 11, 2)  # a Monday
WEEKDAY = {"mon": 1.2, "tue": 1.1, "wed": 1.0, "thu": 0.95, "fri": 0.9, "sat": 0.8, "sun": 0.85}
EVENT = {"name": "Black Friday weekend", "start": date(2026, 11, 27), "end": date(2026, 11, 30), "lift": 2.5}
P_REPEAT, P_ENTRY, P_ENGAGE = 0.01, 0.02, 0.03
CALENDAR = {
    "format": 2,
    "name": "calendar",
    "start_date": CAL_START,
    "market": {"customers": CAL_N, "days": CAL_DAYS, "seed": 73,
               "initial_stages": {"aware": 0.2, "subscribed": 0.3, "ascended": 0.5}},
    "segments": {"all": {"share": 1.0, "responsiveness_spread": 0.0}},
    "organic": {"advance": {"aware": P_ENGAGE, "subscribed": P_ENTRY}},
    "calendar": {"weekday": WEEKDAY, "events": [EVENT]},
    "offers": {"entry": {"price": 9.0}, "core": {"price": 100.0, "repeat_rate": P_REPEAT}},
}


def calendar_factor(days: int, weekday=WEEKDAY, lift=EVENT["lift"]) -> np.ndarray:
    """The multiplier of day t = 1..days (date = start + t - 1)."""
    names = list(WEEKDAY)
    out = np.empty(days)
    for t in range(1, days + 1):
        d = CAL_START + timedelta(days=t - 1)
        out[t - 1] = weekday[names[d.weekday()]] * (lift if EVENT["start"] <= d <= EVENT["end"] else 1.0)
    return out


@pytest.fixture(scope="module")
def calendar_run():
    t = cvj.run(scenario(CALENDAR)).tables
    fin = t["finance"]
    ds = t["daily_stages"]
    tr = t["transitions"]
    engaged = np.zeros(CAL_DAYS)
    moves = rows_of(rows_of(tr, "from_stage", "aware"), "to_stage", "engaged")
    np.add.at(engaged, col(moves, "day").astype(np.int64) - 1, col(moves, "customers"))
    return {
        "repeat": col(rows_of(fin, "item", "core"), "units"),  # days 1 .. D
        "entry": col(rows_of(fin, "item", "entry"), "units"),
        "engaged": engaged,
        "ascended": col(rows_of(ds, "stage", "ascended"), "customers"),  # days 0 .. D
        "subscribed": col(rows_of(ds, "stage", "subscribed"), "customers"),
        "aware": col(rows_of(ds, "stage", "aware"), "customers"),
    }


def _calendar_x2(k, n, p, cal):
    """Days grouped by their calendar multiplier: the count of each group against its
    expectation, sum (O - E)^2 / V ~ chi2(groups), each day given yesterday's stage count."""
    groups = np.unique(np.round(cal, 12), return_inverse=True)[1]
    G = groups.max() + 1
    O, E, V = (np.bincount(groups, weights=w, minlength=G) for w in (k, n * p, n * p * (1 - p)))
    x2 = float(((O - E) ** 2 / V).sum())
    return x2, G, float(stats.chi2.isf(ALPHA, G))


def _calendar_cases(run, weekday=WEEKDAY, lift=EVENT["lift"], engage_cal=False):
    cal = calendar_factor(CAL_DAYS, weekday, lift)
    return cal, [
        ("repeat purchases", run["repeat"], run["ascended"][:-1], -np.expm1(-h(P_REPEAT) * cal)),
        ("entry purchases", run["entry"], run["subscribed"][:-1], -np.expm1(-h(P_ENTRY) * cal)),
        ("aware -> engaged (not a purchase)", run["engaged"], run["aware"][:-1],
         -np.expm1(-h(P_ENGAGE) * (cal if engage_cal else 1.0))),
    ]


@pytest.mark.slow
def test_calendar_scales_purchase_hazards_and_nothing_else(calendar_run):
    assert np.all(calendar_run["ascended"] == calendar_run["ascended"][0])  # repeat buyers stay
    cal, cases = _calendar_cases(calendar_run)
    for what, k, n, p in cases:
        x2, G, crit = _calendar_x2(k, n, p, cal)
        print(f"calendar, {what}: X2 {x2:.1f}, df {G}, critical {crit:.1f} at {ALPHA:.1e}")
        assert x2 < crit, what


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs the full population (JIT off: shrunk)")
def test_calendar_test_rejects_a_lift_a_few_percent_off(calendar_run):
    """Power: the event's lift 3% higher (repeat purchases), Saturday's factor 3% higher
    (entry purchases), and the calendar applied to a move that is not a purchase."""
    cal, cases = _calendar_cases(calendar_run, lift=EVENT["lift"] * (1 + OFF))
    x2, _, crit = _calendar_x2(*cases[0][1:], cal)
    print(f"calendar power, repeat purchases with the lift {OFF:.0%} higher: X2 {x2:.1f}, critical {crit:.1f}")
    assert x2 > crit
    sat = dict(WEEKDAY, sat=WEEKDAY["sat"] * (1 + OFF))
    cal, cases = _calendar_cases(calendar_run, weekday=sat)
    x2, _, crit = _calendar_x2(*cases[1][1:], cal)
    print(f"calendar power, entry purchases with Saturday {OFF:.0%} higher: X2 {x2:.1f}, critical {crit:.1f}")
    assert x2 > crit
    cal, cases = _calendar_cases(calendar_run, engage_cal=True)
    x2, _, crit = _calendar_x2(*cases[2][1:], cal)
    print(f"calendar power, the calendar applied to aware -> engaged: X2 {x2:.1f}, critical {crit:.1f}")
    assert x2 > crit


# --------------------------------------------------------------------------- 6. upgrade

SCENARIOS = ROOT / "scenarios"
SMALL = {"market.customers": 3_000 if NO_JIT else 20_000, "market.days": 10 if NO_JIT else 30}


def cvj_cli(*args):
    return subprocess.run([sys.executable, "-m", "cvj", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def assert_same_tables(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].num_rows > 0 or name == "orders", name  # orders: only with repeat buyers
        assert a[name].equals(b[name]), f"table {name} differs"


def test_every_shipped_format1_file_loads():
    """Format-1 scenarios load (upgraded), and every variant of the shipped studies
    (format-1 study documents) validates."""
    from cvj.study import load_study

    shipped = sorted(SCENARIOS.glob("*.toml"))
    seen = 0
    for path in shipped:
        raw = read_toml(path)
        if raw.get("format") != 1:
            continue
        seen += 1
        if "observed" in raw:  # a calibration: its base scenario and observed data load
            from cvj.calibrate import load_calibration

            assert load_calibration(path).scenario.format == 2
        elif "scenario" in raw:  # a study
            st = load_study(path)
            assert st.variants and all(v.scenario.format == 2 for v in st.variants.values())
        else:
            assert cvj.load_scenario(path).format == 2
    assert seen >= 3


@pytest.mark.slow
def test_cvj_upgrade_writes_a_file_with_identical_tables(tmp_path):
    old = SCENARIOS / "handbag_shop_format1.toml"
    new = tmp_path / "shop.toml"
    p = cvj_cli("upgrade", old, "--out", new)
    assert p.returncode == 0, p.stderr
    before, after = old.read_text().splitlines(), new.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and changed == [("format = 1", "format = 2")]  # comments kept
    a, b = cvj.load_scenario(old, SMALL), cvj.load_scenario(new, SMALL)
    assert a.canonical_json() == b.canonical_json()
    assert_same_tables(cvj.run(a, customers_table=True).tables, cvj.run(b, customers_table=True).tables)
    # the format-2 file is left as it is
    assert cvj_cli("upgrade", new).stdout == new.read_text()


FORMAT1 = """format = 1
name = "old-shop"
{top}
[market]
customers = 20000
days = 30
{market}
initial_stages = {{ unaware = 0.6, aware = 0.2, subscribed = 0.2 }}
[organic.advance]
aware = 0.05
subscribed = 0.01
[referrals.rates]
subscribed = 0.01
[channels.social]
pricing = "cpm"
unit_cost = 10.0
daily_budget = 100.0
pushes = {{ "unaware->aware" = 0.01 }}
{extra}
[channels.partners]
pricing = "commission"
commission = 5.0
pushes = {{ {partner_pushes} }}
[offers.entry]
price = 9.0
[offers.core]
price = 100.0
"""


def format1(**parts) -> str:
    """The format-1 file above with text added at ``top``, in ``market``, in the social
    channel (``extra``), and the referral programme's pushes."""
    return FORMAT1.format(**{"top": "", "market": "", "extra": "", "partner_pushes": '"advocate->promoter" = 0.1', **parts})


@pytest.mark.parametrize(
    "part, text, where",
    [("extra", "ctr = 0.01", "channels.social.ctr"), ("extra", "audience = { size = 500 }", "channels.social.audience"),
     ("extra", 'band_affinity = { "18-24" = 1.2 }', "channels.social.band_affinity"),
     ("top", "start_date = 2026-01-05", "start_date")],
    # (market.sample is allowed in a format-1 file: it changes how many customers are
    # simulated, not the business, and `cvj run --sample` works on any file)
)
def test_a_format2_key_in_a_format1_file_is_refused(tmp_path, part, text, where):
    path = tmp_path / "old.toml"
    path.write_text(format1(**{part: text}))
    with pytest.raises(ScenarioError) as info:
        cvj.load_scenario(path)
    assert info.value.path == where and "format = 2" in str(info.value) and "\n" not in str(info.value)


def test_cvj_refuses_a_format2_key_in_a_format1_file_in_one_line(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text(format1(extra="ctr = 0.01"))
    for command in ("validate", "upgrade"):
        p = cvj_cli(command, path)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert lines[0].startswith("error: ") and "channels.social.ctr = 0.01" in lines[0] and "format = 2" in lines[0]
        assert p.stdout == ""


def test_a_referral_push_before_advocate_becomes_an_organic_advance(tmp_path):
    """The upgrade moves ``subscribed->converted`` of a commission programme into
    organic.advance.subscribed, combined as independent chances: 1 - (1 - 0.01)(1 - 0.05).
    The result equals the file with the push moved by hand, table for table."""
    old = tmp_path / "old.toml"
    old.write_text(format1(partner_pushes='"subscribed->converted" = 0.05, "advocate->promoter" = 0.1'))
    moved = 1.0 - (1.0 - 0.01) * (1.0 - 0.05)
    by_hand = tmp_path / "by_hand.toml"
    by_hand.write_text(
        format1()
        .replace("format = 1", "format = 2")
        .replace("subscribed = 0.01\n[referrals", f"subscribed = {moved!r}\n[referrals")
    )
    a, b = cvj.load_scenario(old, SMALL), cvj.load_scenario(by_hand, SMALL)
    assert a.organic.advance["subscribed"] == moved and "subscribed->converted" not in a.channels["partners"].pushes
    assert a.canonical_json() == b.canonical_json()
    ta, tb = cvj.run(a, customers_table=True).tables, cvj.run(b, customers_table=True).tables
    assert_same_tables(ta, tb)
    conv = rows_of(rows_of(ta["transitions"], "from_stage", "subscribed"), "to_stage", "converted")
    assert set(conv.column("cause").cast("string").to_pylist()) == {"organic"}
    # cvj upgrade will not rewrite it silently: the file must be edited by hand
    p = cvj_cli("upgrade", old)
    assert p.returncode == 2 and "channels.partners.pushes" in p.stderr and len(p.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- 7. CRN


def test_a_variant_that_changes_only_money_shares_every_draw():
    """Common random numbers on the format-2 default (memory, audiences, funnels; repeat
    orders made frequent): a variant with another unit cost of the core offer runs the
    same customers through the same journeys; only the cost column of the finance table
    (and the summary) differ."""
    over = {**SMALL, "offers.core.repeat_rate": 0.02,
            "market.initial_stages": {"unaware": 0.85, "aware": 0.05, "subscribed": 0.05, "ascended": 0.05}}
    a = cvj.run(cvj.load_scenario(None, over), customers_table=True).tables
    b = cvj.run(cvj.load_scenario(None, dict(over, **{"offers.core.unit_cost": 70.0})), customers_table=True).tables
    for name in a:
        if name not in ("finance", "summary"):
            assert a[name].equals(b[name]), name
    fa, fb = a["finance"], b["finance"]
    for c in fa.column_names:
        if c != "cost":
            assert fa.column(c).equals(fb.column(c)), c
    core = rows_of(fa, "item", "core")
    assert col(core, "units").sum() > 0 and not fa.column("cost").equals(fb.column("cost"))

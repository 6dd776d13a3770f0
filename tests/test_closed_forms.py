"""Closed forms the kernel must reproduce: a Markov chain, Bass diffusion, money identities.

1. With referrals off and channel exposure constant (CPM without carry-over, a
   commission channel), every (segment, responsiveness level) subpopulation is a
   time-homogeneous Markov chain on the ten stages. Its one-day matrix is built here
   from docs/model.md, checked against ``cvj.model.daily_transition_matrix``, and the
   kernel's ``daily_stages`` are tested against ``p0 . P^t`` on several days.
2. With only word of mouth on, the aware share follows the discrete-time Bass
   recursion ``F' = F + (1 - F)(1 - exp(-(h_p + q F)))``.
3. Money: spend within budget, spend = units x price per pricing model, revenue and
   cost = units x price / unit cost, profit = revenue - cost - spend, and every KPI in
   ``summary`` recomputed from the other tables.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pyarrow.compute as pc
import pytest

import cvj
from cvj.engine import Engine
from cvj.model import (
    channel_reach,
    compile_scenario,
    daily_transition_matrix,
    day_tables,
)
from cvj.stages import (
    AWARE,
    EXCITED,
    LAPSED,
    N_STAGES,
    PROMOTER,
    STAGE_ID,
    SUBSCRIBED,
    UNAWARE,
)
from tests.stat_checks import (
    NO_JIT,
    assert_money_adds_up,
    chi_square_gof,
    per_test_alpha,
    scenario,
    two_sided_z,
)

# --------------------------------------------------------------------------- 1. Markov chain

MARKOV_CUSTOMERS = 20_000 if NO_JIT else 1_000_000
MARKOV_DAYS = 60
MARKOV_CHECK_DAYS = (1, 3, 10, 30, 60)

MARKOV = {
    "format": 1,
    "name": "markov",
    "market": {
        "customers": MARKOV_CUSTOMERS,
        "days": MARKOV_DAYS,
        "seed": 17,
        "initial_stages": {
            "unaware": 0.55,
            "aware": 0.15,
            "engaged": 0.1,
            "subscribed": 0.08,
            "converted": 0.05,
            "excited": 0.03,
            "ascended": 0.02,
            "advocate": 0.01,
            "lapsed": 0.01,
        },
    },
    "segments": {
        "fast": {"share": 0.55, "responsiveness_spread": 0.9, "price_sensitivity": 1.5},
        "slow": {
            "share": 0.45,
            "responsiveness_spread": 0.3,
            "advance_multiplier": 0.6,
            "lapse_multiplier": 1.5,
            "price_sensitivity": 0.4,
        },
    },
    "organic": {
        "advance": {
            "unaware": 0.01,
            "aware": 0.06,
            "engaged": 0.05,
            "subscribed": 0.08,
            "converted": 0.07,
            "excited": 0.05,
            "ascended": 0.04,
            "advocate": 0.03,
        },
        "lapse": {"aware": 0.03, "engaged": 0.02, "subscribed": 0.01, "converted": 0.01, "promoter": 0.01},
        "reactivation": 0.04,
    },
    "channels": {
        # carry-over 0 and a fixed audience: the same contacts, hence the same
        # response, every day (constant exposure)
        "ads": {
            "pricing": "cpm",
            "unit_cost": 10.0,
            "daily_budget": 600.0 * MARKOV_CUSTOMERS / 400_000,
            "audience": MARKOV_CUSTOMERS // 2,
            "saturation": 0.5,
            "affinity": {"slow": 0.4},
            "pushes": {"unaware->aware": 0.05, "aware->engaged": 0.1},
        },
        "programme": {"pricing": "commission", "commission": 5.0, "pushes": {"advocate->promoter": 0.06}},
    },
    "offers": {
        "entry": {"price": 20.0, "unit_cost": 5.0, "price_sensitivity": 0.02},
        "core": {"price": 100.0, "unit_cost": 40.0, "price_sensitivity": 0.004, "repeat_rate": 0.02},
        "upsells": {"strap": {"price": 30.0, "take_rate": 0.01}},
    },
}


def _h(p):
    return -math.log1p(-min(p, 1.0 - 1e-12))


def spec_matrix(sc, g: int, level: int) -> np.ndarray:
    """One-day transition matrix of (segment g, level) written from docs/model.md.

    Only valid for scenarios without referrals whose channels are CPM/CPC/fixed without
    carry-over or commission (constant exposure).
    """
    seg = list(sc.segments.values())[g]
    seg_name = list(sc.segments)[g]
    N = sc.market.customers
    nd = NormalDist()
    raw = [math.exp(seg.responsiveness_spread * nd.inv_cdf((j + 0.5) / 16)) for j in range(16)]
    r = raw[level] / (sum(raw) / 16)
    adv = np.zeros(N_STAGES)
    for name, p in sc.organic.advance.items():
        adv[STAGE_ID[name]] += seg.advance_multiplier * _h(p)
    adv[LAPSED] += seg.advance_multiplier * _h(sc.organic.reactivation)
    for ch in sc.channels.values():
        if ch.pricing == "commission":
            strength = 1.0
        else:
            assert ch.pricing == "cpm" and ch.carryover == 0
            a = ch.audience or N
            units = min(ch.daily_budget / (ch.unit_cost / 1000), a * ch.max_units_per_person)
            strength = (1 - math.exp(-(units / a) / ch.saturation)) * min(1.0, a / N)
        for key, p in ch.pushes.items():
            s = STAGE_ID[key.split("->")[0]]
            adv[s] += _h(p * ch.affinity.get(seg_name, 1.0) * strength)
    adv[PROMOTER] = 0.0
    off = sc.offers
    take = np.ones(N_STAGES)
    take[SUBSCRIBED] = math.exp(-off.entry.price_sensitivity * seg.price_sensitivity * off.entry.price)
    take[EXCITED] = math.exp(-off.core.price_sensitivity * seg.price_sensitivity * off.core.price)
    lapse = np.zeros(N_STAGES)
    for name, p in sc.organic.lapse.items():
        lapse[STAGE_ID[name]] = seg.lapse_multiplier * _h(p)
    repeat = sum(_h(x) for x in [off.core.repeat_rate, *(u.take_rate for u in off.upsells.values())] if x > 0)
    P = np.zeros((N_STAGES, N_STAGES))
    for s in range(N_STAGES):
        A = r * take[s] * adv[s]
        L = lapse[s]
        Q = repeat if s in (6, 7, 8) else 0.0
        T = A + L + Q
        pe = 1 - math.exp(-T)
        if T > 0:
            P[s, AWARE if s == LAPSED else min(s + 1, PROMOTER)] += pe * A / T
            P[s, LAPSED] += pe * L / T
        P[s, s] += 1 - (pe * (A + L) / T if T > 0 else 0.0)  # a repeat purchase stays
    return P


@pytest.fixture(scope="module")
def markov_run():
    sc = scenario(MARKOV)
    cm = compile_scenario(sc)
    e0 = Engine(cm, replication=0)
    res = cvj.run(sc, replications=[0])
    return sc, cm, e0, res


def _kernel_matrices(cm, e0):
    reach = channel_reach(cm, e0.counts, np.zeros(cm.n_channels), cm.budget[1])
    tables = day_tables(cm, e0.counts, reach)
    return {(g, l): daily_transition_matrix(cm, g, l, tables) for g in range(cm.n_segments) for l in range(16)}


def test_kernel_day_tables_match_the_specification(markov_run):
    """The kernel's one-day law equals the matrix written from docs/model.md.

    The kernel's event test compares 32 random bits with floor(p * 2^32), so each
    probability may be lower by < 2^-32 (and the 53-bit choice draw adds < 2^-52):
    the tolerance is 2 * 2^-32 per entry."""
    sc, cm, e0, _ = markov_run
    tol = 2 * 2.0**-32
    mats = _kernel_matrices(cm, e0)
    for (g, l), P in mats.items():
        Q = spec_matrix(sc, g, l)
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(P, Q, rtol=0, atol=tol, err_msg=f"segment {g} level {l}")
    # the day tables do not change from day to day here (constant exposure)
    e = Engine(cm, replication=0)
    for _ in range(3):
        e.step()
    reach = channel_reach(cm, e.counts, e.stock, cm.budget[e.day + 1])
    later = day_tables(cm, e.counts, reach)
    first = day_tables(cm, e0.counts, channel_reach(cm, e0.counts, np.zeros(cm.n_channels), cm.budget[1]))
    np.testing.assert_array_equal(later.thr, first.thr)


def _expected_counts(cm, e0, mats, t, perturb=None):
    """E[customers by (segment, stage) on day t] = sum over levels of n0[g, l] . P_gl^t,
    with n0 the exact day-0 counts of each (segment, level, stage)."""
    G = cm.n_segments
    g_of = (e0.profile >> 4).astype(np.int64)
    l_of = (e0.profile & 15).astype(np.int64)
    n0 = np.bincount((g_of * 16 + l_of) * N_STAGES + e0.stage, minlength=G * 16 * N_STAGES)
    n0 = n0.reshape(G, 16, N_STAGES).astype(np.float64)
    out = np.zeros((G, N_STAGES))
    for (g, l), P in mats.items():
        if perturb is not None:
            P = perturb(P)
        out[g] += n0[g, l] @ np.linalg.matrix_power(P, t)
    return out


def _observed(res, t, G):
    ds = res.tables["daily_stages"]
    day = ds.filter(pc.equal(ds["day"], t))
    return np.asarray(day["customers"].to_numpy()).reshape(G, N_STAGES)


@pytest.mark.slow
def test_daily_stages_follow_the_markov_chain(markov_run):
    """Chi-square goodness of fit of daily_stages against p0 . P^t on each checked day.

    Customers are independent here, so on day t the count of segment g in stage s is a
    sum over (level, starting stage) of independent multinomials; its variance is at
    most the multinomial variance with the pooled probabilities, so Pearson's X^2 with
    df = cells - 1 is (slightly) conservative. Bonferroni over the checked days.
    """
    _sc, cm, e0, res = markov_run
    mats = _kernel_matrices(cm, e0)
    G = cm.n_segments
    alpha = per_test_alpha(len(MARKOV_CHECK_DAYS))
    np.testing.assert_array_equal(_observed(res, 0, G), e0.counts)
    for t in MARKOV_CHECK_DAYS:
        gof = chi_square_gof(_observed(res, t, G), _expected_counts(cm, e0, mats, t), alpha)
        print(f"Markov day {t}: X2 {gof.statistic:.1f}, df {gof.df}, critical {gof.critical:.1f}, p {gof.p_value:.3f}")
        assert gof.statistic < gof.critical, (
            f"day {t}: X2 = {gof.statistic:.1f} > chi2({gof.df}) quantile {gof.critical:.1f} "
            f"at {alpha:.1e} (p = {gof.p_value:.2e})"
        )


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs the full population (JIT off: shrunk)")
def test_markov_test_rejects_a_three_percent_change(markov_run):
    """Power: the same chi-square family rejects when the expected counts come from a
    chain whose unaware -> aware probability is 3% higher (relative). At 10^6
    customers the non-centrality on day 60 is about 130 (df 19, critical value 51.6 at
    2e-4), so the power is ~1."""
    _sc, cm, e0, res = markov_run
    mats = _kernel_matrices(cm, e0)
    G = cm.n_segments
    alpha = per_test_alpha(len(MARKOV_CHECK_DAYS))

    def bump(P):
        P = P.copy()
        d = 0.03 * P[UNAWARE, AWARE]
        P[UNAWARE, AWARE] += d
        P[UNAWARE, UNAWARE] -= d
        return P

    pvals = []
    for t in MARKOV_CHECK_DAYS:
        gof = chi_square_gof(_observed(res, t, G), _expected_counts(cm, e0, mats, t, bump), alpha)
        pvals.append(gof.p_value)
    print(f"Markov power check: p-values by day {dict(zip(MARKOV_CHECK_DAYS, pvals))}")
    assert min(pvals) < alpha, f"no rejection of a 3% change: p-values {pvals}"


# --------------------------------------------------------------------------- 2. Bass diffusion

BASS_CUSTOMERS = 20_000 if NO_JIT else 1_000_000
BASS_DAYS = 60
BASS_P, BASS_Q = 0.002, 0.25
BASS_CHECK_DAYS = tuple(range(5, BASS_DAYS + 1, 5))

BASS = {
    "format": 1,
    "name": "bass",
    "market": {"customers": BASS_CUSTOMERS, "days": BASS_DAYS, "seed": 5},
    "segments": {"all": {"share": 1.0, "responsiveness_spread": 0.0}},
    "organic": {"advance": {"unaware": BASS_P}},
    "referrals": {"rates": {"aware": BASS_Q}},
    "offers": {"entry": {"price": 1.0}, "core": {"price": 1.0}},
}


def bass_mean_field(q: float, F0: float, days: int, N: int):
    """Mean-field path F_t and the tolerance band half-width for the simulated share.

    Each day X_{t+1} = X_t + B_t with B_t ~ Binomial(N - X_t, pi(F_t)), pi(F) =
    1 - exp(-(h_p + q F)) (the referral hazard is q F, F read at the end of yesterday).
    The mean-field map is f(F) = F + (1 - F) pi(F). Write e_t = F_sim - F_mf:

        e_{t+1} = f'(F_t) e_t + 1/2 f''(xi) e_t^2 + eps_t,
        sd(eps_t) = sqrt((1 - F_t) pi_t (1 - pi_t) / N)     (binomial sd per step).

    The first-order part propagates the variance exactly:
    V_{t+1} = f'(F_t)^2 V_t + sd(eps_t)^2; the second-order part is a bias of at most
    b_{t+1} = f' b_t + 1/2 max|f''| V_t. V is O(1/N) and b is O(1/N), so the band
    z * sqrt(V_t) + b_t is O(1/sqrt(N)) and the neglected third-order terms are
    O(N^-3/2). A propagated bound is fine (and needed): errors made early are carried
    by f' (about 1 - pi + q(1 - F) e^-(...), bounded by 1 + q), so a per-step sd alone
    would understate the spread of F_t; the recursion carries them forward exactly to
    first order, and 60 days is far too short for the O(1/N) terms to matter.
    """
    hp = -math.log1p(-BASS_P)
    F = [F0]
    V = [0.0]
    b = [0.0]
    # |f''| <= 2 q + q^2 (differentiate (1 - F)(1 - exp(-(hp + qF))) twice, exp <= 1)
    f2 = 2 * q + q * q
    for _ in range(days):
        Ft = F[-1]
        pi = 1 - math.exp(-(hp + q * Ft))
        fprime = 1 - pi + (1 - Ft) * q * math.exp(-(hp + q * Ft))
        F.append(Ft + (1 - Ft) * pi)
        V.append(fprime**2 * V[-1] + (1 - Ft) * pi * (1 - pi) / N)
        b.append(abs(fprime) * b[-1] + 0.5 * f2 * V[-2])
    return np.array(F), np.sqrt(np.array(V)), np.array(b)


@pytest.fixture(scope="module")
def bass_run():
    sc = scenario(BASS)
    res = cvj.run(sc, replications=[0])
    ds = res.tables["daily_stages"]
    st = np.asarray(ds["customers"].to_numpy()).reshape(BASS_DAYS + 1, 1, N_STAGES)[:, 0]
    return sc, st


@pytest.mark.slow
def test_aware_share_follows_the_bass_recursion(bass_run):
    sc, st = bass_run
    N = sc.market.customers
    F_sim = st[:, AWARE:].sum(axis=1) / N
    assert st[:, AWARE + 1 :].sum() == 0  # aware is absorbing here
    F, sd, bias = bass_mean_field(BASS_Q, F_sim[0], BASS_DAYS, N)
    z = two_sided_z(per_test_alpha(len(BASS_CHECK_DAYS)))
    for t in BASS_CHECK_DAYS:
        tol = z * sd[t] + bias[t]
        print(f"Bass day {t}: F_sim {F_sim[t]:.5f}, F_mf {F[t]:.5f}, tolerance {tol:.5f}")
        assert abs(F_sim[t] - F[t]) <= tol, f"day {t}: F_sim {F_sim[t]:.5f} vs Bass {F[t]:.5f} +- {tol:.5f}"
    assert F_sim[-1] > 0.5  # the loop really took off (the test is about the referral term)


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs the full population (JIT off: shrunk)")
def test_bass_band_rejects_a_three_percent_change_in_q(bass_run):
    """Power: the same band around the recursion with q 3% higher excludes the run."""
    sc, st = bass_run
    N = sc.market.customers
    F_sim = st[:, AWARE:].sum(axis=1) / N
    z = two_sided_z(per_test_alpha(len(BASS_CHECK_DAYS)))
    F, sd, bias = bass_mean_field(1.03 * BASS_Q, F_sim[0], BASS_DAYS, N)
    outside = [t for t in BASS_CHECK_DAYS if abs(F_sim[t] - F[t]) > z * sd[t] + bias[t]]
    print(f"Bass power check: days outside the band with 1.03 q: {outside}")
    assert outside, "the band cannot tell q from 1.03 q"


# --------------------------------------------------------------------------- 3. money


@pytest.mark.slow
def test_money_identities_on_the_default_scenario():
    """The bundled default (full market, a year) with the customers table."""
    N = 50_000 if NO_JIT else 1_000_000
    D = 60 if NO_JIT else 365
    sc = cvj.load_scenario(overrides={"market.customers": N, "market.days": D})
    res = cvj.run(sc, customers_table=True)
    assert_money_adds_up(sc, res.tables)
    row = res.tables["summary"].to_pylist()[0]
    assert row["conversions"] > 0 and row["spend"] > 0


def test_money_identities_with_payback_and_schedules():
    """A small profitable shop: payback is reached; schedules change budgets; budgets bind."""
    raw = {
        "format": 1,
        "name": "profitable",
        "market": {"customers": 30_000, "days": 90, "seed": 3, "initial_stages": {"unaware": 0.8, "engaged": 0.2}},
        "organic": {"advance": {"engaged": 0.05, "subscribed": 0.05, "converted": 0.1, "excited": 0.05}},
        "referrals": {"rates": {"ascended": 0.05}},
        "channels": {
            "social": {
                "pricing": "cpm",
                "unit_cost": 8.0,
                "daily_budget": 50.0,
                "carryover": 0.4,
                "schedule": [{"from_day": 20, "to_day": 40, "daily_budget": 400.0}],
                "pushes": {"unaware->aware": 0.05},
            },
            "search": {"pricing": "cpc", "unit_cost": 0.5, "daily_budget": 5000.0, "audience": 1000,
                       "pushes": {"aware->engaged": 0.2}},
            "mail": {"pricing": "per_send", "unit_cost": 0.01, "daily_budget": 30.0,
                     "pushes": {"subscribed->converted": 0.1}},
            "seo": {"pricing": "fixed", "monthly_cost": 300.0, "contacts_per_day": 500.0, "carryover": 0.9,
                    "schedule": [{"from_day": 50, "to_day": 90, "monthly_cost": 600.0}],
                    "pushes": {"unaware->aware": 0.02}},
            "refer": {"pricing": "commission", "commission": 3.0, "pushes": {"ascended->advocate": 0.05}},
        },
        "offers": {
            "lead_magnet": {"unit_cost": 0.1},
            "entry": {"price": 15.0, "unit_cost": 5.0},
            "core": {"price": 90.0, "unit_cost": 30.0, "repeat_rate": 0.01},
            "upsells": {"strap": {"price": 20.0, "unit_cost": 4.0, "take_rate": 0.01}},
        },
    }
    sc = scenario(raw)
    res = cvj.run(sc, customers_table=True)
    assert_money_adds_up(sc, res.tables)
    row = res.tables["summary"].to_pylist()[0]
    assert row["payback_day"] is not None
    fin = res.tables["finance"].to_pandas()
    search = fin[fin["item"].astype(str) == "search"]
    assert np.all(search.units <= 1000 * 0.2 + 1e-9)  # capped by audience x max clicks
    assert np.all(search.spend < search.budget)  # so the budget is not spent
    assert res.tables["finance"].filter(pc.equal(res.tables["finance"]["item"], "refer"))["units"].to_numpy().sum() > 0

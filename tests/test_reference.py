"""The kernel against the independent Mesa reference model (sim/reference.py).

For each scenario, ``R_KERNEL`` replications of the kernel and ``R_REFERENCE`` runs of
the reference are compared with two-sample Hotelling T^2 tests (see
``tests/stat_checks.py``) on:

- customers by (segment, stage) at the end of three days (a quarter, half and all of
  the horizon);
- the KPIs (spend, revenue, cost, conversions, front/back-end profit, CAC, ROAS, LTV),
  with the units sold of each offer and the referred sales;
- the attribution: moves over the run by (stage moved from, cause) and lapses.

That is ``TESTS_PER_SCENARIO`` tests per scenario; the whole family (every scenario,
and the power check's scenario once more) runs at FAMILY_ALPHA = 0.001 with Bonferroni.
The power check then perturbs one transition probability by 4% in the kernel's copy
of a scenario and requires the same family of tests to reject.
"""

from __future__ import annotations

import copy
from functools import cache

import numpy as np
import pytest

from cvj.engine import Engine, use_threads
from cvj.model import compile_scenario
from cvj.reference import simulate_reference
from cvj.results import summary as kernel_summary
from cvj.stages import N_STAGES, STAGES
from tests.stat_checks import (
    NO_JIT,
    hotelling_two_sample,
    per_test_alpha,
    scenario,
    shrunk_default,
)

R_KERNEL = 20 if NO_JIT else 200
R_REFERENCE = 4 if NO_JIT else 40
N = 300 if NO_JIT else 2000

OFFERS = {
    "lead_magnet": {"unit_cost": 0.2},
    "entry": {"price": 12.0, "unit_cost": 4.0, "price_sensitivity": 0.03},
    "core": {"price": 80.0, "unit_cost": 30.0, "price_sensitivity": 0.005, "repeat_rate": 0.02},
    "upsells": {"strap": {"price": 25.0, "unit_cost": 5.0, "take_rate": 0.015}},
}

TWO_SEGMENTS = {
    "a": {"share": 0.6, "responsiveness_spread": 0.8, "price_sensitivity": 1.4},
    "b": {"share": 0.4, "responsiveness_spread": 0.3, "advance_multiplier": 0.7, "lapse_multiplier": 1.3},
}

SCENARIOS = {
    "default_small": shrunk_default(N, 30 if NO_JIT else 120, seed=31),
    # saturation and carry-over on bought reach; a CPC channel capped by its audience;
    # a fixed retainer whose schedule doubles it halfway
    "channels": {
        "format": 1,
        "name": "channels",
        "market": {"customers": N, "days": 40, "seed": 32},
        "segments": TWO_SEGMENTS,
        "organic": {"advance": {"engaged": 0.05, "subscribed": 0.04}, "lapse": {"aware": 0.02, "engaged": 0.02}},
        "channels": {
            "social": {
                "pricing": "cpm",
                "unit_cost": 10.0,
                "daily_budget": 4.0 * N / 2000,
                "audience": N // 2,
                "saturation": 1.5,
                "carryover": 0.7,
                "affinity": {"b": 0.5},
                "pushes": {"unaware->aware": 0.06},
            },
            "search": {
                "pricing": "cpc",
                "unit_cost": 0.5,
                "daily_budget": 1000.0,
                "audience": N // 4,
                "saturation": 0.1,
                "pushes": {"aware->engaged": 0.15},
            },
            "seo": {
                "pricing": "fixed",
                "monthly_cost": 300.0,
                "contacts_per_day": 0.1 * N,
                "audience": N,
                "saturation": 2.0,
                "carryover": 0.9,
                "schedule": [{"from_day": 20, "to_day": 40, "monthly_cost": 600.0}],
                "pushes": {"unaware->aware": 0.03, "aware->engaged": 0.03},
            },
        },
        "offers": OFFERS,
    },
    # buyers: entry and core offers with price sensitivity, repeat purchases, upsells
    "offers": {
        "format": 1,
        "name": "offers",
        "market": {
            "customers": N,
            "days": 40,
            "seed": 33,
            "initial_stages": {"subscribed": 0.4, "converted": 0.2, "excited": 0.2, "ascended": 0.2},
        },
        "segments": TWO_SEGMENTS,
        "organic": {
            "advance": {"subscribed": 0.06, "converted": 0.08, "excited": 0.06, "ascended": 0.02, "advocate": 0.02},
            "lapse": {"excited": 0.01, "ascended": 0.01},
        },
        "offers": {
            "lead_magnet": {"unit_cost": 0.2},
            "entry": {"price": 12.0, "unit_cost": 4.0, "price_sensitivity": 0.05},
            "core": {"price": 80.0, "unit_cost": 30.0, "price_sensitivity": 0.01, "repeat_rate": 0.03},
            "upsells": {
                "strap": {"price": 25.0, "unit_cost": 5.0, "take_rate": 0.02},
                "care": {"price": 9.0, "unit_cost": 1.0, "take_rate": 0.04},
            },
        },
    },
    # word of mouth seeded by a little organic awareness; a commission programme
    "referrals": {
        "format": 1,
        "name": "referrals",
        "market": {"customers": N, "days": 50, "seed": 34, "initial_stages": {"unaware": 0.9, "advocate": 0.1}},
        "organic": {
            "advance": {
                "unaware": 0.002,
                "aware": 0.1,
                "engaged": 0.1,
                "subscribed": 0.1,
                "converted": 0.05,
                "excited": 0.05,
                "ascended": 0.05,
            },
            "lapse": {"aware": 0.01},
        },
        "referrals": {"rates": {"aware": 0.03, "advocate": 0.05, "promoter": 0.1}},
        "channels": {
            "programme": {"pricing": "commission", "commission": 6.0, "pushes": {"advocate->promoter": 0.05}}
        },
        "offers": OFFERS,
    },
    # decay and return
    "lapse": {
        "format": 1,
        "name": "lapse",
        "market": {
            "customers": N,
            "days": 40,
            "seed": 35,
            "initial_stages": {"aware": 0.4, "engaged": 0.3, "converted": 0.2, "lapsed": 0.1},
        },
        "segments": TWO_SEGMENTS,
        "organic": {
            "advance": {"aware": 0.08, "engaged": 0.06, "subscribed": 0.05, "converted": 0.05},
            "lapse": {"aware": 0.05, "engaged": 0.04, "subscribed": 0.03, "converted": 0.03, "excited": 0.03},
            "reactivation": 0.06,
        },
        "offers": OFFERS,
    },
    # email reaches only subscribed-or-later people; its audience (and so what the
    # budget buys) moves with the permission base
    "email": {
        "format": 1,
        "name": "email",
        "market": {
            "customers": N,
            "days": 40,
            "seed": 36,
            "initial_stages": {"engaged": 0.6, "subscribed": 0.3, "converted": 0.1},
        },
        "organic": {
            "advance": {"engaged": 0.04, "converted": 0.05},
            "lapse": {"subscribed": 0.02, "converted": 0.02, "excited": 0.02},
        },
        "channels": {
            "mail": {
                "pricing": "per_send",
                "unit_cost": 0.01,
                "daily_budget": 0.6 * N / 2000 * 10,
                "max_units_per_person": 1.0,
                "saturation": 2.0,
                "carryover": 0.5,
                "pushes": {"subscribed->converted": 0.15, "excited->ascended": 0.1},
            }
        },
        "offers": OFFERS,
    },
    # a fast funnel with more customers: the scenario of the power check
    "funnel": {
        "format": 1,
        "name": "funnel",
        "market": {
            "customers": 2 * N + N // 2,
            "days": 20,
            "seed": 37,
            "initial_stages": {"aware": 0.5, "engaged": 0.3, "subscribed": 0.2},
        },
        "segments": TWO_SEGMENTS,
        "organic": {
            "advance": {
                "aware": 0.3,
                "engaged": 0.25,
                "subscribed": 0.2,
                "converted": 0.2,
                "excited": 0.15,
                "ascended": 0.1,
            },
            "lapse": {"aware": 0.05, "engaged": 0.05},
        },
        "offers": OFFERS,
    },
}

#: the power check: one transition probability 4% higher in the kernel's copy
POWER_SCENARIO = "funnel"
POWER_CHANGE = ("organic.advance.engaged", 1.04)

TESTS_PER_SCENARIO = 5  # three days of stage counts, KPIs, attribution
FAMILY_SIZE = TESTS_PER_SCENARIO * (len(SCENARIOS) + 1)
ALPHA = per_test_alpha(FAMILY_SIZE)

KPIS = ("spend", "revenue", "cost", "conversions", "front_end_profit", "back_end_profit", "cac", "roas")


def _days(D):
    return sorted({max(1, D // 4), max(1, D // 2), D})


@cache
def reference_runs(name: str) -> list[dict]:
    sc = scenario(SCENARIOS[name])
    return [simulate_reference(sc, seed=10_000 + i) for i in range(R_REFERENCE)]


@cache
def kernel_runs(name: str, change: tuple | None = None) -> list[dict]:
    raw = copy.deepcopy(SCENARIOS[name])
    if change is not None:
        path, factor = change
        node = raw
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] *= factor
    cm = compile_scenario(scenario(raw))
    out = []
    for r in range(R_KERNEL):
        e = Engine(cm, replication=r)
        # one chunk of customers: one thread avoids waiting on a busy second core
        with use_threads(1):
            while not e.done:
                e.step()
        h = e.history
        out.append(
            {
                "stages": h.stages.copy(),
                "flows": h.flows.copy(),
                "offer_units": h.offer_units.sum(axis=1),
                "referred": h.referred.sum(axis=1),
                "summary": kernel_summary(cm, h, r),
            }
        )
    return out


def _kpi_names(sc, runs_a, runs_b):
    names = list(KPIS) + [f"ltv_{g}" for g in sc.segments]
    # a ratio that is undefined (None) in some run cannot be averaged; leave it out
    return [k for k in names if all(r["summary"][k] is not None for r in runs_a + runs_b)]


def compare(name: str, change: tuple | None = None) -> dict[str, object]:
    """The scenario's family of two-sample tests; returns test name -> TwoSample."""
    sc = scenario(SCENARIOS[name])
    ref = reference_runs(name)
    ker = kernel_runs(name, change)
    D = sc.market.days
    out = {}
    for d in _days(D):
        x = np.array([r["stages"][d].ravel() for r in ker])
        y = np.array([r["stages"][d].ravel() for r in ref])
        labels = [f"{g}/{s}" for g in sc.segments for s in STAGES]
        out[f"stages day {d}"] = hotelling_two_sample(x, y, names=labels)
    kpis = _kpi_names(sc, ker, ref)
    labels = kpis + [f"units_{o}" for o in sc.offer_names] + ["referred_sales"]

    def kpi_vector(run):
        # KPIs, units of each offer (which product a repeat purchase buys) and referred sales
        return [*(run["summary"][k] for k in kpis), *run["offer_units"].sum(axis=0), run["referred"].sum()]

    x = np.array([kpi_vector(r) for r in ker], dtype=float)
    y = np.array([kpi_vector(r) for r in ref], dtype=float)
    out["kpis"] = hotelling_two_sample(x, y, names=labels)
    # attribution: moves out of each stage by cause over the run (summed over segments)
    x = np.array([r["flows"].sum(axis=(0, 1)).ravel() for r in ker])
    y = np.array([r["flows"].sum(axis=(0, 1)).ravel() for r in ref])
    out["attribution"] = hotelling_two_sample(x, y)
    assert len(out) == TESTS_PER_SCENARIO
    return out


def _report(name, tests):
    return "; ".join(f"{k}: p={t.p_value:.2e} (dim {t.dims})" for k, t in tests.items())


def test_reference_matches_the_specification_exactly_where_it_can():
    """Deterministic parts agree exactly: segment sizes, and the spend of channels whose
    units do not depend on the customers (CPM, CPC, fixed)."""
    sc = scenario(SCENARIOS["channels"])
    ref = simulate_reference(sc, seed=1, days=10)
    cm = compile_scenario(sc)
    e = Engine(cm)
    for _ in range(10):
        e.step()
    np.testing.assert_array_equal(ref["stages"][0].sum(axis=1), e.history.stages[0].sum(axis=1))
    np.testing.assert_allclose(ref["channel_spend"], e.history.channel_spend[:11], rtol=1e-12)
    np.testing.assert_allclose(ref["channel_units"], e.history.channel_units[:11], rtol=1e-12)
    assert set(ref["summary"]) == set(kernel_summary(cm, e.history, 0))  # same KPI keys
    for d in range(11):
        assert ref["stages"][d].sum() == N
    assert ref["stages"].shape == (11, 2, N_STAGES)
    assert ref["offer_units"].shape == (11, cm.n_offers)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kernel_agrees_with_the_reference(name):
    tests = compare(name)
    print(f"{name}: {_report(name, tests)}")
    failed = {k: t for k, t in tests.items() if t.p_value < ALPHA}
    assert not failed, f"{name}: rejected at {ALPHA:.1e}: " + _report(name, failed)


@pytest.mark.slow
@pytest.mark.skipif(NO_JIT, reason="power needs full-size replications (JIT off: shrunk)")
def test_the_comparison_rejects_a_four_percent_change():
    """Power: the kernel with one probability 4% higher must be told apart from the
    reference by the same family of tests at the same level."""
    tests = compare(POWER_SCENARIO, POWER_CHANGE)
    print(f"power check {POWER_CHANGE}: {_report(POWER_SCENARIO, tests)}")
    assert min(t.p_value for t in tests.values()) < ALPHA, _report(POWER_SCENARIO, tests)

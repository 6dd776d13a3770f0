"""Invariants on random scenarios (hypothesis): whatever the numbers, the bookkeeping holds.

Hypothesis builds valid scenario documents (1-3 segments, any mix of organic movement,
lapse, reactivation, referrals, 0-4 channels of every pricing model, offers with
upsells; up to 1,500 customers and 25 days), validates them with
``cvj.scenario.validate_scenario`` and runs them through the kernel, following every
customer from day to day, and through the Mesa reference. On every run:

- customers per day (and per segment) are constant;
- the flows explain the change in stage counts exactly;
- every customer-day is one of: stay, s -> s+1, s -> lapsed (not from unaware or
  lapsed), lapsed -> aware (reactivation, only when its probability is positive);
- a move's cause is one that can act on that stage (referral only from unaware, a
  channel only where it pushes);
- from the starting stage on, stages are first reached in journey order;
- money adds up (channels, offers, KPIs recomputed, per-customer revenue) and there is
  no NaN or infinity anywhere (undefined KPIs and offers' budgets are null).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvj.engine import Engine, use_threads
from cvj.model import compile_scenario
from cvj.reference import simulate_reference
from cvj.run import tables_of
from cvj.scenario import validate_scenario
from cvj.stages import AWARE, JOURNEY, LAPSED, N_STAGES, PROMOTER, STAGES, UNAWARE
from tests.stat_checks import assert_money_adds_up

PUSHABLE = STAGES[:PROMOTER]  # a push moves people on from these
EMAIL_PUSHABLE = STAGES[3:PROMOTER]  # subscribed .. advocate (permission)

probability = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0), st.floats(0.0, 0.2))
money_amount = st.integers(0, 400).map(lambda k: k / 2)  # multiples of 0.5: exact in float32


def _stage_probs(draw, stages, min_size=0):
    keys = draw(st.lists(st.sampled_from(stages), unique=True, min_size=min_size, max_size=len(stages)))
    return {k: draw(probability) for k in keys}


def _shares(draw, n):
    w = draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    shares = [x / sum(w) for x in w]
    shares[-1] = 1.0 - sum(shares[:-1])
    return shares


@st.composite
def scenarios(draw):
    N = draw(st.integers(1, 1500))
    D = draw(st.integers(1, 25))
    G = draw(st.integers(1, 3))
    seg_names = [f"seg{g}" for g in range(G)]
    segments = {
        name: {
            "share": share,
            "responsiveness_spread": draw(st.floats(0.0, 3.0)),
            "advance_multiplier": draw(st.floats(0.0, 3.0)),
            "lapse_multiplier": draw(st.floats(0.0, 3.0)),
            "price_sensitivity": draw(st.floats(0.0, 3.0)),
        }
        for name, share in zip(seg_names, _shares(draw, G))
    }
    start = draw(st.lists(st.sampled_from(STAGES), unique=True, min_size=1, max_size=4))
    initial = dict(zip(start, _shares(draw, len(start))))
    raw = {
        "format": 1,
        "name": "random",
        "market": {"customers": N, "days": D, "seed": draw(st.integers(0, 2**63 - 1)), "initial_stages": initial},
        "segments": segments,
        "organic": {
            "advance": _stage_probs(draw, PUSHABLE),
            "lapse": _stage_probs(draw, JOURNEY[1:]),
            "reactivation": draw(probability),
        },
        "referrals": {
            "rates": {k: draw(st.floats(0.0, 2.0)) for k in draw(st.lists(st.sampled_from(JOURNEY), unique=True, max_size=3))}
        },
        "offers": {
            "lead_magnet": {"unit_cost": draw(money_amount)},
            "entry": {
                "price": draw(money_amount), "unit_cost": draw(money_amount), "price_sensitivity": draw(st.floats(0.0, 0.1))
            },
            "core": {
                "price": draw(money_amount),
                "unit_cost": draw(money_amount),
                "price_sensitivity": draw(st.floats(0.0, 0.05)),
                "repeat_rate": draw(probability),
            },
            "upsells": {
                f"up{j}": {"price": draw(money_amount), "unit_cost": draw(money_amount), "take_rate": draw(probability)}
                for j in range(draw(st.integers(0, 2)))
            },
        },
    }
    channels = {}
    pricings = draw(st.lists(st.sampled_from(["cpm", "cpc", "per_send", "fixed", "commission"]), max_size=4))
    if pricings.count("commission") > 1:
        pricings = [p for p in pricings if p != "commission"] + ["commission"]
    for c, pricing in enumerate(pricings):
        ch = {
            "pricing": pricing,
            "pushes": {
                f"{s}->{STAGES[STAGES.index(s) + 1]}": p
                for s, p in _stage_probs(draw, EMAIL_PUSHABLE if pricing == "per_send" else PUSHABLE, 1).items()
            },
            "affinity": {g: draw(st.floats(0.0, 1.0)) for g in draw(st.lists(st.sampled_from(seg_names), unique=True))},
        }
        if pricing == "commission":
            ch["commission"] = draw(money_amount)
        else:
            ch["saturation"] = draw(st.floats(0.01, 5.0))
            ch["carryover"] = draw(st.floats(0.0, 0.99))
            if pricing != "per_send" and draw(st.booleans()):
                ch["audience"] = draw(st.integers(1, 2 * N))  # may exceed the market
            if pricing == "fixed":
                ch["monthly_cost"] = draw(money_amount)
                ch["contacts_per_day"] = draw(st.floats(0.0, 3.0 * N))
            else:
                ch["unit_cost"] = draw(st.floats(0.001, 20.0))
                ch["daily_budget"] = draw(st.integers(0, 50_000)) / 100  # whole cents
                ch["max_units_per_person"] = draw(st.floats(0.01, 5.0))
            if draw(st.booleans()):
                a = draw(st.integers(1, D))
                b = draw(st.integers(a, D + 3))
                key = "monthly_cost" if pricing == "fixed" else "daily_budget"
                ch["schedule"] = [{"from_day": a, "to_day": b, key: draw(money_amount)}]
        channels[f"ch{c}"] = ch
    raw["channels"] = channels
    return validate_scenario(raw, source="<hypothesis>")


def _allowed(old: np.ndarray, new: np.ndarray, reactivation: bool) -> np.ndarray:
    stay = new == old
    advance = (old < PROMOTER) & (new == old + 1)
    lapse = (old != UNAWARE) & (old != LAPSED) & (new == LAPSED)
    back = (old == LAPSED) & (new == AWARE) & reactivation
    return stay | advance | lapse | back


def _expected_counts(prev, flows):
    """Stage counts after one day's flows, written out move by move."""
    G, S, K1 = flows.shape
    out = prev.astype(np.int64).copy()
    for g in range(G):
        for s in range(S):
            for k in range(K1):
                n = flows[g, s, k]
                if not n:
                    continue
                to = LAPSED if k == K1 - 1 else (AWARE if s == LAPSED else s + 1)
                out[g, s] -= n
                out[g, to] += n
    return out


def _check_flows(stages, flows, sc, cm_sizes):
    D1 = stages.shape[0]
    for d in range(D1):
        np.testing.assert_array_equal(stages[d].sum(axis=1), cm_sizes)
    assert np.all(stages >= 0) and np.all(flows >= 0)
    for d in range(1, D1):
        np.testing.assert_array_equal(stages[d], _expected_counts(stages[d - 1], flows[d]))
    K = flows.shape[-1] - 1
    # causes: referral only from unaware; channel c only from stages it pushes
    assert flows[:, :, UNAWARE, K].sum() == 0 and flows[:, :, LAPSED, K].sum() == 0
    assert flows[:, :, PROMOTER, :K].sum() == 0
    assert flows[:, :, np.arange(N_STAGES) != UNAWARE, 1].sum() == 0
    for c, ch in enumerate(sc.channels.values()):
        pushed = set(ch.push_from())
        for s in range(N_STAGES):
            if s not in pushed:
                assert flows[:, :, s, 2 + c].sum() == 0, (c, s)
    if sc.organic.reactivation == 0:
        assert flows[:, :, LAPSED, :K].sum() == 0


def _no_nan(tables: dict, sc):
    commission = {name for name, ch in sc.channels.items() if ch.pricing == "commission"}
    for name, table in tables.items():
        for col in table.column_names:
            arr = table[col]
            if not pa.types.is_floating(arr.type):
                continue
            # an undefined KPI, or the budget of an offer or commission row, is null (None), not NaN
            null = arr.is_null().to_numpy(zero_copy_only=False)
            values = arr.to_numpy(zero_copy_only=False)[~null]
            if name == "finance" and col == "budget":
                no_budget = (np.asarray(table["kind"].to_pylist()) == "offer") | np.isin(
                    np.asarray(table["item"].to_pylist()), list(commission)
                )
                np.testing.assert_array_equal(null, no_budget)
            assert not np.any(np.isnan(values)), f"NaN in {name}.{col}"
            assert np.all(np.isfinite(values)), f"inf in {name}.{col}"


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sc=scenarios())
def test_kernel_invariants_on_random_scenarios(sc):
    cm = compile_scenario(sc)
    sizes = np.diff(np.r_[0, cm.seg_end])
    e = Engine(cm, replication=0, track_customers=True)
    start = e.stage.copy()
    reactivation = sc.organic.reactivation > 0
    with use_threads(1):
        while not e.done:
            before = e.stage.copy()
            e.step()
            ok = _allowed(before, e.stage, reactivation)
            assert ok.all(), f"day {e.day}: {before[~ok][:5]} -> {e.stage[~ok][:5]}"
    h = e.history
    _check_flows(h.stages, h.flows, sc, sizes)
    tables = tables_of(e)
    assert_money_adds_up(sc, tables)
    _no_nan(tables, sc)
    cu = tables["customers"]
    total = float(tables["finance"]["revenue"].to_numpy().sum())
    assert float(cu["revenue"].to_numpy().sum()) == total  # prices are exact in float32
    reached = np.stack([cu[f"day_{s}"].to_numpy(zero_copy_only=False) for s in STAGES[1 : PROMOTER + 1]], axis=1)
    # from the starting stage on (from aware for the unaware and the lapsed), stages are
    # first reached in journey order; stages below the start can only be reached later,
    # by reactivation to aware
    lowest = np.where((start == UNAWARE) | (start == LAPSED), AWARE, start)
    for j in range(reached.shape[1] - 1):  # column j is stage j + 1
        a, b = reached[:, j], reached[:, j + 1]
        check = ~np.isnan(a) & ~np.isnan(b) & (lowest <= j + 1)
        assert np.all(a[check] <= b[check]), f"{STAGES[j + 1]} first reached after {STAGES[j + 2]}"
    np.testing.assert_array_equal(reached[start == AWARE, 0], 0)
    final = np.asarray(cu["final_stage"].to_pylist())
    np.testing.assert_array_equal(final, np.asarray(STAGES)[e.stage])


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sc=scenarios())
def test_reference_invariants_on_random_scenarios(sc):
    """The oracle itself keeps the same books (on at most 300 customers)."""
    from cvj.scenario import apply_overrides

    raw = apply_overrides(sc.model_dump(mode="json"), {"market.customers": min(300, sc.market.customers)})
    sc = validate_scenario(raw)
    cm = compile_scenario(sc)
    out = simulate_reference(sc, seed=sc.market.seed % 2**32)
    _check_flows(out["stages"], out["flows"], sc, np.diff(np.r_[0, cm.seg_end]))
    s = out["summary"]
    price = np.array([0.0, sc.offers.entry.price, sc.offers.core.price, *(u.price for u in sc.offers.upsells.values())])
    assert s["revenue"] == float(out["offer_units"].sum(axis=0) @ price)
    assert math.isclose(out["revenue_by_segment"].sum(), s["revenue"], rel_tol=1e-12, abs_tol=1e-9)
    assert s["profit"] == s["revenue"] - s["cost"] - s["spend"]
    assert math.isclose(s["front_end_profit"] + s["back_end_profit"], s["profit"], rel_tol=1e-12, abs_tol=1e-6)
    bought = [c for c, ch in enumerate(sc.channels.values()) if ch.pricing != "commission"]
    assert np.all(out["channel_spend"][:, bought] <= out["channel_budget"][:, bought] * (1 + 1e-15))
    for v in s.values():
        assert not (isinstance(v, float) and math.isnan(v))

"""The day kernel against its plain-Python twin (tests/naive.py): same inputs, same
counter-based random numbers, exactly the same state and counts, day after day; on
hand-made scenarios (one above a chunk of the kernel's parallel loop, with segment
boundaries at the chunk's edge) and on hypothesis-drawn small ones."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cvj
from cvj import kernels
from cvj.engine import MAX_GAP, ORDER_CLASSES, Engine
from cvj.model import MAX_DWELL, channel_reach, compile_scenario, day_tables

from . import naive
from .stat_checks import CLASSIC
from .test_invariants import scenarios as random_scenarios

FULL = {
    # every mechanism on: lapse and reactivation, repeat purchases and upsells,
    # referrals and a commission programme, all pricing models
    "market.customers": 2500,
    "market.days": 30,
    "market.seed": 11,
    "organic.reactivation": 0.05,
    "market.initial_stages": {
        "unaware": 0.5,
        "aware": 0.1,
        "subscribed": 0.1,
        "excited": 0.1,
        "ascended": 0.1,
        "advocate": 0.05,
        "lapsed": 0.05,
    },
    "offers.core.repeat_rate": 0.05,
    "offers.upsells.strap.take_rate": 0.05,
    "referrals.rates.advocate": 0.5,
}


def chunk_edge_overrides() -> dict:
    """Two chunks and a bit, with segment boundaries one customer before and after the
    first chunk's end: the 2-customer segment B2B straddles it, so a chunk starts inside
    a segment and the kernel's segment lookup at a chunk's start is exercised."""
    n = 2 * kernels.CHUNK + 100
    b2c, b2b = kernels.CHUNK - 1, 2
    return {
        "market.customers": n,
        "market.days": 12,
        "market.seed": 5,
        "market.initial_stages": {"unaware": 0.6, "aware": 0.2, "subscribed": 0.1, "ascended": 0.1},
        "segments.B2C.share": b2c / n,
        "segments.B2B.share": b2b / n,
        "segments.B2P.share": (n - b2c - b2b) / n,
    }


SUBSCRIPTION = {
    # a subscription with a free trial, churn by renewal, upsells that leave the billing
    # clock alone, subscribers part-way through a period at the start, reactivation and
    # a programme paying per first payment; bills on days 8 and 15 of a 21-day horizon
    # need a short period: a 14-day trial, and many starting subscribers billed in it
    "market.customers": 2500,
    "market.days": 40,
    "market.seed": 17,
    "organic.reactivation": 0.05,
    "market.initial_stages": {"unaware": 0.3, "excited": 0.3, "ascended": 0.3, "advocate": 0.1},
    "organic.advance.excited": 0.08,
    "organic.advance.ascended": 0.05,
    "organic.lapse": {"aware": 0.01, "excited": 0.02},
    "referrals.rates.advocate": 0.3,
    "offers.core.repeat_rate": 0.0,
    "offers.core.order_multipliers": {},
    "offers.core.subscription": {"trial_days": 7, "trial_conversion": 0.6, "churn": [0.2, 0.1]},
    "offers.upsells.strap.take_rate": 0.05,
    "channels.referral_programme.commission_on": "first_payment",
}


#: referred customers as warm leads with a friend's discount: rows of their own
WARM = {**FULL, "referrals.referred_conversion": 3.0, "channels.referral_programme.friend_discount": 5.0,
        "market.seed": 12}


def scenarios():
    yield "default-small", cvj.load_scenario(None, {"market.customers": 3000, "market.days": 25})
    yield "warm-referred-leads", cvj.load_scenario(CLASSIC, WARM)
    yield "subscription", cvj.load_scenario(CLASSIC, SUBSCRIPTION)
    yield "all-mechanisms", cvj.load_scenario(CLASSIC, FULL)
    yield "above-one-chunk", cvj.load_scenario(None, chunk_edge_overrides())


@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("name,sc", list(scenarios()), ids=lambda x: x if isinstance(x, str) else "")
def test_kernel_equals_naive_twin(name, sc, track):
    e = run_kernel_and_twin(sc, replication=3, track=track)
    cm, h = e.cm, e.history
    # the comparison is not vacuous: many things happened
    events = h.flows[1:].sum() + h.offer_units[1:].sum()
    assert events > cm.customers // (20 if name == "above-one-chunk" else 2)
    if name == "above-one-chunk":
        assert list(cm.seg_end[:2]) == [kernels.CHUNK - 1, kernels.CHUNK + 1]
        assert kernels.n_chunks(cm.customers) == 3
    if name == "subscription":
        K = cm.n_causes
        assert h.subs[:, :, K + 1].sum() > 0 and h.subs[:, :, K + 2].sum() > 0  # trials ended unpaid and paid
        assert h.subs[:, :, 1].sum() > 0  # first payments of referred subscribers (the commission)
        assert h.offer_units[:, :, 3:-1].sum() > 0  # upsells, which leave the billing clock
        assert h.flows[:, :, 9, :].sum() > 0  # reactivation: returning subscribers pay at sign-up
        assert (Engine(cm, replication=3).clock > 65536 - 30).any()  # starting subscribers' clocks before day 0
    if name == "warm-referred-leads":
        assert cm.ref_block > 0 and (e.row >= cm.ref_block).sum() > 50  # referred customers in their rows
    if name == "all-mechanisms":
        assert h.referred.sum() > 0  # referred sales (commission)
        assert h.flows[:, :, 9, :].sum() > 0  # reactivation from lapsed
        assert h.flows[:, :, :, -1].sum() > 0  # lapses
        assert h.offer_units[:, :, 3:].sum() > 0  # upsells
        assert h.offer_units[:, :, 2].sum() > h.flows[:, :, 5, :-1].sum()  # repeat core purchases


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=random_scenarios(), replication=st.integers(0, 1000), track=st.booleans())
def test_kernel_equals_naive_twin_on_random_scenarios(sc, replication, track):
    run_kernel_and_twin(sc, replication, track)


def run_kernel_and_twin(sc, replication: int, track: bool) -> Engine:
    """Run ``sc`` day by day in the kernel and in the twin; state and counts must be
    equal after the start and after every day. Returns the kernel's engine."""
    cm = compile_scenario(sc)
    e = Engine(cm, replication=replication, track_customers=track)
    key = naive.stream_key(cm.seed, replication)
    assert key == int(e.key)
    people = naive.init(
        cm.customers, key, list(cm.seg_end), list(cm.stage_cum), track, cm.band_cum.tolist(), cm.permitted.tolist(),
        cm.start_orders.tolist(), cm.phase.tolist(),
    )
    lay = cm.layout
    col_of = lay.colf.reshape(-1, MAX_DWELL + 1).tolist()  # [slot][days]
    sx_of = lay.sx_of.tolist()
    assert_same_state(e, people, track)
    thin = naive.thinned(col_of, sx_of, cm.start_orders.tolist(), cm.phase.tolist())
    for d in range(1, cm.days + 1):
        reach = channel_reach(cm, e.counts, e.stock, cm.budget[d], e.cells)
        t = day_tables(cm, e.counts, reach, d)
        gaps_before = e.history.gaps.copy()
        flows, buys, first_touch, unsubs, gaps, subs = naive.day(
            people,
            key,
            d,
            cm.width,
            col_of,
            sx_of,
            t.thr.tolist(),
            t.cut_adv.tolist(),
            t.cut_lapse.tolist(),
            t.cut_unsub.tolist(),
            t.cause_cum.tolist(),
            t.buy_cum.tolist(),
            cm.price.tolist(),
            cm.n_causes,
            cm.n_bands,
            ORDER_CLASSES,
            MAX_GAP,
            cm.memo.tolist(),
            cm.start_offer,
            cm.first_pay_at,
            cm.ref_block,
            thin,
        )
        e.step()
        assert_same_state(e, people, track)
        h = e.history
        assert dict_of(h.flows[d]) == flows
        assert dict_of(h.offer_units[d]) == buys
        assert dict_of(h.first_touch[d]) == first_touch
        assert dict_of(h.unsubscribes[d]) == unsubs
        assert dict_of(h.gaps - gaps_before) == gaps
        assert dict_of(h.subs[d]) == subs
        if e.cells is not None:  # tomorrow's audience cells, counted by the kernel
            expect = {}
            for c in people:
                k = (c.segment * cm.width + c.band * 2 + c.permission, naive.column(c, d + 1, col_of, sx_of))
                expect[k] = expect.get(k, 0) + 1
            assert dict_of(e.cells) == expect
    return e


def dict_of(arr):
    return {tuple(int(i) for i in idx): int(arr[idx]) for idx in zip(*np.nonzero(arr))}


def assert_same_state(e, people, track):
    np.testing.assert_array_equal(e.stage, [c.stage for c in people])
    W = e.cm.width
    np.testing.assert_array_equal(e.row, [naive.row_of(c, W, e.cm.ref_block) for c in people])
    lay = e.cm.layout
    np.testing.assert_array_equal(e.sx, [lay.sx_of[c.stage][c.orders] for c in people])
    np.testing.assert_array_equal(e.orders, [c.orders for c in people])
    np.testing.assert_array_equal(e.clock, [c.clock for c in people])
    np.testing.assert_array_equal(e.last_order, [c.last_order for c in people])
    np.testing.assert_array_equal(e.acquired, [c.acquired for c in people])
    np.testing.assert_array_equal(e.converted, [c.converted for c in people])
    np.testing.assert_array_equal(e.revenue, np.array([c.revenue for c in people], np.float32))
    if track:
        np.testing.assert_array_equal(e.reached, [c.reached for c in people])
        np.testing.assert_array_equal(e.reached_by, [c.reached_by for c in people])


def test_rng_matches_twin():
    rng = np.random.default_rng(5)
    for _ in range(50):
        seed, rep = int(rng.integers(0, 2**63)), int(rng.integers(0, 1000))
        key = int(kernels.stream_key(np.uint64(seed), np.uint64(rep)))
        assert key == naive.stream_key(seed, rep)
        cust, day, purpose = int(rng.integers(0, 2**32)), int(rng.integers(0, 65535)), int(rng.integers(1, 5))
        assert int(kernels.draw(np.uint64(key), cust, day, purpose)) == naive.draw(key, cust, day, purpose)

"""The day kernel against its plain-Python twin (tests/naive.py): same inputs, same
counter-based random numbers, exactly the same state and counts, day after day."""

import numpy as np
import pytest

from cvj import kernels
import cvj
from cvj.engine import Engine
from cvj.model import channel_reach, compile_scenario, day_tables

from . import naive

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


def scenarios():
    yield "default-small", cvj.load_scenario(None, {"market.customers": 3000, "market.days": 25})
    yield "all-mechanisms", cvj.load_scenario(None, FULL)


@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("name,sc", list(scenarios()), ids=lambda x: x if isinstance(x, str) else "")
def test_kernel_equals_naive_twin(name, sc, track):
    cm = compile_scenario(sc)
    e = Engine(cm, replication=3, track_customers=track)
    key = naive.stream_key(cm.seed, 3)
    assert key == int(e.key)
    people = naive.init(cm.customers, key, list(cm.seg_end), list(cm.stage_cum), track)
    assert_same_state(e, people, track)
    events = 0
    for d in range(1, cm.days + 1):
        reach = channel_reach(cm, e.counts, e.stock, cm.budget[d])
        t = day_tables(cm, e.counts, reach)
        flows, buys, referred = naive.day(
            people,
            key,
            d,
            t.thr.tolist(),
            t.cut_adv.tolist(),
            t.cut_lapse.tolist(),
            t.cause_cum.tolist(),
            cm.buy_cum.tolist(),
            cm.price.tolist(),
            cm.n_causes,
        )
        e.step()
        assert_same_state(e, people, track)
        h = e.history
        assert dict_of(h.flows[d]) == flows
        assert dict_of(h.offer_units[d]) == buys
        assert dict_of(h.referred[d]) == {(k,): v for k, v in referred.items()}
        events += sum(flows.values()) + sum(buys.values())
    # the comparison is not vacuous: many things happened
    assert events > cm.customers // 2
    if name == "all-mechanisms":
        h = e.history
        assert h.referred.sum() > 0  # referred sales (commission)
        assert h.flows[:, :, 9, :].sum() > 0  # reactivation from lapsed
        assert h.flows[:, :, :, -1].sum() > 0  # lapses
        assert h.offer_units[:, :, 3:].sum() > 0  # upsells
        assert h.offer_units[:, :, 2].sum() > h.flows[:, :, 5, :-1].sum()  # repeat core purchases


def dict_of(arr):
    return {tuple(int(i) for i in idx): int(arr[idx]) for idx in zip(*np.nonzero(arr))}


def assert_same_state(e, people, track):
    np.testing.assert_array_equal(e.stage, [c.stage for c in people])
    np.testing.assert_array_equal(e.profile, [c.segment * 16 + c.level for c in people])
    np.testing.assert_array_equal(e.acquired, [c.acquired for c in people])
    np.testing.assert_array_equal(e.converted, [c.converted for c in people])
    np.testing.assert_array_equal(e.revenue, np.array([c.revenue for c in people], np.float32))
    if track:
        np.testing.assert_array_equal(e.reached, [c.reached for c in people])


def test_rng_matches_twin():
    rng = np.random.default_rng(5)
    for _ in range(50):
        seed, rep = int(rng.integers(0, 2**63)), int(rng.integers(0, 1000))
        key = int(kernels.stream_key(np.uint64(seed), np.uint64(rep)))
        assert key == naive.stream_key(seed, rep)
        cust, day, purpose = int(rng.integers(0, 2**32)), int(rng.integers(0, 65535)), int(rng.integers(1, 5))
        assert int(kernels.draw(np.uint64(key), cust, day, purpose)) == naive.draw(key, cust, day, purpose)

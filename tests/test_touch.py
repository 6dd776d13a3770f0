"""Attribution models against closed forms on small hand-made path sets, and the
touch paths read from a customers table.

The Markov-chain removal effect is computed as ChannelAttribution computes it (first
order, ``start -> touches -> conversion | null``, a removed channel's incoming
transitions sent to ``null``); every expected number below is worked out by hand in
the comment above it, never by calling the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from cvj import touch

# Path set 1:  A > B -> conversion (1),  A -> null (1),  B -> conversion (1)
# Transitions: start->A 2, start->B 1; A->B 1, A->null 1; B->conv 2.
# P(conv) = 2/3 * (1/2 * 1) + 1/3 * 1 = 2/3.
# Without A: start->A goes to null: P = 1/3 * 1 = 1/3, removal effect 1 - (1/3)/(2/3) = 1/2.
# Without B: both ways into B go to null: P = 0, removal effect 1.
# Markov: 2 conversions shared 1/2 : 1 -> A 2/3, B 4/3.
# First touch: A 1 (A > B), B 1 (B). Last touch: B 2. Linear: A 1/2, B 1/2 + 1 = 3/2.
SET1 = [("A > B", 1, 0, 100.0), ("A", 0, 1), ("B", 1, 0, 40.0)]

# Path set 2:  C1 > C2 > C3 -> conversion (1),  C1 -> null (1),  C2 > C3 -> null (1)
# Transitions: start->C1 2, start->C2 1; C1->C2 1, C1->null 1; C2->C3 2; C3->conv 1, C3->null 1.
# P = 2/3 * 1/2 * 1 * 1/2 + 1/3 * 1 * 1/2 = 1/6 + 1/6 = 1/3.
# Without C1: P = 1/3 * 1/2 = 1/6, effect 1/2. Without C2 or C3: P = 0, effect 1.
# Markov: 1 conversion shared 1/2 : 1 : 1 -> C1 0.2, C2 0.4, C3 0.4.
SET2 = [(("C1", "C2", "C3"), 1, 0), (("C1",), 0, 1), (("C2", "C3"), 0, 1)]


def test_removal_effects_and_markov_shares_of_set_1():
    p = touch.from_counts(SET1)
    assert touch.conversion_probability(p) == pytest.approx(2 / 3)
    assert touch.conversion_probability(p, removed="A") == pytest.approx(1 / 3)
    assert touch.conversion_probability(p, removed="B") == pytest.approx(0.0)
    assert touch.removal_effects(p) == pytest.approx({"A": 0.5, "B": 1.0})
    m = touch.markov(p)
    assert m["A"][0] == pytest.approx(2 / 3) and m["B"][0] == pytest.approx(4 / 3)
    # revenue (140 from the converting paths) is shared the same way
    assert m["A"][1] == pytest.approx(140 / 3) and m["B"][1] == pytest.approx(280 / 3)


def test_first_last_and_linear_of_set_1():
    p = touch.from_counts(SET1)
    assert touch.first_touch(p) == {"A": (1.0, 100.0), "B": (1.0, 40.0)}
    assert touch.last_touch(p) == {"A": (0.0, 0.0), "B": (2.0, 140.0)}
    lin = touch.linear(p)
    assert lin["A"] == pytest.approx((0.5, 50.0)) and lin["B"] == pytest.approx((1.5, 90.0))


def test_removal_effects_and_markov_shares_of_set_2():
    p = touch.from_counts(SET2)
    assert touch.conversion_probability(p) == pytest.approx(1 / 3)
    assert touch.removal_effects(p) == pytest.approx({"C1": 0.5, "C2": 1.0, "C3": 1.0})
    m = touch.markov(p)
    assert [m[c][0] for c in ("C1", "C2", "C3")] == pytest.approx([0.2, 0.4, 0.4])


def test_every_model_shares_out_exactly_the_conversions():
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(60):
        k = int(rng.integers(1, 5))
        rows.append((tuple(rng.choice(list("ABCDE"), size=k)), int(rng.integers(0, 4)), int(rng.integers(0, 4)),
                     float(rng.integers(0, 100))))
    p = touch.from_counts(rows)
    for model, credit in touch.claims(p).items():
        assert sum(v[0] for v in credit.values()) == pytest.approx(p.total_conversions), model
        assert sum(v[1] for v in credit.values()) == pytest.approx(p.total_revenue), model


def test_a_repeated_touch_changes_linear_but_not_the_removal_effect():
    # A > A > B: the self-loop A->A only delays absorption, so P(conversion) and the
    # removal effects equal those of A > B; linear gives A two shares of three
    once = touch.from_counts([("A > B", 1, 0), ("A", 0, 1)])
    twice = touch.from_counts([("A > A > B", 1, 0), ("A", 0, 1)])
    assert touch.removal_effects(twice) == pytest.approx(touch.removal_effects(once))
    assert touch.linear(twice)["A"][0] == pytest.approx(2 / 3)
    assert touch.linear(once)["A"][0] == pytest.approx(1 / 2)


def test_a_channel_on_every_converting_path_alone_gets_everything():
    p = touch.from_counts([("X", 5, 2), ("Y", 0, 3)])
    # Y never converts: removing it changes nothing (effect 0); X's effect is 1
    assert touch.removal_effects(p) == pytest.approx({"X": 1.0, "Y": 0.0})
    assert touch.markov(p)["X"][0] == pytest.approx(5.0)


def customers_table() -> pa.Table:
    causes = pa.array(["organic", "referral", "ads", "email"])

    def by(values):
        idx = [None if v is None else causes.to_pylist().index(v) for v in values]
        return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int16()), causes)

    # customer 0: ads > organic > email -> converted (days 3, 5, 9, 12)
    # customer 1: ads -> stopped at aware (day 4)
    # customer 2: started engaged; email -> subscribed (day 2), converted by ads (day 6)
    # customer 3: never moved
    # customer 4: ads > organic > email -> converted, like customer 0
    rows = {
        "by_aware": ["ads", "ads", None, None, "ads"],
        "by_engaged": ["organic", None, None, None, "organic"],
        "by_subscribed": ["email", None, "email", None, "email"],
        "by_converted": ["email", None, "ads", None, "email"],
    }
    days = {
        "day_aware": [3, 4, None, None, 1],
        "day_engaged": [5, None, 0, None, 2],
        "day_subscribed": [9, None, 2, None, 3],
        "day_converted": [12, None, 6, None, 4],
    }
    cols = {"replication": pa.array([0] * 5, pa.int32()), "customer_id": pa.array(range(5), pa.int64())}
    for s in touch.TOUCH_STAGES:
        cols[f"day_{s}"] = pa.array(days.get(f"day_{s}", [None] * 5), pa.int32())
        cols[f"by_{s}"] = by(rows.get(f"by_{s}", [None] * 5))
    cols["revenue"] = pa.array([30.0, 0.0, 20.0, 0.0, 10.0])
    return pa.table(cols)


def test_path_counts_group_the_customers_by_touch_path():
    t = touch.path_counts(customers_table())
    got = {tuple(r[f"by_{s}"] for s in touch.PATH_STAGES): (r["customers"], r["revenue"]) for r in t.to_pylist()}
    assert got == {
        ("ads", "organic", "email", "email"): (2, 40.0),
        ("ads", None, None, None): (1, 0.0),
        (None, None, "email", "ads"): (1, 20.0),
    }  # customer 3 has no touch: no tool sees it
    p = touch.paths_of(t)
    assert p.total_conversions == 3 and p.total_revenue == 60.0
    assert touch.last_touch(p)["email"] == (2.0, 40.0) and touch.first_touch(p)["email"] == (1.0, 20.0)


def test_touch_rows_are_one_row_per_customer_touch_in_order():
    rows = touch.touch_rows(customers_table()).to_pylist()
    mine = [(r["customer_id"], r["touch"], r["day"], r["stage"], r["cause"], r["converted"]) for r in rows]
    assert mine == [
        (0, 1, 3, "aware", "ads", True),
        (0, 2, 5, "engaged", "organic", True),
        (0, 3, 9, "subscribed", "email", True),
        (0, 4, 12, "converted", "email", True),
        (1, 1, 4, "aware", "ads", False),
        (2, 1, 2, "subscribed", "email", True),  # engaged at the start (day 0): no touch
        (2, 2, 6, "converted", "ads", True),
        (4, 1, 1, "aware", "ads", True),
        (4, 2, 2, "engaged", "organic", True),
        (4, 3, 3, "subscribed", "email", True),
        (4, 4, 4, "converted", "email", True),
    ]
    assert not math.isnan(sum(r["revenue"] for r in rows))

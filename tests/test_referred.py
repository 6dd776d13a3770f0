"""A friend's word makes a warm lead (``referrals.referred_conversion``) and a two-sided
programme's friend discount lowers the entry price a referred person sees: customers
acquired by referral read rows of their own in the day tables (``Compiled.ref_block``).
Their chances, estimated from the customers table, are the written ones; everyone
else's are unchanged; without either setting the tables are the plain ones."""

import math

import numpy as np
import pytest

import cvj
from cvj.model import compile_scenario, hazard

from .stat_checks import per_test_alpha, two_sided_z

WORLD = {
    "format": 2,
    "name": "warm-leads",
    "market": {"customers": 120_000, "days": 90, "seed": 7, "initial_stages": {"unaware": 0.7, "advocate": 0.3}},
    # everyone equally responsive, so a constant daily chance is the law (no mixture)
    "segments": {"all": {"share": 1.0, "responsiveness_spread": 0.0}},
    "organic": {"advance": {"unaware": 0.004, "aware": 0.02, "engaged": 0.05, "subscribed": 0.02}},
    "referrals": {"rates": {"advocate": 0.01}, "referred_conversion": 2.5},
    "channels": {"programme": {"pricing": "commission", "commission": 5.0, "friend_discount": 20.0}},
    "offers": {"entry": {"price": 50.0, "price_sensitivity": 0.02}, "core": {"price": 100.0}},
}
ALPHA = per_test_alpha(6)


def scenario(**changes):
    raw = {**WORLD, **changes}
    return cvj.scenario.validate_scenario(raw)


def daily_chance(cu, frm, to, referred):
    """MLE of a constant daily chance of moving ``frm -> to`` among customers who entered
    ``frm`` during the run, acquired by referral or not: moves / days at risk (a customer
    is at risk from the day after it entered until it moves or the horizon)."""
    start = cu[f"day_{frm}"]
    end = cu[f"day_{to}"]
    ok = start.notna() & (start > 0) & ((cu.acquired_by == "referral") == referred)
    moved = end[ok].notna()
    horizon = WORLD["market"]["days"]
    at_risk = np.where(moved, end[ok] - start[ok], horizon - start[ok])
    return moved.sum() / at_risk.sum(), at_risk.sum()


@pytest.fixture(scope="module")
def customers():
    return cvj.run(scenario(), customers_table=True).tables["customers"].to_pandas()


TAKE = math.exp(-0.02 * 50.0)  # the entry offer's take rate at a price of 50 (segment price sensitivity 1)
FRIEND = math.exp(-0.02 * 30.0)  # and at the friend's price, 50 - 20


@pytest.mark.parametrize("frm,to,base,referred,other", [
    ("aware", "engaged", 0.02, 2.5, 1.0),
    ("engaged", "subscribed", 0.05, 2.5, 1.0),
    ("subscribed", "converted", 0.02, 2.5 * FRIEND, TAKE),  # warm, and 20 off a price of 50
])
def test_referred_customers_move_on_at_the_written_chance(customers, frm, to, base, referred, other):
    """The hazard of a move scales: a daily chance p with multiplier m is 1 - (1 - p)^m."""
    z = two_sided_z(ALPHA)
    for who, mult in ((True, referred), (False, other)):
        want = -math.expm1(-hazard(base) * mult)
        got, days = daily_chance(customers, frm, to, referred=who)
        se = math.sqrt(want * (1 - want) / days)
        assert abs(got - want) < z * se, (who, got, want)
        if who:  # power: the same test rejects a referred multiplier 15 % off
            assert abs(-math.expm1(-hazard(base) * mult * 0.85) - want) > 2 * z * se


def test_without_warmth_or_discount_there_are_no_referred_rows():
    plain = compile_scenario(scenario(referrals={"rates": {"advocate": 0.01}}, channels={}))
    assert plain.ref_block == 0 and plain.n_rows == plain.crow_of.size
    warm = compile_scenario(scenario())
    assert warm.ref_block == plain.n_rows and warm.n_rows == 2 * plain.n_rows
    np.testing.assert_array_equal(warm.crow_of[warm.ref_block :], plain.crow_of)

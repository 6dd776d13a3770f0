"""The Mesa layer: identity with ``cvj.run`` under the fixed policy, the DataCollector's
daily KPIs, and the marketer's ``shift`` policy on a scenario with a clearly better
channel."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.compute as pc
import pytest

import cvj
from cvj.mesa_model import (
    ChannelAgent,
    JourneyModel,
    MarketerAgent,
    MarketerSettings,
    run_model,
)
from cvj.model import compile_scenario
from cvj.scenario import ScenarioError, validate_scenario

SMALL = {"market.customers": 20_000, "market.days": 90}


@pytest.mark.parametrize("replication", [0, 3])
def test_fixed_policy_gives_the_tables_of_sim_run(replication):
    sc = cvj.load_scenario(None, SMALL)
    mesa_tables = run_model(compile_scenario(sc), replication)
    run_tables = cvj.run(sc, replications=[replication]).tables
    for name in ("daily_stages", "transitions", "finance", "summary"):
        assert mesa_tables[name].equals(run_tables[name]), name
    assert mesa_tables["budget_moves"].num_rows == 0


def test_model_is_a_mesa_model_with_agents_and_steps():
    sc = cvj.load_scenario(None, {"market.customers": 2_000, "market.days": 10})
    m = JourneyModel(compile_scenario(sc), 0)
    assert len(m.agents_by_type[ChannelAgent]) == len(sc.channels)
    assert len(m.agents_by_type[MarketerAgent]) == 1
    m.step()
    assert m.steps == 1 and m.day == 1 and m.running
    m.run_model()
    assert m.steps == 10 and m.day == 10 and not m.running


def test_daily_kpis_add_up_to_the_summary():
    sc = cvj.load_scenario(None, SMALL)
    t = run_model(compile_scenario(sc), 1)
    k, s = t["kpis_daily"], t["summary"].to_pylist()[0]
    assert k.column("day").to_pylist() == list(range(1, sc.market.days + 1))
    assert math.isclose(pc.sum(k.column("spend")).as_py(), s["spend"], rel_tol=1e-12)
    assert math.isclose(pc.sum(k.column("revenue")).as_py(), s["revenue"], rel_tol=1e-12)
    assert pc.sum(k.column("conversions")).as_py() == s["conversions"]
    assert math.isclose(k.column("profit_to_date")[-1].as_py(), s["profit"], rel_tol=1e-9)
    assert math.isclose(k.column("cac_to_date")[-1].as_py(), s["cac"], rel_tol=1e-9)
    ch = sc.channel_names[0]
    assert k.column(f"budget_{ch}").to_pylist()[0] == sc.channels[ch].daily_budget


# --------------------------------------------------------------------------- shift policy


def two_channel_scenario(good: str) -> cvj.Scenario:
    """Two CPM channels with the same price, budget and audience; ``good`` pushes people
    on ten times as hard as the other one."""
    strong = {"unaware->aware": 0.05, "aware->engaged": 0.05}
    weak = {"unaware->aware": 0.005, "aware->engaged": 0.005}
    channel = {"pricing": "cpm", "unit_cost": 5.0, "daily_budget": 100.0, "saturation": 1.0}
    return validate_scenario(
        {
            "format": 1,
            "name": "two-channels",
            "market": {"customers": 20_000, "days": 140, "seed": 5},
            "organic": {
                "advance": {"engaged": 0.05, "subscribed": 0.05, "converted": 0.05, "excited": 0.02},
                "lapse": {"aware": 0.01, "engaged": 0.01, "subscribed": 0.01},
            },
            "channels": {
                "alpha": dict(channel, pushes=strong if good == "alpha" else weak),
                "beta": dict(channel, pushes=strong if good == "beta" else weak),
            },
            "offers": {"entry": {"price": 10.0, "unit_cost": 2.0}, "core": {"price": 60.0, "unit_cost": 20.0}},
        }
    )


@pytest.mark.parametrize("good", ["alpha", "beta"])
def test_shift_moves_budget_toward_the_better_channel_within_caps(good):
    bad = "beta" if good == "alpha" else "alpha"
    cap_good, total_cap = 160.0, 200.0
    settings = MarketerSettings(
        policy="shift", review_days=7, shift_fraction=0.2, channel_caps={good: cap_good, bad: 150.0}, daily_budget_cap=total_cap
    )
    sc = two_channel_scenario(good)
    t = run_model(compile_scenario(sc), 0, settings)
    moves = t["budget_moves"].to_pylist()
    assert moves, "the marketer never moved budget"
    assert all(m["from_channel"] == bad and m["to_channel"] == good for m in moves), moves
    assert all(m["amount"] > 0 and m["day"] % 7 == 0 for m in moves)
    k = t["kpis_daily"]
    b_good = np.array(k.column(f"budget_{good}").to_pylist())
    b_bad = np.array(k.column(f"budget_{bad}").to_pylist())
    assert b_good.max() <= cap_good + 1e-9 and b_bad.max() <= 150.0 + 1e-9
    assert b_good.min() >= 0 and b_bad.min() >= 0
    assert (b_good + b_bad).max() <= total_cap + 1e-9
    assert b_good[-1] > 100.0 > b_bad[-1]
    # the finance table carries the budgets the engine was given, and spend stays within them
    f = t["finance"].filter(pc.equal(t["finance"].column("kind"), "channel")).to_pylist()
    assert all(r["spend"] <= r["budget"] + 1e-9 for r in f)
    assert max(r["budget"] for r in f if r["item"] == good) == b_good.max()


def test_total_cap_cuts_the_plan_before_day_one():
    sc = two_channel_scenario("alpha")
    settings = MarketerSettings(policy="shift", daily_budget_cap=150.0)
    m = JourneyModel(compile_scenario(sc), 0, settings)
    m.step()
    moves = m.tables()["budget_moves"].to_pylist()
    assert moves[0]["day"] == 0 and moves[0]["to_channel"] is None
    assert math.isclose(m.total_budget, 150.0)


def test_goals_met_means_no_correction():
    sc = two_channel_scenario("alpha")
    # a CAC target nobody can miss: the marketer has nothing to correct
    settings = MarketerSettings(policy="shift", target_cac=1e9)
    t = run_model(compile_scenario(sc), 0, settings)
    assert t["budget_moves"].num_rows == 0
    settings = MarketerSettings(policy="shift", target_roas=1e9)  # a ROAS nobody reaches
    moves = run_model(compile_scenario(sc), 0, settings)["budget_moves"].to_pylist()
    assert moves and all(m["reason"].startswith("roas ") for m in moves)


def test_unknown_marketer_channel_is_an_error():
    sc = two_channel_scenario("alpha")
    with pytest.raises(ScenarioError, match=r"marketer\.channel_caps\.gamma"):
        JourneyModel(compile_scenario(sc), 0, MarketerSettings(channel_caps={"gamma": 5.0}))

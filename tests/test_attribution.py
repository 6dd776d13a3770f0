"""cvj attribute against scenarios with a known answer.

- A channel whose push is 0 changes nothing: with common random numbers every paired
  difference (conversions, revenue, entries into every stage) is exactly 0, and only
  the spend differs, by exactly the channel's spend. Without common random numbers the
  differences are noise around 0 and the 95 % intervals must cover 0 at the nominal
  rate over many seeds (band below).
- A channel that is the only way into a stage shows all of it: with it off no one
  enters ``engaged`` or buys, so its incremental customers are the base's, replication
  by replication, and its Markov removal effect is 1.
- The counterfactual runs are the modified scenario's own runs: replication ``r`` of
  ``off ads`` equals ``cvj.run`` of the scenario with the same overrides, replication ``r``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import cvj
from cvj.attribution import BASE, attribute, counterfactuals, off_variant, step_variant
from cvj.scenario import override, validate_scenario
from cvj.study.stats import paired_contrast
from tests.stat_checks import FAMILY_ALPHA, per_test_alpha
from tests.test_cli import assert_user_error
from tests.test_cli import cvj as cvj_cli
from tests.test_study_stats import binomial_band

TINY = """
format = 2
name = "tiny"

[market]
customers = 1500
days = 40
seed = 1
initial_stages = { unaware = 0.9, aware = 0.1 }

[shop.conversion]
aware = 0.3
engaged = 0.05
subscribed = 0.08
excited = 0.05

[organic.advance]
engaged = 0.06
subscribed = 0.05
converted = 0.05
excited = 0.02

[organic.lapse]
aware = 0.01

[channels.ads]                 # the only way into engaged: no organic advance from aware
pricing = "cpm"
unit_cost = 5.0
daily_budget = 5.0
ctr = 0.02
aware_per_impression = 0.01
audience = { stages = ["unaware", "aware"] }

[channels.dud]                 # spends, and its push is 0
pricing = "cpc"
unit_cost = 1.0
daily_budget = 2.0
pushes = { "aware->engaged" = 0.0 }
audience = 1000

[channels.retainer]
pricing = "fixed"
monthly_cost = 300.0
contacts_per_day = 20.0
audience = { stages = ["subscribed"] }

[offers.entry]
price = 10.0

[offers.core]
price = 50.0
repeat_rate = 0.001
"""


def tiny(**overrides):
    import tomllib

    sc = validate_scenario(tomllib.loads(TINY), source="<tiny>")
    return override(sc, overrides)


@pytest.fixture(scope="module")
def result():
    return attribute(tiny(), replications=4, step=0.5, workers=1, threads=1, touch_paths=True)


def runs_of(res, variant):
    return [r for r in res.runs.to_pylist() if r["variant"] == variant]


def test_a_zero_push_changes_nothing_but_the_spend(result):
    g = result.get
    for measure in ("conversions", "revenue", *(f"entered_{s}" for s in ("aware", "engaged", "subscribed", "converted"))):
        row = g("dud", measure)
        assert (row["value"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0), measure
    spend = g("dud", "spend")
    own = g("dud", "channel_spend", "base")
    assert spend["value"] == pytest.approx(own["value"]) == pytest.approx(2.0 * 40)
    assert g("dud", "profit")["value"] == pytest.approx(-own["value"])
    # no touch of dud on any path: every model gives it nothing
    for model in ("first_touch", "last_touch", "linear", "markov"):
        assert g("dud", "conversions", model)["value"] == 0.0
    assert g("dud", "removal_effect", "markov")["value"] == 0.0


def test_the_only_way_into_a_stage_shows_all_of_it(result):
    base = runs_of(result, BASE)
    off = runs_of(result, off_variant("ads"))
    assert all(r["conversions"] == 0 and r["revenue"] == 0 for r in off)
    assert sum(r["conversions"] for r in base) > 0
    diffs = [b["conversions"] - o["conversions"] for b, o in zip(base, off)]
    assert diffs == [b["conversions"] for b in base]
    row = result.get("ads", "conversions")
    c = paired_contrast([b["conversions"] for b in base], [0] * len(base))
    assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx((c["mean_difference"], c["ci_low"], c["ci_high"]))
    # every converting path holds ads (it is the only way into engaged), so removing it
    # from the chain removes every conversion
    assert result.get("ads", "removal_effect", "markov")["value"] == pytest.approx(1.0)
    # and no one enters engaged without it: the standalone run of the modified scenario
    sc = override(tiny(), counterfactuals(tiny(), 0.5)[off_variant("ads")])
    t = cvj.run(sc, replications=[2], threads=1).tables["transitions"].to_pylist()
    assert not [r for r in t if r["to_stage"] == "engaged"]


@pytest.mark.parametrize("variant", [BASE, off_variant("ads"), step_variant("ads"), step_variant("retainer")])
def test_counterfactual_runs_equal_standalone_runs_of_the_modified_scenario(result, variant):
    sc = override(tiny(), counterfactuals(tiny(), 0.5)[variant])
    alone = cvj.run(sc, replications=[1, 3], threads=1).summary.to_pylist()
    mine = [r for r in runs_of(result, variant) if r["replication"] in (1, 3)]
    for a, m in zip(alone, mine):
        assert {k: a[k] for k in a if k != "replication"} == {k: m[k] for k in a if k != "replication"}


def test_a_cut_retainer_spends_less_and_buys_fewer_sessions(result):
    # a retainer's cut is a schedule at (1 - step) x its monthly cost: half the spend
    base, cut = runs_of(result, BASE), runs_of(result, step_variant("retainer"))
    saved = [b["spend"] - c["spend"] for b, c in zip(base, cut)]
    assert saved == pytest.approx([300.0 / (365 / 12) * 40 / 2] * 4)
    assert result.get("retainer", "marginal_spend")["value"] == pytest.approx(saved[0])


def test_the_tables_and_the_touch_rows_are_written(result, tmp_path):
    out = result.write(tmp_path / "attr")
    info = json.loads((out / "_cvj.json").read_text())
    assert info["kind"] == "attribution" and info["replications"] == 4
    assert {"attribution", "runs", "paths", "touch_paths"} <= set(info["tables"])
    assert pq.read_table(out / "attribution").equals(result.table)
    assert "dud" in {w["path"].split(".")[1] for w in info["warnings"]}  # channel-without-effect
    rows = pq.read_table(out / "touch_paths")
    assert sorted(set(rows.column("replication").to_pylist())) == [0, 1, 2, 3]
    # one row per first move into a stage aware..promoter of the base runs (not a start)
    per_rep = dict(zip(*np.unique(rows.column("replication").to_numpy(), return_counts=True)))
    for r in range(4):
        t = cvj.run(tiny(), replications=[r], threads=1, customers_table=True).tables["customers"]
        moves = sum(t.num_rows - t.column(f"by_{s}").null_count for s in cvj.STAGES[1:9])
        assert per_rep[r] == moves > 0


def test_the_command_prints_claimed_against_true(tmp_path):
    f = tmp_path / "tiny.toml"
    f.write_text(TINY)
    p = cvj_cli("attribute", f, "--replications", 2, "--step", 0, "--workers", 1, "-q", "--out", tmp_path / "a")
    assert p.returncode == 0, p.stderr
    assert "Conversions: true (switching the channel off) vs claimed by attribution" in p.stdout
    assert "Markov" in p.stdout and "warning [channel-without-effect] channels.dud" in p.stderr
    assert (tmp_path / "a" / "attribution").is_dir() and not (tmp_path / "a" / "touch_paths").exists()
    assert_user_error(cvj_cli("attribute", f, "--touch-paths"), "--touch-paths needs --out")
    assert_user_error(cvj_cli("attribute", f, "--replications", 1), "--replications")


# --------------------------------------------------------------------------- coverage

#: independent studies (seeds) and replications per study for the coverage check
SEEDS = 100
REPLICATIONS = 3


@pytest.mark.slow
def test_a_zero_effect_has_a_ci_covering_0_at_the_nominal_rate():
    """Without common random numbers, ``dud`` on and off differ only by noise: the true
    difference in conversions is 0. Over SEEDS independent attributions the number of
    95 % intervals covering 0 is Binomial(SEEDS, 0.95) if the intervals are right; it
    must fall in the two-sided band of level FAMILY_ALPHA / 2 (two checks here). Power:
    intervals a quarter as wide (t quantile 1.08 instead of 4.30 with 2 degrees of
    freedom: expected coverage P(|T2| < 1.08) = 0.61) fall below the band, and so does
    ``ads``, whose effect is real."""
    covered, narrow, real = 0, 0, 0
    for seed in range(SEEDS):
        res = attribute(tiny(**{"market.seed": seed}), replications=REPLICATIONS, step=0.0, workers=1, threads=1,
                        common_random_numbers=False)
        r = res.get("dud", "conversions")
        covered += r["ci_low"] <= 0.0 <= r["ci_high"]
        hw = (r["ci_high"] - r["ci_low"]) / 8  # a quarter of the half-width
        narrow += r["value"] - hw <= 0.0 <= r["value"] + hw
        a = res.get("ads", "conversions")
        real += a["ci_low"] <= 0.0 <= a["ci_high"]
    lo, hi = binomial_band(SEEDS, 0.95, per_test_alpha(2, FAMILY_ALPHA))
    # SEEDS = 100, p = 0.95: sd = sqrt(100 * 0.95 * 0.05) = 2.18; the band is about 95 -8 / +5
    assert lo <= covered <= hi, f"{covered}/{SEEDS} intervals cover 0, expected {lo}..{hi}"
    assert narrow < lo, f"intervals a quarter as wide still cover 0 in {narrow}/{SEEDS}: the check has no power"
    assert real < lo, f"the real effect of ads is covered by 0 in {real}/{SEEDS}"


def test_the_runs_memory_check_counts_the_customers_table_the_base_runs_build(monkeypatch):
    import cvj.study.runner

    calls = []
    monkeypatch.setattr(cvj.study.runner, "check_memory", lambda n, customers_table=False: calls.append((n, customers_table)))
    attribute(tiny(), replications=2, step=0.0, workers=1, threads=1)
    assert calls == [(1500, True)]

"""Thinning of the unaware (docs/model.md, "Thinning of the unaware"): the day kernel
looks at an unaware customer only when the first ``k`` bits of its uniform are 0. The
depth ``k`` is the engine's choice (``cvj.engine.thinning_level``) and must not change
anything; a depth deeper than the day's chances allow must (the check can fail); and
the rule is monotone in the chances with the same draws (common random numbers)."""

import numpy as np
import pytest

import cvj
import cvj.engine as engine_mod
from cvj.engine import Engine, thinning_level, unaware_column
from cvj.kernels.journey import THIN_MAX
from cvj.model import compile_scenario

SMALL = {"market.customers": 20_000, "market.days": 20, "market.seed": 3}


def run(cm, days, depth=None, monkeypatch=None):
    if depth is not None:
        monkeypatch.setattr(engine_mod, "thinning_level", depth)
    e = Engine(cm)
    for _ in range(days):
        e.step()
    return e


def same(a, b):
    for name in ("stage", "row", "sx", "orders", "clock", "last_order", "acquired", "converted", "revenue", "active"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.history.flows, b.history.flows)
    np.testing.assert_array_equal(a.history.offer_units, b.history.offer_units)


def test_the_default_is_thinned_and_its_bitmap_marks_who_is_past_unaware():
    cm = compile_scenario(cvj.load_scenario(None, SMALL))
    assert unaware_column(cm) >= 0
    e = run(cm, 5)
    bits = np.unpackbits(e.active.view(np.uint8), bitorder="little")[: cm.customers].astype(bool)
    np.testing.assert_array_equal(bits, e.stage != 0)
    assert (e.stage == 0).mean() > 0.9 and e.history.flows[1:, :, 0].sum() > 50  # many unaware, many acquired


def test_every_valid_depth_gives_the_same_run(monkeypatch):
    cm = compile_scenario(cvj.load_scenario(None, SMALL))
    chosen = []

    def record(thr, col):
        k = thinning_level(thr, col)
        chosen.append(k)
        return k

    base = run(cm, SMALL["market.days"], record, monkeypatch)
    # the default's budgets in a market of 20,000: unaware chances up to a few % a day,
    # so most unaware customers are still skipped (at 10^6 and more the depth is 7)
    assert min(chosen) >= 3
    for depth in (0, 2, 4):
        other = run(cm, SMALL["market.days"], lambda thr, col, k=depth: min(k, thinning_level(thr, col)), monkeypatch)
        same(base, other)


def test_a_depth_deeper_than_the_chances_allow_loses_events(monkeypatch):
    """Power: thinning one level deeper than valid skips customers whose uniform is
    below their chance but whose first bits are not all 0; the runs then differ."""
    cm = compile_scenario(cvj.load_scenario(None, SMALL))
    base = run(cm, 10)
    deeper = run(cm, 10, lambda thr, col: min(THIN_MAX, thinning_level(thr, col) + 2), monkeypatch)
    assert deeper.history.flows[1:, :, 0].sum() < base.history.flows[1:, :, 0].sum()


@pytest.mark.parametrize("budget", [1.5, 3.0])
def test_more_budget_acquires_everyone_less_budget_did(budget):
    """Common random numbers: on day 1 (the same starting state) a bigger paid social
    budget raises every unaware chance, so its acquired customers include all of the
    smaller budget's."""
    raw = {**SMALL, "market.days": 1}
    low = Engine(compile_scenario(cvj.load_scenario(None, raw)))
    low.step()
    sc = cvj.load_scenario(None, raw)
    high_budget = sc.channels["paid_social"].daily_budget * budget
    high = Engine(compile_scenario(cvj.load_scenario(None, {**raw, "channels.paid_social.daily_budget": high_budget})))
    high.step()
    got_low, got_high = low.stage != 0, high.stage != 0
    start = Engine(compile_scenario(cvj.load_scenario(None, raw))).stage != 0
    assert (got_low & ~start).sum() > 20
    assert (got_high & ~start).sum() > (got_low & ~start).sum()
    assert not (got_low & ~got_high).any()

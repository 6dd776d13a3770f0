"""The benchmarks' NumPy, pure-Python and Mesa implementations simulate the kernel's model.

They draw different random numbers (NumPy's SFC64, Python's Mersenne Twister) from
the kernel's counter-based ones, so they are compared in distribution: same scenario,
each run once with a fixed seed, counts compared with tolerances derived here. The
scenarios are the format-2 default (customers with memory: rates by days since the
last activity, order classes, audiences with recency windows and exact days, email
permission that an unsubscribe removes, age bands), the same with every stage
populated from day 0 and reactivation on (so every branch runs), and the format-1
shop (one column per stage).

For a count ``n`` that is a sum over customers of independent per-customer counts,
each with variance at most its mean (a Bernoulli has ``p(1 - p) <= p``; a customer
moves out of a stage by a given cause, lapses, or unsubscribes from a stage at most a
few times), ``Var(n) <= E(n)``; the difference of two independent runs has
``Var(a - b) <= E(a) + E(b)``, estimated by ``a + b``. Repeat purchases are the
exception: a customer may buy many times, and later orders are likelier (order-class
multipliers), so a customer's count can be over-dispersed. Counts made of repeat
orders (units of the core offer and upsells, repeat orders by order class and gap)
get the variance ``phi * (a + b)``, where ``phi >= 1`` is the index of dispersion
(variance over mean) of orders per customer at the end, measured on both runs'
customers. For a customer count by (segment x band, stage) or by (segment x flag
cell, column) at the end of the run, each customer of segment ``g`` is in the cell or
not (a Bernoulli), so ``Var <= N_g p (1 - p)`` with the pooled
``p = (a + b) / (2 N_g)``. Each comparison is a two-sided z test; ``m`` comparisons
share the family-wise error ``FAMILY_ALPHA`` (0.001) by Bonferroni, so each uses
``z = Phi^-1(1 - FAMILY_ALPHA / (2 m))`` (about 4.7 for 150 comparisons). The runs are
seeded, so a pass is reproducible; the power checks show the tolerance makes a real
difference fail (a doubled organic rate; an implementation that forgets the day of
the last activity).

Customers are coupled only through the day tables (referrals, audiences, saturating
reach), which follow yesterday's counts; at these sizes that feedback moves the
counts by far less than the tolerance.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

import cvj
from benchmarks.mesa_impl import MemoryModel
from benchmarks.numpy_impl import NumpyEngine
from benchmarks.python_impl import PythonEngine
from cvj.engine import MAX_GAP, Engine
from cvj.model import MAX_DWELL, compile_scenario
from cvj.stages import CAUSE_REFERRAL, N_STAGES, OFFER_CORE, STAGES

from .conftest import ROOT
from .stat_checks import NO_JIT, per_test_alpha, two_sided_z

#: (customers, days) of each comparison; with NUMBA_DISABLE_JIT (the coverage run) the
#: kernel runs as plain Python, so the runs shrink
NUMPY_SIZE = (20_000, 60) if NO_JIT else (300_000, 200)
PYTHON_SIZE = (5_000, 60) if NO_JIT else (30_000, 120)
MESA_SIZE = (3_000, 40) if NO_JIT else (20_000, 90)
#: repeat orders are compared in bins of this many days since the previous order
GAP_BIN = 15

FORMAT1 = ROOT / "scenarios" / "handbag_shop_format1.toml"
#: every stage populated from day 0 and reactivation on, so every branch runs
#: (advances from every stage, lapses, reactivations, repeat purchases of every order
#: class, unsubscribes, word of mouth)
BUSY = {
    "market.initial_stages": {name: 0.1 for name in STAGES},
    "organic.reactivation": 0.01,
}
SCENARIOS = {"default": (None, {}), "busy": (None, BUSY), "format1": (FORMAT1, {})}


def _compiled(scenario: str, customers: int, days: int, extra: tuple = ()):
    path, overrides = SCENARIOS[scenario]
    sc = cvj.load_scenario(path, {"market.customers": customers, "market.days": days, **overrides, **dict(extra)})
    return compile_scenario(sc)


def _simulate(cls, cm):
    e = cls(cm)
    while not e.done:
        e.step()
    return e


@cache
def _kernel(scenario: str, customers: int, days: int):
    return _simulate(Engine, _compiled(scenario, customers, days))


def _state(e) -> dict[str, np.ndarray]:
    """Each customer's stage, table row, slot, orders and last-activity day, as arrays."""
    names = ("stage", "row", "sx", "orders", "clock")
    if isinstance(e, MemoryModel):
        agents = list(e.agents)
        return {n: np.array([getattr(a, n) for a in agents], np.int64) for n in names}
    return {n: np.asarray(getattr(e, n)).astype(np.int64) for n in names}


def _dispersion(*engines) -> float:
    """Index of dispersion (variance / mean, at least 1) of orders per customer at the end."""
    orders = np.concatenate([_state(e)["orders"] for e in engines]).astype(np.float64)
    mean = orders.mean()
    return max(1.0, float(orders.var(ddof=1) / mean)) if mean > 0 else 1.0


def _binned_gaps(gaps: np.ndarray) -> np.ndarray:
    bins = np.arange(MAX_GAP + 1) // GAP_BIN
    return np.stack([np.bincount(bins, weights=row) for row in gaps]).round().astype(np.int64)


def _compare(a, b) -> list[str]:
    """Every test of engine ``a`` against engine ``b``; returns the failures."""
    ha, hb = a.history, b.history
    cm = a.cm
    B, W = cm.n_bands, cm.width
    seg_sizes = np.diff(np.concatenate([[0], cm.seg_end])).astype(np.float64)
    phi = _dispersion(a, b)

    def bernoulli_sd(x, y, n_g):
        p = (x + y) / (2 * n_g)
        return np.sqrt(2 * n_g * p * (1 - p))

    # (1) customers by (segment x band, stage) at the end: Bernoulli per customer of the segment
    end_a, end_b = ha.stages[-1], hb.stages[-1]
    n_fb = np.repeat(seg_sizes, B)[:, None] * np.ones((1, N_STAGES))
    pairs = [("customers at the end", end_a, end_b, bernoulli_sd(end_a, end_b, n_fb))]
    # (2) moves by (segment x band, stage, cause or lapse), unsubscribes by (segment x
    # band, stage), conversions by (segment x band, acquiring cause) and units by
    # (segment x band, offer) over the run
    for what, x, y in (
        ("moves", ha.flows.sum(axis=0), hb.flows.sum(axis=0)),
        ("unsubscribes", ha.unsubscribes.sum(axis=0), hb.unsubscribes.sum(axis=0)),
        ("conversions by acquiring cause", ha.first_touch.sum(axis=0), hb.first_touch.sum(axis=0)),
    ):
        pairs.append((what, x, y, np.sqrt(x + y)))
    units_a, units_b = ha.offer_units.sum(axis=0), hb.offer_units.sum(axis=0)
    repeat = (np.arange(cm.n_offers) >= OFFER_CORE)[None, :]  # core (first and repeat) and upsells
    pairs.append(("units bought", units_a, units_b, np.sqrt(np.where(repeat, phi, 1.0) * (units_a + units_b))))
    # (3) repeat orders by order class and days since the previous order
    gaps_a, gaps_b = _binned_gaps(ha.gaps), _binned_gaps(hb.gaps)
    pairs.append(("repeat orders by (class, gap bin)", gaps_a, gaps_b, np.sqrt(phi * (gaps_a + gaps_b))))
    # (4) the audience cells the next day's channels read: customers by (segment x
    # flag cell, column) at the end
    if a.cells is not None or b.cells is not None:
        n_cell = np.repeat(seg_sizes, W)[:, None] * np.ones((1, cm.layout.n_cols))
        pairs.append(("audience cells at the end", a.cells, b.cells, bernoulli_sd(a.cells, b.cells, n_cell)))
    m = sum(int((sd > 0).sum()) for *_, sd in pairs)
    z = two_sided_z(per_test_alpha(m))
    failures = []
    for what, x, y, sd in pairs:
        for idx in zip(*np.nonzero(sd > 0)):
            diff = abs(float(x[idx]) - float(y[idx]))
            if diff > z * sd[idx]:
                where = tuple(int(i) for i in idx)
                failures.append(f"{what}{where}: {x[idx]} vs {y[idx]}, |diff| {diff:.0f} > {z:.2f} * {sd[idx]:.1f}")
    return failures


def _check_bookkeeping(e) -> None:
    """The state and the counts built from the day's moves agree exactly: customers by
    (segment x band, stage), and the audience cells of tomorrow counted during the day
    against the cells recomputed from the state; every customer's slot is its
    (stage, orders) slot."""
    cm = e.cm
    st = _state(e)
    GB = cm.n_segments * cm.n_bands
    fb = cm.fb_of[st["row"]]
    counts = np.bincount(fb * N_STAGES + st["stage"], minlength=GB * N_STAGES).reshape(GB, N_STAGES)
    np.testing.assert_array_equal(counts, e.history.stages[-1])
    assert (e.history.stages.sum(axis=(1, 2)) == cm.customers).all()
    lay = cm.layout
    np.testing.assert_array_equal(st["sx"], lay.sx_of[st["stage"], st["orders"]])
    if e.cells is not None:
        dwell = np.minimum(cm.days + 1 - st["clock"], MAX_DWELL)
        col = lay.colf[st["sx"] * (MAX_DWELL + 1) + dwell]
        n = cm.n_segments * cm.width * lay.n_cols
        cells = np.bincount(cm.crow_of[st["row"]] * lay.n_cols + col, minlength=n).reshape(-1, lay.n_cols)
        np.testing.assert_array_equal(cells, e.cells)


def _assert_same_model(cls, scenario, size):
    kernel = _kernel(scenario, *size)
    other = _simulate(cls, _compiled(scenario, *size))
    _check_bookkeeping(other)
    h = other.history
    if scenario == "busy":  # the comparison is not vacuous: every mechanism ran
        assert h.flows[:, :, :, -1].sum() > 0 and h.unsubscribes.sum() > 0 and h.gaps.sum() > 0
        assert h.offer_units[:, :, OFFER_CORE + 1 :].sum() > 0  # upsells
        assert h.flows[:, :, 0, CAUSE_REFERRAL].sum() > 0  # people acquired by word of mouth
    assert _compare(other, kernel) == []


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_numpy_impl_is_the_kernels_model(scenario):
    _assert_same_model(NumpyEngine, scenario, NUMPY_SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_python_impl_is_the_kernels_model(scenario):
    _assert_same_model(PythonEngine, scenario, PYTHON_SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_mesa_impl_is_the_kernels_model(scenario):
    _assert_same_model(MemoryModel, scenario, MESA_SIZE)


class _Forgetful(NumpyEngine):
    """The NumPy model without memory of the last activity: every customer's days since
    its last activity count from day 0 (as if nothing had ever happened to it)."""

    def step(self, budgets=None):
        super().step(budgets)
        self.clock[:] = 0


@pytest.mark.skipif(NO_JIT, reason="needs the compiled kernel: 60M customer-days")
@pytest.mark.parametrize(
    "cls,extra",
    [(NumpyEngine, (("organic.advance.aware", 0.002),)), (_Forgetful, ())],
    ids=["aware-rate-doubled", "no-memory"],
)
def test_the_comparison_catches_a_different_model(cls, extra):
    """Power check: the same comparison fails when one implementation's model differs:
    organic movement from aware twice as likely (0.002 against the default's 0.001), or
    days since the last activity that never restart (a model without memory)."""
    kernel = _kernel("default", *NUMPY_SIZE)
    other = _simulate(cls, _compiled("default", *NUMPY_SIZE, extra))
    assert _compare(other, kernel) != []

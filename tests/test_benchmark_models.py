"""The benchmarks' NumPy and pure-Python implementations simulate the kernel's model.

They draw different random numbers (NumPy's SFC64, Python's Mersenne Twister) from
the kernel's counter-based ones, so they are compared in distribution: same scenario,
each run once with a fixed seed, counts compared with tolerances derived here.

For a count ``n`` that is a sum over customers of independent per-customer counts,
each with variance at most its mean (a Bernoulli has ``p(1 - p) <= p``; the number of
repeat purchases of one customer is a sum of daily Bernoullis, likewise), ``Var(n) <=
E(n)``; the difference of two independent runs has ``Var(a - b) <= E(a) + E(b)``,
estimated by ``a + b``. For a customer count by (segment, stage) at the end of the run,
each customer is in the cell or not (a Bernoulli), so ``Var <= N_g p (1 - p)`` with
the pooled ``p = (a + b) / (2 N_g)``. Each comparison is a two-sided z test; ``m``
comparisons share the family-wise error ``FAMILY_ALPHA`` (0.001) by Bonferroni, so
each uses ``z = Phi^-1(1 - FAMILY_ALPHA / (2 m))`` (about 4.4 for 60 comparisons). The runs are seeded,
so a pass is reproducible; the tolerance is what makes a real difference (a wrong
cause, a lost lapse, a miscounted purchase) fail.

Customers are coupled only through the day tables (referrals, e-mail permission,
saturating reach), which follow yesterday's counts; at these sizes that feedback moves
the counts by far less than the tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

import cvj
from benchmarks.numpy_impl import NumpyEngine
from benchmarks.python_impl import PythonEngine
from cvj.engine import Engine
from cvj.model import compile_scenario
from cvj.scenario import RESPONSIVENESS_LEVELS
from cvj.stages import N_STAGES, STAGES

from .stat_checks import NO_JIT, per_test_alpha, two_sided_z

#: (customers, days) of each comparison; with NUMBA_DISABLE_JIT (the coverage run) the
#: kernel runs as plain Python, so the runs shrink
NUMPY_SIZE = (20_000, 60) if NO_JIT else (300_000, 200)
PYTHON_SIZE = (5_000, 60) if NO_JIT else (30_000, 120)

#: every stage populated from day 0 and reactivation on, so every branch runs
#: (advances from every stage, lapses, reactivations, repeat purchases, referred sales)
BUSY = {
    "market.initial_stages": {name: 0.1 for name in STAGES},
    "organic.reactivation": 0.01,
}


def _run(cls, customers, days, overrides=None):
    sc = cvj.load_scenario(None, {"market.customers": customers, "market.days": days, **(overrides or {})})
    e = cls(compile_scenario(sc))
    while not e.done:
        e.step()
    return e


def _compare(a, b) -> list[str]:
    """Every test of engine ``a`` against engine ``b``; returns the failures."""
    ha, hb = a.history, b.history
    seg_sizes = np.diff(np.concatenate([[0], a.cm.seg_end]))
    # (1) customers by (segment, stage) at the end: Bernoulli per customer
    end_a, end_b = ha.stages[-1], hb.stages[-1]
    n_g = np.broadcast_to(seg_sizes[:, None], end_a.shape).astype(np.float64)
    p = (end_a + end_b) / (2 * n_g)
    sd_stage = np.sqrt(2 * n_g * p * (1 - p))
    # (2) moves by (segment, stage, cause or lapse) and units by (segment, offer) over the run
    moves_a, moves_b = ha.flows.sum(axis=0), hb.flows.sum(axis=0)
    units_a, units_b = ha.offer_units.sum(axis=0), hb.offer_units.sum(axis=0)
    pairs = [
        ("customers at the end", end_a, end_b, sd_stage),
        ("moves", moves_a, moves_b, np.sqrt(moves_a + moves_b)),
        ("units bought", units_a, units_b, np.sqrt(units_a + units_b)),
    ]
    m = sum(int((sd > 0).sum()) for *_, sd in pairs)
    z = two_sided_z(per_test_alpha(m))
    failures = []
    for what, x, y, sd in pairs:
        for idx in zip(*np.nonzero(sd > 0)):
            diff = abs(float(x[idx]) - float(y[idx]))
            if diff > z * sd[idx]:
                failures.append(f"{what}{tuple(int(i) for i in idx)}: {x[idx]} vs {y[idx]}, |diff| {diff:.0f} > {z:.2f} * {sd[idx]:.1f}")
    return failures


def _check_bookkeeping(e, stage: np.ndarray, segment: np.ndarray) -> None:
    """The state arrays and the daily counts built from the moves agree exactly."""
    G = e.cm.n_segments
    counts = np.bincount(segment.astype(np.int64) * N_STAGES + stage, minlength=G * N_STAGES).reshape(G, N_STAGES)
    np.testing.assert_array_equal(counts, e.history.stages[-1])
    assert (e.history.stages.sum(axis=(1, 2)) == e.cm.customers).all()


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [None, BUSY], ids=["default", "busy"])
def test_numpy_impl_is_the_kernels_model(overrides):
    kernel = _run(Engine, *NUMPY_SIZE, overrides)
    numpy_ = _run(NumpyEngine, *NUMPY_SIZE, overrides)
    _check_bookkeeping(numpy_, numpy_.cell % N_STAGES, numpy_.cell // (N_STAGES * RESPONSIVENESS_LEVELS))
    assert _compare(numpy_, kernel) == []


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [None, BUSY], ids=["default", "busy"])
def test_python_impl_is_the_kernels_model(overrides):
    kernel = _run(Engine, *PYTHON_SIZE, overrides)
    python = _run(PythonEngine, *PYTHON_SIZE, overrides)
    stage = np.frombuffer(bytes(python.stage), np.uint8)
    profile = np.frombuffer(bytes(python.profile), np.uint8)
    _check_bookkeeping(python, stage, profile // RESPONSIVENESS_LEVELS)
    assert _compare(python, kernel) == []


@pytest.mark.skipif(NO_JIT, reason="needs the compiled kernel: 60M customer-days")
def test_the_comparison_catches_a_different_model():
    """Power check: the same comparison fails when one implementation's model differs
    (organic movement from aware twice as likely)."""
    kernel = _run(Engine, 300_000, 200)
    other = _run(NumpyEngine, 300_000, 200, {"organic.advance.aware": 0.004})
    assert _compare(other, kernel) != []

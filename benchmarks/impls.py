"""The implementations being compared, each as ``run(scenario, threads)``: simulate the
scenario from its validated form to the horizon (set-up included, output tables not).

All of them run the same scenario: the bundled default resized with
``cvj.load_scenario(None, {"market.customers": N, "market.days": D})``.
"""

from __future__ import annotations

from collections.abc import Callable

import cvj
from cvj.engine import Engine, use_threads
from cvj.model import compile_scenario
from cvj.scenario import Scenario

KERNEL, NUMPY, MESA, PYTHON = "kernel", "numpy", "mesa", "python"
#: in table order
NAMES = (KERNEL, NUMPY, MESA, PYTHON)
DESCRIPTION = {
    KERNEL: "Numba day kernel via cvj.engine.Engine",
    NUMPY: "NumPy, vectorised in blocks (benchmarks/numpy_impl.py)",
    MESA: "pure-Mesa per-customer reference (sim/reference.py)",
    PYTHON: "pure-Python loop over customers (benchmarks/python_impl.py)",
}
#: implementations that use more than one thread
THREADED = {KERNEL}


def scenario(customers: int, days: int) -> Scenario:
    """The default scenario resized."""
    return cvj.load_scenario(None, {"market.customers": int(customers), "market.days": int(days)})


def run_kernel(sc: Scenario, threads: int = 1):
    cm = compile_scenario(sc)
    with use_threads(threads):
        e = Engine(cm)
        while not e.done:
            e.step()
    return e


def run_numpy(sc: Scenario, threads: int = 1):
    from . import numpy_impl

    return numpy_impl.simulate(compile_scenario(sc))


def run_python(sc: Scenario, threads: int = 1):
    from . import python_impl

    return python_impl.simulate(compile_scenario(sc))


def run_mesa(sc: Scenario, threads: int = 1):
    from cvj.reference import simulate_reference

    return simulate_reference(sc, seed=sc.market.seed)


RUN: dict[str, Callable] = {KERNEL: run_kernel, NUMPY: run_numpy, MESA: run_mesa, PYTHON: run_python}


def warm_up(threads=(1,)) -> None:
    """Compile (or load from the cache) every kernel at each thread count, before timing."""
    sc = scenario(2_000, 2)
    for t in threads:
        run_kernel(sc, t)
    run_numpy(sc)


def kernel_state_bytes(customers: int = 100_000, track_customers: bool = False) -> float:
    """Bytes per customer of the Engine's per-customer arrays, from their ``nbytes``."""
    e = Engine(compile_scenario(scenario(customers, 1)), track_customers=track_customers)
    arrays = [e.stage, e.profile, e.acquired, e.converted, e.revenue, e.reached]
    return sum(a.nbytes for a in arrays) / customers

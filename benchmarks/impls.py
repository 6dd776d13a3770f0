"""The implementations and scenarios being compared.

Each implementation is ``run(scenario, threads)``: simulate a validated scenario to the
horizon (set-up included, output tables not). Each scenario is a name in
:data:`SCENARIOS`, resized with ``scenario(name, customers, days)``:

- ``default``: the bundled default, scenario format 2: customers with memory (rates by
  days since the last activity, order classes, audiences with recency windows and
  exact days, email permission, age bands) and the kernel's audience cell counting;
- ``format1``: the handbag shop in format 1 (``scenarios/handbag_shop_format1.toml``):
  one table column per stage, no audiences, no counting: the memoryless model the
  kernel ran before memory (its tables are bit-identical to the old kernel's);
- ``no-counting``: the default with the kernel's audience cell counting off: the
  audiences are counted once at the start and stay as they were (not the same
  journeys, the same work without the count);
- ``memoryless``: the default with every profile by days since the last activity
  replaced by its mean daily chance over a year, audiences without recency windows or
  exact days, and one order class: one column per stage, with the audience counting;
- ``memoryless-no-counting``: both.

The kernel runs every scenario; NumPy, pure Python and the Mesa version of the model
with memory (:mod:`benchmarks.mesa_impl`) run the default; the pure-Mesa reference
(:mod:`cvj.reference`, written for format 1) runs the format-1 shop.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from cvj.engine import Engine, use_threads
from cvj.model import compile_scenario
from cvj.scenario import Scenario, default_scenario_path, rate_at, read_toml, validate_scenario

KERNEL, NUMPY, MESA, PYTHON, MESA_REFERENCE = "kernel", "numpy", "mesa", "python", "mesa-reference"
#: in table order
NAMES = (KERNEL, NUMPY, MESA, PYTHON, MESA_REFERENCE)
DESCRIPTION = {
    KERNEL: "Numba day kernel via cvj.engine.Engine",
    NUMPY: "NumPy, vectorised in blocks (benchmarks/numpy_impl.py)",
    MESA: "Mesa, one agent per customer, model with memory (benchmarks/mesa_impl.py)",
    PYTHON: "pure-Python loop over customers (benchmarks/python_impl.py)",
    MESA_REFERENCE: "pure-Mesa reference of the format-1 model (sim/reference.py)",
}
#: implementations that use more than one thread
THREADED = {KERNEL}

DEFAULT, FORMAT1, NO_COUNTING, MEMORYLESS, MEMORYLESS_NO_COUNTING, NETWORK = (
    "default", "format1", "no-counting", "memoryless", "memoryless-no-counting", "network",
)
#: in table order
SCENARIOS = (DEFAULT, NO_COUNTING, MEMORYLESS, MEMORYLESS_NO_COUNTING, FORMAT1, NETWORK)
#: word of mouth on a social network instead of the mean-field hazard (the settings of
#: scenarios/compare_referral_programmes.toml)
NETWORK_SETTINGS = {"model": "network", "network": {"contacts": 20, "clustering": 0.3, "segment_homophily": 0.6,
                                                     "age_homophily": 0.4}}
FORMAT1_PATH = default_scenario_path().parent / "handbag_shop_format1.toml"
#: what each scenario has on: (per-customer memory, audience cell counting)
FEATURES = {
    DEFAULT: (True, True),
    NO_COUNTING: (True, False),
    MEMORYLESS: (False, True),
    MEMORYLESS_NO_COUNTING: (False, False),
    FORMAT1: (False, False),
    NETWORK: (True, True),
}
#: the scenario each implementation runs (the kernel runs any)
MODEL_OF = {NUMPY: DEFAULT, MESA: DEFAULT, PYTHON: DEFAULT, MESA_REFERENCE: FORMAT1}
#: scenarios whose day tables are compiled with the kernel's cell counting switched off
_NOT_COUNTED = {NO_COUNTING, MEMORYLESS_NO_COUNTING}


def memoryless(raw: dict) -> dict:
    """A format-2 scenario document without memory: every rate by days since the last
    activity becomes its mean daily chance over days 0..364, audiences lose their
    recency windows and exact days, the core offer its order multipliers."""
    sc = validate_scenario(copy.deepcopy(raw), source="<benchmark>")
    out = copy.deepcopy(raw)

    def flat(rate):
        return float(np.mean([rate_at(rate, d) for d in range(365)]))

    for kind in ("advance", "lapse"):
        for stage, rate in getattr(sc.organic, kind).items():
            if not isinstance(rate, (int, float)):
                out["organic"][kind][stage] = flat(rate)
    core = out["offers"]["core"]
    if not isinstance(sc.offers.core.repeat_rate, (int, float)):
        core["repeat_rate"] = flat(sc.offers.core.repeat_rate)
    core.pop("order_multipliers", None)
    for name, upsell in sc.offers.upsells.items():
        if not isinstance(upsell.take_rate, (int, float)):
            out["offers"]["upsells"][name]["take_rate"] = flat(upsell.take_rate)
    for ch in (out.get("channels") or {}).values():
        if isinstance(ch.get("audience"), dict):
            for key in ("within_days", "after_days", "days"):
                ch["audience"].pop(key, None)
    return out


@functools.cache
def _raw(name: str) -> dict:
    if name == FORMAT1:
        return read_toml(FORMAT1_PATH)
    raw = read_toml(default_scenario_path())
    if name == NETWORK:
        raw["referrals"].update(copy.deepcopy(NETWORK_SETTINGS))
    return memoryless(raw) if name in (MEMORYLESS, MEMORYLESS_NO_COUNTING) else raw


def scenario(name: str, customers: int, days: int) -> Scenario:
    """Scenario ``name`` (see :data:`SCENARIOS`) resized."""
    raw = copy.deepcopy(_raw(name))
    raw["market"].update(customers=int(customers), days=int(days))
    return validate_scenario(raw, source=f"<benchmark {name}>")


def run_kernel(sc: Scenario, threads: int = 1, counting: bool = True):
    cm = compile_scenario(sc)
    with use_threads(threads):
        if counting or not cm.count_cells:
            e = Engine(cm)
        else:
            # the engine sizes the kernel's count by Compiled.count_cells; off, the
            # audiences are read from the cells counted once here (public state)
            e = Engine(dataclasses.replace(cm, count_cells=False))
            e.cells = e._count_cells(day=1)
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
    from . import mesa_impl

    return mesa_impl.simulate(compile_scenario(sc))


def run_mesa_reference(sc: Scenario, threads: int = 1):
    from cvj.reference import simulate_reference

    return simulate_reference(sc, seed=sc.market.seed)


RUN: dict[str, Callable] = {
    KERNEL: run_kernel, NUMPY: run_numpy, MESA: run_mesa, PYTHON: run_python, MESA_REFERENCE: run_mesa_reference,
}


def runner(implementation: str, scenario_name: str = DEFAULT) -> Callable:
    """``run(scenario, threads)`` of one implementation for scenario ``scenario_name``
    (the kernel's cell counting is switched off for the ``*no-counting`` scenarios)."""
    if implementation == KERNEL and scenario_name in _NOT_COUNTED:
        return functools.partial(run_kernel, counting=False)
    return RUN[implementation]


def run(implementation: str, scenario_name: str, customers: int, days: int, threads: int = 1):
    """Simulate scenario ``scenario_name`` resized with one implementation."""
    return runner(implementation, scenario_name)(scenario(scenario_name, customers, days), threads)


def warm_up(threads=(1,)) -> None:
    """Compile (or load from the cache) every kernel at each thread count, before timing."""
    for name in (DEFAULT, FORMAT1):
        sc = scenario(name, 2_000, 2)
        for t in threads:
            run_kernel(sc, t)
    run_kernel(scenario(DEFAULT, 2_000, 2), threads[0], counting=False)
    run_numpy(scenario(DEFAULT, 2_000, 2))


#: the Engine's per-customer arrays (the 15 bytes and 1 bit of kernels/journey.py), and
#: those kept only for a customers table
STATE_ARRAYS = ("stage", "row", "sx", "orders", "clock", "last_order", "acquired", "converted", "revenue", "active")
TRACK_ARRAYS = ("reached", "reached_by")


def kernel_state_bytes(customers: int = 100_000, track_customers: bool = False) -> float:
    """Bytes per customer of the Engine's per-customer arrays, from their ``nbytes``."""
    e = Engine(compile_scenario(scenario(DEFAULT, customers, 1)), track_customers=track_customers)
    names = STATE_ARRAYS + (TRACK_ARRAYS if track_customers else ())
    arrays = [getattr(e, n) for n in names if getattr(e, n, None) is not None]
    return sum(a.nbytes for a in arrays) / customers


def numpy_state_bytes(customers: int = 100_000) -> float:
    """Bytes per customer of the NumPy implementation's per-customer arrays."""
    from . import numpy_impl

    return numpy_impl.NumpyEngine(compile_scenario(scenario(DEFAULT, customers, 1))).state_nbytes / customers

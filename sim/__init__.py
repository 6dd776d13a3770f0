"""cvj: an agent-based Monte Carlo simulator of customer value journeys.

Plain-Python API (the ``cvj`` CLI is a thin layer over it)::

    import sim
    sc = sim.load_scenario("scenarios/default.toml")   # or sim.load_scenario() for the default
    result = sim.run(sc, replications=1, threads=2)
    result.tables["summary"].to_pandas()
    result.write("results", force=True)

Heavy modules (numba kernels, pyarrow) load on first use, so ``cvj validate`` starts fast.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Scenario": "sim.scenario",
    "ScenarioError": "sim.scenario",
    "default_scenario_path": "sim.scenario",
    "load_scenario": "sim.scenario",
    "STAGES": "sim.stages",
    "Engine": "sim.engine",
    "compile_scenario": "sim.model",
    "OutputError": "sim.output",
}

# ``sim.run`` is both a module and the function; bind the function eagerly so that a
# later ``import sim.run`` elsewhere cannot shadow it (sim.run stays light to import).
from .run import RunResult, run  # noqa: E402

__all__ = ["__version__", "RunResult", "run", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sim' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)

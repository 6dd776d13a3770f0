"""cvj: an agent-based Monte Carlo simulator of customer value journeys.

Plain-Python API (the ``cvj`` CLI is a thin layer over it)::

    import cvj
    sc = cvj.load_scenario("scenarios/default.toml")   # or cvj.load_scenario() for the default
    result = cvj.run(sc, replications=1, threads=2)
    result.tables["summary"].to_pandas()
    result.write("results", force=True)

``import cvj`` loads pyarrow (with :func:`cvj.run`) but not numba: the kernels are
imported, and compiled or read from numba's cache, by the first
:class:`~cvj.engine.Engine`, so ``cvj validate`` never starts them.
"""

from importlib import import_module

from .version import __version__

_LAZY = {
    "Scenario": "cvj.scenario",
    "CvjError": "cvj.errors",
    "ScenarioError": "cvj.errors",
    "ArgumentError": "cvj.errors",
    "ResourceError": "cvj.errors",
    "ClusterError": "cvj.errors",
    "default_scenario_path": "cvj.scenario",
    "load_scenario": "cvj.scenario",
    "STAGES": "cvj.stages",
    "Engine": "cvj.engine",
    "compile_scenario": "cvj.model",
    "OutputError": "cvj.errors",
}

# ``cvj.run`` is both a module and the function; bind the function eagerly so that a
# later ``import cvj.run`` elsewhere cannot shadow it (cvj.run stays light to import).
from .run import RunResult, run  # noqa: E402

__all__ = ["__version__", "RunResult", "run", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cvj' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)

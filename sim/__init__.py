"""cvj: an agent-based Monte Carlo simulator of customer value journeys.

Plain-Python API (the ``cvj`` CLI is a thin layer over it)::

    import sim
    sc = sim.load_scenario("scenarios/default.toml")   # or sim.load_scenario() for the default
    result = sim.run(sc, replications=1, threads=2)
    result.tables["summary"].to_pandas()
    result.write("results", force=True)
"""

__version__ = "0.1.0"

from .scenario import Scenario, ScenarioError, default_scenario_path, load_scenario  # noqa: E402
from .stages import STAGES  # noqa: E402
from .run import RunResult, run  # noqa: E402
from .engine import Engine  # noqa: E402
from .model import compile_scenario  # noqa: E402
from .output import OutputError  # noqa: E402

__all__ = [
    "STAGES",
    "Engine",
    "OutputError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "__version__",
    "compile_scenario",
    "default_scenario_path",
    "load_scenario",
    "run",
]

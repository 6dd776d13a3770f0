"""Studies: a strategist's comparison of variants of a scenario, with replications,
common random numbers and paired confidence intervals.

The package's modules import one way (each only from those above it):

- :mod:`~cvj.study.spec`: the study document, validated into a frozen :class:`Study`;
- :mod:`~cvj.study.stats`: paired contrasts, replications needed, the ranking;
- :mod:`~cvj.study.output`: the output directory ``DIR`` (:class:`StudyDir`): reads
  and writes, computes nothing;
- :mod:`~cvj.study.runner`: the tasks, where they run, :func:`compare`;
- :mod:`~cvj.study.dask`: the Dask executor (imported only for a Dask run).

::

    import cvj.study
    study = cvj.study.load_study("scenarios/compare_entry_offers.toml")
    result = cvj.study.compare(study, workers=2)     # or scheduler=..., dask_workers=N
    result.contrasts                                 # pyarrow.Table
"""

from importlib import import_module

# Loaded on first use (as the cvj package does), so that a reader of a study's output
# (cvj report: the ranking from stats) does not import Mesa and the runner with it.
_LAZY = {
    "StudyDir": "output",
    "StudyResult": "runner",
    "compare": "runner",
    "run_task": "runner",
    "Study": "spec",
    "check_study": "spec",
    "load_study": "spec",
    "study_from_json": "spec",
    "tasks_of": "spec",
    "study_of": "spec",
    "contrasts": "stats",
    "defined_shares": "stats",
    "paired_ratio": "stats",
    "paired_contrast": "stats",
    "ranking": "stats",
    "replications_needed": "stats",
}

__all__ = [
    "Study",
    "StudyDir",
    "StudyResult",
    "check_study",
    "compare",
    "contrasts",
    "defined_shares",
    "load_study",
    "paired_contrast",
    "paired_ratio",
    "ranking",
    "replications_needed",
    "run_task",
    "study_from_json",
    "study_of",
    "tasks_of",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

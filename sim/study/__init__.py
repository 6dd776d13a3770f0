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

from .output import StudyDir
from .runner import StudyResult, compare, run_task
from .spec import Study, load_study, study_from_json, tasks_of
from .stats import contrasts, paired_contrast, ranking, replications_needed

__all__ = [
    "Study",
    "StudyDir",
    "StudyResult",
    "compare",
    "contrasts",
    "load_study",
    "paired_contrast",
    "ranking",
    "replications_needed",
    "run_task",
    "study_from_json",
    "tasks_of",
]

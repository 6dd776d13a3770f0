"""Running a study: every (variant, replication) as one pure task, on local worker
processes or a Dask cluster, then the contrasts.

:func:`compare` is the one entry point (the ``cvj compare`` command is a thin layer
over it): it chooses where the runs go (this process, a local process pool, a Dask
cluster of :mod:`cvj.study.dask`, or any executor given), checks once that the runs
sharing this machine fit in its memory, writes every run's tables as soon as the run
is back when given ``out`` (:class:`cvj.study.output.StudyDir`), and computes the
contrasts (:mod:`cvj.study.stats`). With common random numbers (the default)
replication ``r`` of every variant uses the same random stream keys, so replication
``r`` of a variant equals a standalone ``cvj run`` of its scenario with
``--replication r``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..engine import check_memory, use_threads
from ..errors import ArgumentError, ClusterError
from ..mesa_model import run_model
from ..model import compile_scenario
from ..scenario import validate_scenario
from ..touch import path_counts
from .output import StudyDir
from .spec import Study, load_study, study_from_json, tasks_of
from .stats import contrasts, ranking

Progress = Callable[[int, int], None]
Log = Callable[[str], None]


# --------------------------------------------------------------------------- one task


@functools.lru_cache(maxsize=8)
def _compiled(scenario_json: str):
    return compile_scenario(validate_scenario(json.loads(scenario_json), source="<study>"))


def run_task(study: Study | str, variant: str, replication: int) -> dict[str, pa.Table]:
    """Run replication ``replication`` of ``variant`` and return its tables.

    Pure: the same arguments give the same tables on any machine, process or number
    of threads. ``study`` is a :class:`Study` or its :meth:`Study.to_json` (plain
    text, for executors that ship arguments to other machines).

    Returns
    -------
    dict of pyarrow.Table
        ``daily_stages``, ``transitions``, ``finance``, ``summary`` (as ``cvj run``
        gives them for the variant's scenario and stream), ``budget_moves`` and
        ``kpis_daily`` (the Mesa DataCollector's model-level KPIs); for a variant of
        ``study.tracked`` also ``touch_paths`` (:func:`cvj.touch.path_counts`) and, with
        ``study.keep_customers``, ``customers``.
    """
    st = study_from_json(study) if isinstance(study, str) else study
    if variant not in st.variants:
        raise ArgumentError(f"no such variant; variants are {', '.join(st.variants)}", "variant", variant)
    if not 0 <= replication < st.replications:
        raise ArgumentError(f"must be in 0..{st.replications - 1}", "replication", replication)
    v = st.variants[variant]
    cm = _compiled(json.dumps(v.scenario.model_dump(mode="json"), separators=(",", ":")))
    track = variant in st.tracked
    tables = run_model(cm, st.stream(variant, replication), v.marketer, track_customers=track)
    if track:
        # the paths are small; the customers table (about 100 bytes a customer) comes
        # back only when asked for
        tables["touch_paths"] = path_counts(tables["customers"])
        if not st.keep_customers:
            del tables["customers"]
    return tables


def _worker_init(threads: int) -> None:
    # Ctrl-C goes to the whole process group: the parent alone decides what to do
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .. import kernels

    kernels.set_threads(max(1, min(threads, kernels.max_threads())))


# --------------------------------------------------------------------------- the result


def _without_replication(summary: pa.Table) -> pa.Table:
    return summary.drop_columns(["replication"]) if "replication" in summary.column_names else summary


@dataclass
class StudyResult:
    """KPIs of every run of a study and the contrasts between variants.

    ``summaries`` and ``moves`` hold every run's one-row ``summary`` (without its
    ``replication`` column: the run's stream is :meth:`Study.stream`) and its
    ``budget_moves``. ``parts`` holds every table of every run when the study ran
    without an output directory; with one (``out``) the per-day tables are only there.
    """

    study: Study
    summaries: dict[tuple[str, int], pa.Table]
    moves: dict[tuple[str, int], pa.Table]
    contrasts: pa.Table = field(default_factory=lambda: pa.table({}))
    target_halfwidth: dict[str, float] = field(default_factory=dict)
    parts: dict[tuple[str, int], dict[str, pa.Table]] = field(default_factory=dict)
    out: Path | None = None
    #: runs found done in ``out`` (resume) and runs computed by this call
    reused: int = 0
    computed: int = 0

    def _ordered(self) -> list[tuple[str, int]]:
        order = self.study.variant_names
        return sorted(self.summaries, key=lambda k: (order.index(k[0]), k[1]))

    @property
    def runs(self) -> pa.Table:
        """One row per (variant, replication): every KPI of ``summary``."""
        tables = []
        for v, r in self._ordered():
            s = _without_replication(self.summaries[(v, r)])
            n = s.num_rows
            s = s.add_column(0, "stream", pa.array([self.study.stream(v, r)] * n, pa.int32()))
            s = s.add_column(0, "replication", pa.array([r] * n, pa.int32()))
            tables.append(s.add_column(0, "variant", pa.array([v] * n, pa.string())))
        return pa.concat_tables(tables)

    @property
    def budget_moves(self) -> pa.Table:
        tables = []
        for (v, r), t in self.moves.items():
            t = t.add_column(0, "replication", pa.array([r] * t.num_rows, pa.int32()))
            tables.append(t.add_column(0, "variant", pa.array([v] * t.num_rows, pa.string())))
        t = pa.concat_tables(tables)
        return t.sort_by([("variant", "ascending"), ("replication", "ascending"), ("day", "ascending")]) if t.num_rows else t

    def run_rows(self) -> dict[str, list[dict]]:
        """KPI rows by variant, in replication order."""
        out = {v: [] for v in self.study.variant_names}
        for v, r in sorted(self.summaries, key=lambda k: k[1]):
            out[v].append(self.summaries[(v, r)].to_pylist()[0])
        return out

    def ranking(self) -> list[dict]:
        return ranking(self.study, self.run_rows())

    def write(self, out: str | os.PathLike, force: bool = False) -> Path:
        """Write every table as Parquet under ``out``, the way :func:`compare` with
        ``out=`` does (see :class:`cvj.study.output.StudyDir`)."""
        missing = [k for k in tasks_of(self.study) if k not in self.parts]
        if missing:
            where = f" (they are in {self.out})" if self.out is not None else ""
            raise ArgumentError(f"this result does not hold the tables of every run{where}")
        d = StudyDir(out, self.study, force=force)
        try:
            for (v, r), part in self.parts.items():
                d.write_partition(v, r, part)
            return d.finish(self.study_tables())
        finally:
            d.close()

    def study_tables(self) -> dict[str, pa.Table]:
        """The tables of the whole study (``runs``, ``contrasts``), as written at the end."""
        return {"runs": self.runs, "contrasts": self.contrasts}


# --------------------------------------------------------------------------- the runner


def compare(
    study: Study | str | os.PathLike,
    *,
    out: str | os.PathLike | StudyDir | None = None,
    resume: bool = False,
    force: bool = False,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    retries: int | None = None,
    executor: cf.Executor | None = None,
    progress: Progress | None = None,
    target_halfwidth: dict[str, float] | None = None,
    log: Log | None = None,
) -> StudyResult:
    """Run every variant x replication of a study and compare the variants.

    Where the runs go is chosen by at most one of ``workers`` (local processes, the
    default), ``scheduler`` (a running Dask cluster), ``dask_workers`` (a Dask
    ``LocalCluster`` started here and stopped at the end) and ``executor``; the tables
    are the same whichever is used.

    Parameters
    ----------
    study : Study or path
    out : path or cvj.study.output.StudyDir, optional
        Write the tables here as Parquet: every run's partition as soon as the run is
        back (in this process, whatever runs the tasks), the study tables (``runs``,
        ``contrasts``) at the end, then ``_cvj.json`` is marked complete. Without
        ``out`` every table stays in memory (``StudyResult.parts``).
    resume : bool
        ``out`` may hold this study already: runs whose partition is complete and
        valid are skipped, the others are run.
    force : bool
        Replace an existing ``out``.
    workers : int, optional
        Local worker processes (default: one per core, at most one per run). With 1
        everything runs in this process.
    threads : int, optional
        Kernel threads per run (default: the cores shared out among the workers of a
        machine). Results do not depend on it.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://HOST:PORT``).
    dask_workers : int, optional
        Start a local Dask cluster of this many worker processes.
    retries : int, optional
        Dask: how many times a task that raised is run again (default 2; a lost
        worker's tasks always move on).
    executor : concurrent.futures.Executor-like, optional
        Any object whose ``submit(fn, *args)`` returns a future with ``result()``.
        Tasks are ``run_task(study_json, variant, replication)`` with plain arguments.
    progress : callable(done, total), optional
        Called once at the start (``done``: runs already in ``out``) and after every
        finished run.
    target_halfwidth : dict, optional
        KPI -> wanted CI half-width of the difference; the contrasts then say how many
        replications would reach it.
    log : callable(str), optional
        Receives one line for each thing worth telling a person: a resumed ``out``,
        the Dask cluster used and its dashboard.

    Returns
    -------
    StudyResult

    Raises
    ------
    ArgumentError
        Exclusive options given together, an unknown KPI in ``target_halfwidth``.
    ResourceError
        The runs that share this machine would not fit in its memory.
    OutputError
        ``out`` cannot be used (see :class:`cvj.study.output.StudyDir`).
    ClusterError
        The Dask cluster cannot be reached, has no or the wrong workers, loses the runs
        or every worker that runs one dies.
    """
    st = study if isinstance(study, Study) else load_study(study)
    for k, v in (target_halfwidth or {}).items():
        if k not in st.kpis:
            raise ArgumentError(f"not one of the study's kpis ({', '.join(st.kpis)})", "target_halfwidth", k)
        if not v > 0:
            raise ArgumentError("must be positive", f"target_halfwidth.{k}", v)
    where = (("workers", workers), ("scheduler", scheduler), ("dask_workers", dask_workers), ("executor", executor))
    given = [n for n, v in where if v is not None]
    if len(given) > 1:
        raise ArgumentError(
            f"{' and '.join(given)} exclude each other: local processes, a Dask cluster, a local Dask cluster or an executor"
        )
    dask = scheduler is not None or dask_workers is not None
    if retries is not None and not dask:
        raise ArgumentError("applies to Dask runs (scheduler or dask_workers)", "retries", retries)
    if resume and out is None:
        raise ArgumentError("needs out (the directory of the study to finish)", "resume", resume)
    if isinstance(out, StudyDir):
        sink = out
    else:
        sink = StudyDir(out, st, resume=resume, force=force) if out is not None else None  # fail early, before any cluster
    try:
        todo = [k for k in tasks_of(st) if sink is None or k not in sink.done]
        total = len(tasks_of(st))
        if sink is not None and sink.done and log is not None:
            log(f"resuming {sink.root}: {len(sink.done)} of {total} runs are done, {len(todo)} to run")
        local = 0 if dask or executor is not None else _local_workers(workers, len(todo))
        sharing = dask_workers or local  # runs held in this machine's memory at once (a remote cluster: none)
        if todo and sharing:
            # a tracked variant's run builds its customers table before reducing it to paths
            check_memory(
                max(v.scenario.market.simulated for v in st.variants.values()) * sharing, customers_table=bool(st.tracked)
            )
        if not dask:
            return _run(st, sink, todo, local, threads, executor, progress, target_halfwidth)
        with _dask_cluster(scheduler, dask_workers, threads, retries, log) as ex:
            return _on_dask(st, sink, todo, ex, progress, target_halfwidth)
    finally:
        if sink is not None:
            sink.close()


def _local_workers(workers: int | None, runs: int) -> int:
    return max(1, min(workers or os.cpu_count() or 1, runs))


@contextlib.contextmanager
def _dask_cluster(scheduler, dask_workers, threads, retries, log):
    from .dask import dask_executor  # Dask is imported only for a Dask run

    options = {} if retries is None else {"retries": retries}
    with dask_executor(scheduler, workers=dask_workers, threads=threads, **options) as ex:
        if log is not None:
            log(ex.describe())
            board = ex.dashboard()
            if board is not None:
                link, graphs = board
                log(f"Dask dashboard: {link}" + ("" if graphs else " (no graphs: the scheduler has no bokeh)"))
        yield ex


def _on_dask(st, sink, todo, ex, progress, target_halfwidth) -> StudyResult:
    """:func:`_run` on a Dask executor; a lost cluster or runs that kill every worker
    they land on become one ClusterError saying what is kept."""
    from distributed import KilledWorker

    try:
        return _run(st, sink, todo, 0, None, ex, progress, target_halfwidth)
    except (cf.CancelledError, KilledWorker) as exc:
        kept = ""
        if sink is not None and sink.done:
            kept = f"; {len(sink.done)} of {len(tasks_of(st))} runs are in {sink.root}: finish with --resume"
        if isinstance(exc, cf.CancelledError):
            raise ClusterError(f"lost the Dask cluster (the scheduler cancelled the runs or went away){kept}") from None
        raise ClusterError(
            f"every Dask worker that ran one of the runs died ({exc.allowed_failures + 1} workers: out of memory? "
            f"see their logs){kept}"
        ) from None


def _run(st: Study, sink, todo, local, threads, executor, progress, target_halfwidth) -> StudyResult:
    total = len(tasks_of(st))
    reused = total - len(todo)
    payload = st.to_json()
    parts: dict[tuple[str, int], dict[str, pa.Table]] = {}
    summaries: dict[tuple[str, int], pa.Table] = {}
    moves: dict[tuple[str, int], pa.Table] = {}
    if progress is not None:
        progress(reused, total)

    def done(key, tables):
        if sink is not None:
            sink.write_partition(*key, tables)
        else:
            parts[key] = tables
        summaries[key] = _without_replication(tables["summary"])
        moves[key] = tables["budget_moves"]
        if progress is not None:
            progress(reused + len(summaries), total)

    if not todo:
        pass
    elif executor is not None:
        futures = {executor.submit(run_task, payload, v, r): (v, r) for v, r in todo}
        try:
            for fut in _completed(futures):
                done(futures.pop(fut), fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    elif local == 1:
        with use_threads(threads):
            for v, r in todo:
                done((v, r), run_task(st, v, r))
    else:
        per = threads or max(1, (os.cpu_count() or 1) // local)
        # spawn, not fork: the parent may already run Numba's thread pool
        pool = cf.ProcessPoolExecutor(
            max_workers=local, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(per,)
        )
        try:
            futures = {pool.submit(run_task, payload, v, r): (v, r) for v, r in todo}
            for fut in cf.as_completed(futures):
                done(futures[fut], fut.result())
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown()
    if sink is not None:
        summaries, moves = sink.read_runs()  # every run, read back from DIR
    res = StudyResult(
        st, summaries=summaries, moves=moves, target_halfwidth=dict(target_halfwidth or {}), parts=parts,
        out=sink.root if sink is not None else None,
    )
    res.contrasts = contrasts(st, res.run_rows(), target_halfwidth)
    if sink is not None:
        sink.finish(res.study_tables())
    res.reused, res.computed = reused, len(todo)
    return res


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Stop a process pool now (Ctrl-C, SIGTERM, an error): drop the queued runs and end
    the running ones rather than let them finish (their results would be thrown away)."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public API before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        if proc.is_alive():
            proc.terminate()
    for proc in workers:
        proc.join(timeout=5)


def _completed(futures):
    """Futures as they finish (concurrent.futures), or in order for other executors."""
    if all(isinstance(f, cf.Future) for f in futures):
        return cf.as_completed(futures)
    return list(futures)


__all__ = ["StudyResult", "compare", "run_task"]

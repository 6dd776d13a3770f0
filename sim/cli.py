"""The ``cvj`` command line: parse arguments, call the library, print.

Errors in the user's input (scenario, options, output path) print one line on stderr
and exit with status 2, with no traceback and nothing written.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .errors import ClusterError, CvjError
from .output import AtomicDir
from .scenario import default_scenario_path, load_scenario

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def exit_code(exc: CvjError) -> int:
    """The exit status of an error of the family (the one place that maps them): a
    runtime failure of the cluster is 1, an error in what the user gave (a document, an
    argument, more than the machine has, an output location) is 2."""
    return EXIT_FAILURE if isinstance(exc, ClusterError) else EXIT_USAGE


def _fail(message: str, code: int = EXIT_USAGE) -> "NoReturn":  # noqa: F821
    err.print(f"[bold red]error:[/] {message}", markup=True)
    sys.exit(code)


def _on_sigterm(signum, frame):  # a killed run cleans up like Ctrl-C
    raise KeyboardInterrupt


class _Group(click.Group):
    """Turn cvj's errors anywhere below into one line and their exit status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CvjError as exc:
            _fail(str(exc), exit_code(exc))
        except KeyboardInterrupt:
            err.print("interrupted: nothing was written")
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cvj")
def main() -> None:
    """Customer value journey simulator: scenario files in, Parquet tables out."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def _overrides(seed, customers, days) -> dict:
    o = {}
    if seed is not None:
        o["market.seed"] = seed
    if customers is not None:
        o["market.customers"] = customers
    if days is not None:
        o["market.days"] = days
    return o


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
def validate(scenario: Path) -> None:
    """Check a scenario file and print what it describes."""
    sc = load_scenario(scenario)
    from .engine import check_memory

    check_memory(sc.market.customers)
    out.print(
        f"ok: {scenario}: {sc.name!r}, {sc.market.customers:,} customers, {sc.market.days} days, "
        f"{len(sc.segments)} segments ({', '.join(sc.segments)}), "
        f"{len(sc.channels)} channels ({', '.join(sc.channels) or 'none'}), "
        f"{len(sc.offers.upsells)} upsells; sha256 {sc.sha256()[:12]}"
    )


@main.command()
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write Parquet tables to this directory.")
@click.option("--seed", type=click.IntRange(min=0), help="Override market.seed.")
@click.option("--customers", type=int, help="Override market.customers.")
@click.option("--days", type=int, help="Override market.days.")
@click.option("--replications", type=click.IntRange(min=1), default=1, show_default=True, help="Independent replications 0..N-1.")
@click.option("--replication", "first", type=click.IntRange(min=0), default=0, show_default=True, help="Number of the first replication.")
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads (default: all cores). Results do not depend on it.")
@click.option("--customers-table", is_flag=True, help="Also write one row per customer (18 more bytes per customer in memory).")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def run(scenario, out_dir, seed, customers, days, replications, first, threads, customers_table, force, quiet):
    """Simulate SCENARIO (default: the bundled handbag shop) and print its KPIs."""
    from .engine import check_memory
    from .run import run as run_scenario

    path = scenario if scenario is not None else default_scenario_path()
    sc = load_scenario(path, _overrides(seed, customers, days))
    check_memory(sc.market.customers, customers_table, replications=replications)
    target = AtomicDir(out_dir, force=force) if out_dir is not None else None  # fail early, before simulating
    try:
        reps = range(first, first + replications)
        t0 = time.perf_counter()
        with _progress(quiet) as bar:
            task = bar.add_task("simulating", total=len(reps) * sc.market.days)
            res = run_scenario(
                sc,
                replications=reps,
                threads=threads,
                customers_table=customers_table,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        wall = time.perf_counter() - t0
        if target is not None:
            res.write_into(target.path)
            target.commit()
    finally:
        if target is not None:
            target.abort()
    cdays = len(reps) * sc.market.customers * sc.market.days
    _print_summary(res.summary.to_pylist(), sc.currency)
    where = f"; tables in {target.target}" if target is not None else ""
    err.print(f"{cdays:,} customer-days in {wall:.2f} s ({cdays / wall / 1e6:,.0f}M/s){where}")


def _progress(quiet: bool, unit: str = "day") -> Progress:
    """The progress bar of long commands, on stderr, only on a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn(unit + " {task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )


def _fmt(v, money=False, cur=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if not money else f"{v:,.0f} {cur}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _print_summary(rows: list[dict], currency: str) -> None:
    money_keys = ("spend", "revenue", "cost", "profit", "front_end_profit", "back_end_profit")
    keys = [k for k in rows[0] if k not in ("scenario", "seed", "replication", "customers", "days")]
    t = Table(title=f"KPIs: {rows[0]['scenario']} (seed {rows[0]['seed']})", title_justify="left")
    t.add_column("kpi")
    for r in rows:
        t.add_column(f"rep {r['replication']}", justify="right")
    for k in keys:
        t.add_row(k, *[_fmt(r[k], k in money_keys, currency) for r in rows])
    out.print(t)


def _halfwidths(values: tuple[str, ...]) -> list[tuple[str | None, float]]:
    out = []
    for v in values:
        kpi, _, num = v.rpartition("=")
        try:
            out.append((kpi or None, float(num)))
        except ValueError:
            raise click.BadParameter(f"{v!r}: expected a number or KPI=NUMBER, e.g. 5000 or cac=0.1") from None
    return out


@main.command()
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write Parquet tables to this directory, run by run.")
@click.option("--replications", type=click.IntRange(min=1), help="Override the study's number of replications.")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes (default: one per core).")
@click.option("--scheduler", metavar="ADDRESS", help="Run on the Dask cluster of this scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--dask-workers", type=click.IntRange(min=1), help="Run on a local Dask cluster of N worker processes.")
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads per worker (default: cores / workers).")
@click.option("--retries", type=click.IntRange(min=0), help="Dask: runs of a task that raised (default 2; a lost worker's tasks always move on).")
@click.option(
    "--target-halfwidth",
    "targets",
    multiple=True,
    help="Wanted CI half-width of a difference: NUMBER (the ranking KPI) or KPI=NUMBER; repeatable.",
)
@click.option("--resume", is_flag=True, help="Finish the study in --out: keep the runs already there, run the rest.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compare(study, out_dir, replications, workers, scheduler, dask_workers, threads, retries, targets, resume, force, quiet):
    """Run every variant x replication of STUDY with common random numbers and compare them.

    Runs go to local worker processes (--workers), a Dask cluster (--scheduler) or a
    local Dask cluster (--dask-workers); the tables are the same.
    """
    import contextlib
    from concurrent.futures import CancelledError

    from .study import compare as compare_study
    from .study import load_study, report
    from .study_output import StudyDir

    chosen = [name for name, v in (("--workers", workers), ("--scheduler", scheduler), ("--dask-workers", dask_workers)) if v]
    if len(chosen) > 1:
        _fail(f"{' and '.join(chosen)} exclude each other: local processes, a Dask cluster, or a local Dask cluster")
    dask = scheduler is not None or dask_workers is not None
    if retries is not None and not dask:
        _fail("--retries applies to Dask runs (--scheduler or --dask-workers)")
    if resume and out_dir is None:
        _fail("--resume needs --out (the directory of the study to finish)")
    if resume and force:
        _fail("--resume and --force exclude each other (--resume keeps DIR, --force replaces it)")

    st = load_study(study, replications=replications)
    wanted = {(k or st.rank_by): v for k, v in _halfwidths(targets)}
    total = len(st.variants) * st.replications
    if dask_workers:  # a local cluster: its workers share this machine's memory
        from .engine import check_memory

        check_memory(max(v.scenario.market.customers for v in st.variants.values()) * dask_workers)
    done = {"runs": 0}
    # fail early (an existing DIR, another study in it), before starting a cluster
    target = StudyDir(out_dir, st, resume=resume, force=force) if out_dir is not None else None
    try:
        if target is not None and target.done:
            err.print(f"resuming {target.root}: {len(target.done)} of {total} runs are done, {total - len(target.done)} to run")
        cluster_errors: tuple = ()
        cluster = contextlib.nullcontext()
        if dask:  # Dask is imported only here
            from distributed import KilledWorker

            from .distributed import dask_executor

            cluster_errors = (ClusterError, CancelledError, KilledWorker)
            options = {} if retries is None else {"retries": retries}
            cluster = dask_executor(scheduler, workers=dask_workers, threads=threads, **options)
        t0 = time.perf_counter()
        try:
            with cluster as executor:
                if executor is not None:
                    err.print(executor.describe())
                    board = executor.dashboard()
                    if board is not None:
                        link, graphs = board
                        note = "" if graphs else " (no graphs: the scheduler has no bokeh)"
                        err.print(f"Dask dashboard: {link}{note}")
                with _progress(quiet, unit="run") as bar:
                    task = bar.add_task(f"comparing {len(st.variants)} variants", total=total)

                    def progress(n, _total):
                        done["runs"] = n
                        bar.update(task, completed=n)

                    res = compare_study(
                        st,
                        out=target,
                        workers=workers,
                        threads=threads,
                        executor=executor,
                        target_halfwidth=wanted,
                        progress=progress,
                    )
        except cluster_errors as exc:
            if isinstance(exc, ClusterError):
                _fail(str(exc))
            kept = f"; {done['runs']} of {total} runs are in {target.root}: finish with --resume" if target is not None and done["runs"] else ""
            if isinstance(exc, CancelledError):
                _fail(f"lost the Dask cluster (the scheduler cancelled the runs or went away){kept}", 1)
            _fail(f"every Dask worker that ran one of the runs died ({exc.allowed_failures + 1} workers: out of memory? see their logs){kept}", 1)
        wall = time.perf_counter() - t0
    except KeyboardInterrupt:
        if target is not None:
            target.close()  # removes a DIR it created if no run got into it
        if target is not None and target.root.exists():
            err.print(
                f"interrupted: {done['runs']} of {total} runs are in {target.root} (marked incomplete); "
                "finish with --resume"
            )
        else:
            err.print("interrupted: nothing was written")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if target is not None:
            target.close()
    page = out if out.is_terminal else Console(highlight=False, soft_wrap=True, width=132)  # a file gets whole rows
    for item in report(res):
        page.print(item)
    cdays = sum(v.scenario.market.customers * v.scenario.market.days for v in st.variants.values()) * st.replications
    where = f"; tables in {target.root}" if target is not None else ""
    reused = f" ({res.reused} already in DIR, {res.computed} run now)" if res.reused else ""
    err.print(f"{total} runs{reused}, {cdays:,} customer-days in {wall:.1f} s{where}")


if __name__ == "__main__":
    main()

"""The ``cvj`` command line: parse arguments, call the library, print.

Errors in the user's input (scenario, options, output path) print one line on stderr
and exit with status 2, with no traceback and nothing written.

Everything printed goes through :class:`_Console`: rich markup and emoji codes are off
and every string is escaped by :func:`cvj.names.escape`, so a name, a value, a path or
a currency a user typed (``[/]``, ``[link=...]``, ``\x1b[31m``, a newline) is shown
literally, on one line, and can neither raise nor reach the terminal as a control
sequence.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .engine import CUSTOMERS_TABLE_BYTES
from .errors import ClusterError, CvjError
from .names import escape
from .output import AtomicDir
from .scenario import default_scenario_path, load_scenario
from .version import __version__


class _Console(Console):
    """A rich console for text that may hold user input: no markup, no emoji codes, no
    highlighting, and every string (a printed line, a table's title, header or cell)
    escaped by :func:`cvj.names.escape` on its way to the terminal."""

    def __init__(self, **kwargs):
        super().__init__(markup=False, emoji=False, highlight=False, soft_wrap=True, **kwargs)

    def render_str(self, text: str, **kwargs) -> Text:
        kwargs.update(markup=False, emoji=False)
        return super().render_str(escape(text), **kwargs)


out = _Console()
err = _Console(stderr=True)

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def exit_code(exc: CvjError) -> int:
    """The exit status of an error of the family (the one place that maps them): a
    runtime failure of the cluster is 1, an error in what the user gave (a document, an
    argument, more than the machine has, an output location) is 2."""
    return EXIT_FAILURE if isinstance(exc, ClusterError) else EXIT_USAGE


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(Text("error:", style="bold red"), message)
    sys.exit(code)


def _on_sigterm(signum, frame):  # a killed run cleans up like Ctrl-C
    raise KeyboardInterrupt


class _Group(click.Group):
    """Turn cvj's errors anywhere below into one line and their exit status."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        # text that cannot be encoded (a name on a non-UTF-8 terminal, undecodable
        # bytes of a path) is escaped rather than ending a finished run with an error
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        if not standalone_mode:  # the caller handles click's exceptions itself
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            # click's own messages quote the user's value raw and span three lines
            hint = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) is not None else ""
            _fail(exc.format_message() + hint, exc.exit_code)
        except click.Abort:
            err.print("interrupted: nothing was written")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)

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


def _sets(values: tuple[str, ...]) -> dict:
    """``--set KEY=VALUE`` options as overrides: VALUE is a TOML value (``80``,
    ``0.5``, ``true``, ``"text"``, ``[1, 2]``, ``{ size = 5 }``), parsed by tomllib,
    never evaluated; the last of a repeated KEY wins."""
    import tomllib

    out = {}
    for item in values:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. channels.email.daily_budget=80", param_hint="--set")
        try:
            out[key] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise click.BadParameter(
                f"{item!r}: {text.strip()!r} is not a TOML value (numbers as 80 or 0.5, text in quotes: "
                f"KEY='\"text\"', lists as [1, 2])",
                param_hint="--set",
            ) from None
    return out


def _scenario(path: Path, overrides: dict, sets: tuple[str, ...]):
    """The scenario file with the command's overrides, then ``--set`` (study rules)."""
    from .scenario import override

    return override(load_scenario(path, overrides), _sets(sets), source="--set")


_SET_HELP = (
    "Override a scenario field by dotted path, e.g. channels.email.daily_budget=80 (VALUE is TOML; the field must "
    "exist, as in a study's overrides). Repeatable."
)
_QUIET_HELP = "Silence one kind of warning (budget-not-binding, suspicious-unit, ... or all). Repeatable."
#: where every command's help points for the scenario's keys
_REFERENCE = "Scenario reference: docs/model.md in the cvj source (every key, what it means, how the model uses it)."


def _print_warnings(warnings) -> None:
    from .console import warning_lines

    for line in warning_lines(warnings):
        err.print(line)


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--quiet-warning", "quiet_warnings", multiple=True, metavar="NAME", help=_QUIET_HELP)
def validate(scenario: Path, sets, quiet_warnings) -> None:
    """Check a scenario file and print what it describes; warnings (a budget that can
    never be spent, an audience larger than the market, a push no one can receive, an
    offer no one can reach, a figure in the wrong unit) go to stderr.

    \b
    Examples:
      cvj validate scenarios/default.toml
      cvj validate scenarios/default.toml --set market.customers=20000 --quiet-warning suspicious-unit

    Scenario reference: docs/model.md in the cvj source.
    """
    from .checks import check_names, check_scenario, shown

    quiet = check_names(quiet_warnings)
    sc = _scenario(scenario, {}, sets)
    from .engine import check_memory

    check_memory(sc.market.simulated)
    sample = f" ({sc.market.simulated:,} simulated)" if sc.market.sample is not None else ""
    out.print(
        f"ok: {scenario}: {sc.name!r}, {sc.market.customers:,} customers{sample}, {sc.market.days} days, "
        f"{len(sc.segments)} segments ({', '.join(sc.segments)}), "
        f"{len(sc.channels)} channels ({', '.join(sc.channels) or 'none'}), "
        f"{len(sc.offers.upsells)} upsells; sha256 {sc.sha256()[:12]}"
    )
    _print_warnings(shown(check_scenario(sc), quiet))


@main.command()
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(), help="Write Parquet tables to this directory.")
@click.option("--seed", type=click.IntRange(min=0), help="Override market.seed.")
@click.option("--customers", type=int, help="Override market.customers (the market: changes the business).")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    help="Simulate this many of the market's customers (budgets and audiences scaled; KPIs for the whole market).",
)
@click.option("--days", type=int, help="Override market.days.")
@click.option("--replications", type=click.IntRange(min=1), default=1, show_default=True, help="Independent replications 0..N-1.")
@click.option(
    "--replication", "first", type=click.IntRange(min=0), default=0, show_default=True,
    help="Number of the first replication.",
)
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads (default: all cores). Results do not depend on it.")
@click.option(
    "--customers-table",
    is_flag=True,
    help=f"Also write one row per customer (about {CUSTOMERS_TABLE_BYTES} more bytes per customer in memory).",
)
@click.option("--force", is_flag=True, help="Replace DIR if it is empty or the output of an earlier cvj run.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--report", "make_report", is_flag=True, help="Also write an offline HTML report to DIR/report (needs --out).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--quiet-warning", "quiet_warnings", multiple=True, metavar="NAME", help=_QUIET_HELP)
def run(scenario, out_dir, seed, customers, sample, days, replications, first, threads, customers_table, force, quiet,
        make_report, sets, quiet_warnings):
    """Simulate SCENARIO (default: the bundled handbag shop) and print its KPIs: the
    value of one replication, or the mean and 95% CI over several, and each channel's
    figures (spend, sessions, moves, customers and CAC by first and last touch).
    Warnings go to stderr and into DIR/_cvj.json; they never change the tables.

    \b
    Examples:
      cvj run --out results
      cvj run scenarios/default.toml --sample 100000 --replications 5 --set channels.email.daily_budget=80

    Scenario reference: docs/model.md in the cvj source.
    """
    from .checks import check_names
    from .engine import check_memory
    from .run import run as run_scenario

    if make_report and out_dir is None:
        _fail("--report needs --out (the report is written to DIR/report)")

    quiet_names = check_names(quiet_warnings)
    path = scenario if scenario is not None else default_scenario_path()
    sc = _scenario(path, {**_overrides(seed, customers, days), **({"market.sample": sample} if sample else {})}, sets)
    check_memory(sc.market.simulated, customers_table, replications=replications)
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
                quiet_warnings=quiet_names,
            )
        wall = time.perf_counter() - t0
        if target is not None:
            res.write_into(target.path)
            target.commit()
    finally:
        if target is not None:
            target.abort()
    cdays = len(reps) * sc.market.simulated * sc.market.days
    from .console import kpi_summary

    page = _page()
    for item in kpi_summary(res.summary.to_pylist(), sc.currency):
        page.print(item)
    _print_funnel(page, res.tables["channels"], sc.currency)
    _print_warnings(res.shown_warnings)
    where = f"; tables in {target.target}" if target is not None else ""
    err.print(f"{cdays:,} customer-days in {wall:.2f} s ({cdays / wall / 1e6:,.0f}M/s){where}")
    if make_report:
        _write_report(target.target, None, err)


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


def _page() -> _Console:
    """Where tables go: the terminal, or for a file or a pipe a console 132 wide, so
    that no cell is cut to "…" at 80 columns (a number cut is a wrong number)."""
    return out if out.is_terminal else _Console(width=132)


def _print_funnel(page: _Console, channels, currency: str) -> None:
    """The channel figures their dashboards show (per replication, on average): one
    table for bought media and sessions, one for email."""
    from .results import channel_funnel

    rows = [r for r in channel_funnel(channels) if r["spend"] or r["moves"]]

    def pct(v, digits=2):
        return "-" if v is None else f"{100 * v:.{digits}f}%"

    def num(v):
        return "-" if not v else f"{v:,.0f}"

    media = [r for r in rows if not r["sends"]]
    mail = [r for r in rows if r["sends"]]
    if media:
        t = Table(title=f"Channels: media and sessions (spend in {currency})", title_justify="left")
        for col in ("channel", "spend", "impressions", "CPM", "clicks", "CTR", "CPC", "sessions", "moves"):
            t.add_column(col, justify="left" if col == "channel" else "right")
        for r in media:
            t.add_row(
                r["channel"], f"{r['spend']:,.0f}", num(r["impressions"]), _fmt(r["cpm"]), num(r["clicks"]),
                pct(r["ctr"]), _fmt(r["cpc"]), num(r["sessions"]), num(r["moves"]),
            )
        page.print(t)
    if mail:
        t = Table(title=f"Channels: email (spend in {currency})", title_justify="left")
        for col in ("channel", "spend", "sends", "open", "click", "unsub", "sessions", "moves"):
            t.add_column(col, justify="left" if col == "channel" else "right")
        for r in mail:
            t.add_row(
                r["channel"], f"{r['spend']:,.0f}", num(r["sends"]), pct(r["open_rate"], 1),
                pct(r["click_rate"]), pct(r["unsubscribe_rate"]), num(r["sessions"]), num(r["moves"]),
            )
        page.print(t)
    touched = [r for r in rows if r.get("first_touch_customers") is not None and r["channel"]]
    if touched:
        t = Table(title=f"Channels: customers by touch model (CAC in {currency})", title_justify="left")
        for col in ("channel", "spend", "moves", "first touch", "CAC", "last touch", "CAC"):
            t.add_column(col, justify="left" if col == "channel" else "right")
        for r in touched:
            t.add_row(
                r["channel"], f"{r['spend']:,.0f}", num(r["moves"]), f"{r['first_touch_customers']:,.1f}".removesuffix(".0"),
                _fmt(r["cac_first_touch"]), f"{r['last_touch_customers']:,.1f}".removesuffix(".0"), _fmt(r["cac_last_touch"]),
            )
        page.print(t)
        page.print(
            "first touch: customers (entry-offer buyers) the channel made aware; last touch: those whose purchase it "
            "caused. Neither is what the channel adds: cvj attribute measures that."
        )


def _check_where(workers, scheduler, dask_workers, retries) -> None:
    """Where the runs of compare and calibrate go: one of local processes, a Dask
    cluster or a local Dask cluster; --retries only with Dask."""
    chosen = [name for name, v in (("--workers", workers), ("--scheduler", scheduler), ("--dask-workers", dask_workers)) if v]
    if len(chosen) > 1:
        _fail(f"{' and '.join(chosen)} exclude each other: local processes, a Dask cluster, or a local Dask cluster")
    if retries is not None and scheduler is None and dask_workers is None:
        _fail("--retries applies to Dask runs (--scheduler or --dask-workers)")


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
@click.option("--out", "out_dir", type=click.Path(), help="Write Parquet tables to this directory, run by run.")
@click.option("--replications", type=click.IntRange(min=1), help="Override the study's number of replications.")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes (default: one per core).")
@click.option("--scheduler", metavar="ADDRESS", help="Run on the Dask cluster of this scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--dask-workers", type=click.IntRange(min=1), help="Run on a local Dask cluster of N worker processes.")
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads per worker (default: cores / workers).")
@click.option(
    "--retries", type=click.IntRange(min=0),
    help="Dask: runs of a task that raised (default 2; a lost worker's tasks always move on).",
)
@click.option(
    "--target-halfwidth",
    "targets",
    multiple=True,
    help="Wanted CI half-width of a difference: NUMBER (the ranking KPI) or KPI=NUMBER; repeatable.",
)
@click.option("--resume", is_flag=True, help="Finish the study in --out: keep the runs already there, run the rest.")
@click.option("--force", is_flag=True, help="Replace DIR if it is empty or the output of an earlier cvj compare.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--report", "make_report", is_flag=True, help="Also write an offline HTML report to DIR/report (needs --out).")
@click.option("--quiet-warning", "quiet_warnings", multiple=True, metavar="NAME", help=_QUIET_HELP)
def compare(study, out_dir, replications, workers, scheduler, dask_workers, threads, retries, targets, resume, force, quiet,
            make_report, quiet_warnings):
    """Run every variant x replication of STUDY with common random numbers and compare them.

    Runs go to local worker processes (--workers), a Dask cluster (--scheduler) or a
    local Dask cluster (--dask-workers); the tables are the same. A KPI that can be
    undefined (payback_day, cac, roas, ltv) is compared where both runs have it, and
    the verdict says in how many replications each variant had it.

    \b
    Examples:
      cvj compare scenarios/compare_entry_offers.toml --out studies/entry_offers --target-halfwidth 2000
      cvj compare scenarios/compare_budgets.toml --replications 4 --workers 2

    Scenario reference: docs/model.md in the cvj source; study files: README.md.
    """
    from .checks import check_names, shown
    from .console import study_report
    from .study import check_study, load_study
    from .study import compare as compare_study

    _check_where(workers, scheduler, dask_workers, retries)
    if resume and out_dir is None:
        _fail("--resume needs --out (the directory of the study to finish)")
    if resume and force:
        _fail("--resume and --force exclude each other (--resume keeps DIR, --force replaces it)")
    if make_report and out_dir is None:
        _fail("--report needs --out (the report is written to DIR/report)")

    quiet_names = check_names(quiet_warnings)
    st = load_study(study, replications=replications)
    warned = shown(check_study(st), quiet_names)
    wanted = {(k or st.rank_by): v for k, v in _halfwidths(targets)}
    total = len(st.variants) * st.replications
    done = {"runs": 0}
    t0 = time.perf_counter()
    try:
        with _progress(quiet, unit="run") as bar:
            task = bar.add_task(f"comparing {len(st.variants)} variants", total=total)

            def progress(n, _total):
                done["runs"] = n
                bar.update(task, completed=n)

            res = compare_study(
                st,
                out=out_dir,
                resume=resume,
                force=force,
                workers=workers,
                threads=threads,
                scheduler=scheduler,
                dask_workers=dask_workers,
                retries=retries,
                target_halfwidth=wanted,
                progress=progress,
                log=err.print,
            )
    except KeyboardInterrupt:
        kept = Path(out_dir).absolute() if out_dir is not None else None
        if kept is not None and kept.exists():
            err.print(f"interrupted: {done['runs']} of {total} runs are in {kept} (marked incomplete); finish with --resume")
        else:
            err.print("interrupted: nothing was written")
        sys.exit(EXIT_INTERRUPTED)
    wall = time.perf_counter() - t0
    page = _page()
    for item in study_report(res):
        page.print(item)
    cdays = sum(v.scenario.market.simulated * v.scenario.market.days for v in st.variants.values()) * st.replications
    where = f"; tables in {res.out}" if res.out is not None else ""
    reused = f" ({res.reused} already in DIR, {res.computed} run now)" if res.reused else ""
    err.print(f"{total} runs{reused}, {cdays:,} customer-days in {wall:.1f} s{where}")
    _print_warnings(warned)
    if make_report:
        _write_report(res.out, None, err)


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the upgraded file here (default: print it).",
)
def upgrade(scenario: Path, out_file: Path | None) -> None:
    """Rewrite a format-1 SCENARIO as format 2, comments kept.

    Format 2 reads format-1 files as they are (they are upgraded on load); this writes
    the upgraded file for editing. The file given is never changed.

    \b
    Examples:
      cvj upgrade scenarios/handbag_shop_format1.toml --out shop2.toml
      cvj upgrade scenarios/handbag_shop_format1.toml | less

    Scenario reference: docs/model.md in the cvj source.
    """
    from .documents import read_text
    from .scenario import upgrade_file

    text = upgrade_file(scenario, read_text(scenario))
    if out_file is None:
        click.echo(text, nl=False)
        return
    if out_file.exists():
        _fail(f"{out_file} already exists; choose another --out (cvj upgrade never overwrites a file)")
    tmp = out_file.with_name(f".{out_file.name}.cvj-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out_file)
    err.print(f"wrote {out_file} (format 2)")


@main.command()
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replications", type=click.IntRange(min=2), default=10, show_default=True,
              help="Replications of the base run and of every counterfactual (paired by replication).")
@click.option("--step", type=click.FloatRange(min=0.0, max=1.0, max_open=True), default=0.1, show_default=True,
              help="Cut of each budget for the marginal ROAS (0: no marginal runs).")
@click.option("--out", "out_dir", type=click.Path(), help="Write the attribution, runs and paths tables here (Parquet).")
@click.option("--touch-paths", is_flag=True,
              help="Also write one row per customer-touch of the base runs (DIR/touch_paths, for MTA tools; needs --out).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes (default: one per core).")
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads per worker (default: cores / workers).")
@click.option("--force", is_flag=True, help="Replace DIR if it is empty or the output of an earlier cvj attribute.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--quiet-warning", "quiet_warnings", multiple=True, metavar="NAME", help=_QUIET_HELP)
def attribute(scenario, replications, step, out_dir, touch_paths, sets, workers, threads, force, quiet, quiet_warnings):
    """Which channel really works? Each channel's true incremental value against what
    attribution models claim.

    Runs SCENARIO (default: the bundled handbag shop) and, with common random numbers,
    every channel switched off and every budget cut by --step; prints per channel the
    conversions, revenue, profit, CAC, ROAS and marginal ROAS it really adds (paired
    95% CIs) beside what first touch, last touch, linear and Markov removal-effect
    attribution claim from the same simulated journeys.

    \b
    Examples:
      cvj attribute --replications 10 --out attribution
      cvj attribute scenarios/default.toml --set market.sample=100000 --replications 4 --step 0.2

    Scenario reference: docs/model.md in the cvj source.
    """
    from .attribution import attribute as run_attribution
    from .checks import check_names, shown
    from .console import attribution_report

    if touch_paths and out_dir is None:
        _fail("--touch-paths needs --out (one row per customer-touch is written to DIR/touch_paths)")
    quiet_names = check_names(quiet_warnings)
    sc = _scenario(scenario if scenario is not None else default_scenario_path(), {}, sets)
    target = AtomicDir(out_dir, force=force, kind="attribution") if out_dir is not None else None  # fail early
    if target is not None:
        target.abort()  # only checked here: the result writes its own
    t0 = time.perf_counter()
    with _progress(quiet, unit="run") as bar:
        task = bar.add_task("attributing", total=None)

        def progress(n, total):
            bar.update(task, completed=n, total=total)

        res = run_attribution(sc, replications=replications, step=step, touch_paths=touch_paths, workers=workers,
                              threads=threads, progress=progress)
    wall = time.perf_counter() - t0
    where = ""
    if out_dir is not None:
        where = f"; tables in {res.write(out_dir, force=force, quiet=quiet_names)}"
    page = _page()
    for item in attribution_report(res):
        page.print(item)
    _print_warnings(shown(res.warnings, quiet_names))
    runs = len(res.study.variants) * replications
    err.print(f"{runs} runs in {wall:.1f} s{where}")


@main.command()
@click.argument("name")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the scenario here (default: NAME.toml).")
def init(name: str, out_file: Path | None) -> None:
    """Write a commented starter scenario (format 2) called NAME to NAME.toml: a small
    shop with paid social, search ads, email and SEO that validates and runs as it is.

    \b
    Examples:
      cvj init my-shop && cvj run my-shop.toml --replications 5
      cvj init "Boutique B2B" --out boutique.toml

    Scenario reference: docs/model.md in the cvj source.
    """
    import json
    import re
    from importlib import resources

    from .names import check_label, name_problem

    try:
        check_label(name)
    except ValueError as exc:
        _fail(f"NAME = {name!r}: {exc}")
    if out_file is None:
        problem = name_problem(name)
        if problem is not None:
            _fail(f"NAME = {name!r}: {problem} (NAME.toml is the file name; or give --out FILE)")
        out_file = Path(f"{name}.toml")
    if out_file.exists() or out_file.is_symlink():
        _fail(f"{out_file} already exists; choose another NAME or --out (cvj init never overwrites a file)")
    text = resources.files("cvj.scenarios").joinpath("starter.toml").read_text(encoding="utf-8")
    # the name as a TOML basic string (JSON's escapes are TOML's)
    text = re.sub(r'(?m)^name = "starter"$', lambda m: f"name = {json.dumps(name, ensure_ascii=False)}", text, count=1)
    text = text.replace("THIS_FILE", escape(str(out_file)))  # in a comment: one line, whatever the path holds
    try:
        with open(out_file, "x", encoding="utf-8") as fh:  # "x": never replace a file that appeared meanwhile
            fh.write(text)
    except FileExistsError:
        _fail(f"{out_file} already exists; choose another NAME or --out (cvj init never overwrites a file)")
    except OSError as exc:
        _fail(f"cannot write {out_file}: {exc.strerror or exc}")
    err.print(f"wrote {out_file}: scenario {name!r} (format 2); check it with cvj validate {out_file}")


@main.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write the report here instead of DIRECTORY/report.")
def report_command(directory, out_dir):
    """Write an offline HTML report of the finished run or study in DIRECTORY.

    DIRECTORY/report/index.html is one self-contained page (it opens without a network);
    beside it are a PNG and a CSV of every chart.

    \b
    Examples:
      cvj run --out results && cvj report results
      cvj report studies/entry_offers --out entry_offers_report

    Scenario reference: docs/model.md in the cvj source.
    """
    _write_report(directory, out_dir, out)


def _write_report(directory: Path, out_dir: Path | None, console) -> None:
    from .report import report

    t0 = time.perf_counter()
    rep = report(directory, out=out_dir)
    mb = rep.path.stat().st_size / 1e6
    wall = time.perf_counter() - t0
    console.print(f"report: {rep.path} ({mb:,.1f} MB; {len(rep.charts)} charts, each with a PNG and a CSV) in {wall:.1f} s")



@main.command()
@click.argument("calibration", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="Write the fitted scenario, parameter table, observed-vs-fitted tables and charts here.")
@click.option("--sample", type=click.IntRange(min=1), help="Override the file's sample (simulated customers).")
@click.option("--max-simulations", type=click.IntRange(min=10), help="Override the file's budget of simulations.")
@click.option("--bootstrap", type=click.IntRange(min=20), help="Override the file's number of bootstrap data sets.")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes (default: one per core).")
@click.option("--scheduler", metavar="ADDRESS", help="Run the simulations on the Dask cluster of this scheduler.")
@click.option("--dask-workers", type=click.IntRange(min=1), help="Run them on a local Dask cluster of N worker processes.")
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads per worker (default: cores / workers).")
@click.option(
    "--retries", type=click.IntRange(min=0),
    help="Dask: runs of a simulation that raised (default 2; a lost worker's tasks always move on).",
)
@click.option("--force", is_flag=True, help="Replace DIR if it is empty or the output of an earlier cvj calibrate.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def calibrate(calibration, out_dir, sample, max_simulations, bootstrap, workers, scheduler, dask_workers, threads, retries,
              force, quiet):
    """Fit the free parameters of a CALIBRATION file's scenario to its observed data.

    Every simulation uses the same random numbers, so the deviance is a deterministic
    function of the parameters; scipy's least_squares searches it, a parametric
    bootstrap gives 90% intervals, and the fit is checked (goodness of fit, parameters
    the data cannot pin down). Stopped (Ctrl-C), the same command continues where it
    stopped: the simulations done are kept beside DIR until it is written. Simulations
    run in local worker processes (--workers) or on a Dask cluster (--scheduler,
    --dask-workers); the result is the same.

    \b
    Examples:
      cvj calibrate scenarios/calibrate_handbag.toml --out fit
      cvj simulate-observed scenarios/default.toml --metrics sessions,entry_sales --out observed.csv

    Calibration files: README.md ("Calibrate to your numbers"); the method: docs/model.md.
    """
    import numpy as np

    from .calibrate import calibrate as run_calibration
    from .calibrate import load_calibration
    from .calibrate.output import write_result
    from .console import warning_lines

    _check_where(workers, scheduler, dask_workers, retries)
    cal = load_calibration(calibration, sample=sample, max_simulations=max_simulations, bootstrap=bootstrap)
    target = AtomicDir(out_dir, force=force, kind="calibration")  # fail early, before simulating
    journal = target.target.with_name(f".{target.target.name}.cvj-calibrate.jsonl")
    try:
        with _progress(quiet, unit="simulation") as bar:
            task = bar.add_task(f"calibrating {len(cal.parameters)} parameters", total=cal.max_simulations)
            res = run_calibration(
                cal, workers=workers, threads=threads, scheduler=scheduler, dask_workers=dask_workers, retries=retries,
                journal=journal,
                progress=lambda n, total: bar.update(task, completed=n, total=max(total, n)),
                log=(lambda s: None) if quiet else (lambda s: err.print(s)),
            )
        where = write_result(res, target)
    except KeyboardInterrupt:
        target.abort()
        err.print(f"interrupted: the simulations done are kept in {escape(str(journal))}; run the same command to continue")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        target.abort()
    journal.unlink(missing_ok=True)  # written by this command; the result is in DIR now

    t = Table(title=f"{cal.name}: fitted parameters (90% intervals, parametric bootstrap)", title_justify="left")
    for col in ("parameter", "estimate", "90% interval", "bounds"):
        t.add_column(col, justify="left" if col == "parameter" else "right")
    for q, v, (a, b) in zip(cal.parameters, res.estimate, res.interval):
        t.add_row(q.path, f"{v:.4g}", f"{a:.4g} .. {b:.4g}", f"{q.lower:g} .. {q.upper:g}")
    page = _page()
    page.print(t)
    n = res.n_observations
    page.print(
        f"deviance {res.deviance:,.1f} on {n:,} values; fits to data simulated from the fitted scenario give "
        f"{np.quantile(res.boot_deviance, 0.05):,.1f} .. {np.quantile(res.boot_deviance, 0.95):,.1f} (90%): "
        f"goodness-of-fit p = {res.p_value:.3f}"
    )
    for line in warning_lines(res.warnings):
        err.print(line)
    reused = f" ({res.reused} reused from an interrupted run)" if res.reused else ""
    per = f", {res.seconds_per_simulation:.2f} s each" if res.simulations else ""
    err.print(f"{res.simulations} simulations{reused} of {cal.scenario.market.simulated:,} customers x "
              f"{cal.scenario.market.days} days{per}; {res.seconds:.0f} s in all; results in {where}")


@main.command("simulate-observed")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write: .csv or .parquet (period_start, metric, value).")
@click.option("--metrics", default="sessions,new_subscribers,entry_sales,core_sales,opens", show_default=True,
              help="Comma-separated metrics (see docs/model.md: channels-table columns, COLUMN.CHANNEL, "
                   "new_subscribers, entry_sales, core_sales, repeat_orders).")
@click.option("--period", type=click.Choice(["week", "day"]), default="week", show_default=True)
@click.option("--replication", type=click.IntRange(min=0), default=0, show_default=True,
              help="The random stream (use one a calibration does not: it uses seed, seed+1, ...).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--threads", type=click.IntRange(min=1), help="Kernel threads (default: all cores).")
def simulate_observed(scenario, out_file, metrics, period, replication, sets, threads):
    """Write one run of SCENARIO in the observed-data shape a calibration reads
    (period_start, metric, value; whole periods, for the whole market), so that data
    with a known truth can be made.

    \b
    Examples:
      cvj simulate-observed scenarios/default.toml --out observed.csv --replication 1000
      cvj simulate-observed scenarios/default.toml --set shop.conversion.subscribed=0.08 --out truth.parquet

    Scenario reference: docs/model.md in the cvj source.
    """
    from .calibrate.metrics import known_metric, metric_names, n_periods
    from .calibrate.output import observed_table, write_observed

    sc = _scenario(scenario, {}, sets)
    names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        _fail("--metrics names no metric")
    for m in names:
        if not known_metric(m, list(sc.channels)):
            _fail(f"--metrics: {m!r} is not a metric; metrics are {', '.join(metric_names(list(sc.channels))[:12])}, ... "
                  "and COLUMN.CHANNEL for one channel")
    if sc.start_date is None:
        _fail(f"{scenario}: the scenario needs start_date (the date of day 1) to date the periods")
    if n_periods(sc.market.days, period) < 1:
        _fail(f"the scenario's {sc.market.days} days hold no whole {period}")
    if out_file.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"--out {out_file}: give a .csv or .parquet file")
    if out_file.exists() or out_file.is_symlink():
        _fail(f"{out_file} already exists; choose another --out (cvj simulate-observed never overwrites a file)")
    if not out_file.absolute().parent.is_dir():
        _fail(f"--out {out_file}: no such directory {out_file.absolute().parent}")
    table = observed_table(sc, names, period, replication=replication, threads=threads)
    write_observed(table, out_file)
    err.print(f"wrote {out_file}: {table.num_rows:,} rows ({len(names)} metrics x "
              f"{n_periods(sc.market.days, period)} {period}s) of replication {replication} of {sc.name!r}")


if __name__ == "__main__":
    main()

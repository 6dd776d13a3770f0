"""Runs: a scenario (and replications of it) through the engine, into Arrow tables.

Every operation of the ``cvj`` CLI is a plain call here::

    import cvj
    sc = cvj.load_scenario()                  # the bundled default
    res = cvj.run(sc, replications=2)         # Arrow tables in res.tables
    res.write("results")                      # atomic Parquet output
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import results as R
from .checks import ScenarioWarning, check_names, check_run, check_scenario, combine, manifest_entry, shown
from .engine import Engine, check_memory, use_threads
from .errors import ArgumentError
from .model import Compiled, compile_scenario
from .network import customer_columns, network_kpis, referrals_table
from .output import AtomicDir, write_manifest, write_table
from .scenario import Scenario, load_scenario
from .version import __version__

Progress = Callable[[int, int], None]


def metadata(sc: Scenario, **extra: Any) -> dict[str, str]:
    """The metadata every output file carries."""
    meta = {
        "cvj.scenario": sc.canonical_json(),
        "cvj.scenario_sha256": sc.sha256(),
        "cvj.seed": str(sc.market.seed),
        "cvj.version": __version__,
    }
    meta.update({f"cvj.{k}": str(v) for k, v in extra.items()})
    return meta


@dataclass
class RunResult:
    """Tables of one or more replications of a scenario, and the warnings the scenario
    and its tables give (:mod:`cvj.checks`; they never change the tables).
    ``quiet_warnings`` names the kinds silenced: they are still listed, marked, in
    ``_cvj.json``."""

    scenario: Scenario
    replications: tuple[int, ...]
    tables: dict[str, pa.Table] = field(default_factory=dict)
    parts: dict[int, dict[str, pa.Table]] = field(default_factory=dict)
    warnings: list[ScenarioWarning] = field(default_factory=list)
    quiet_warnings: tuple[str, ...] = ()

    @property
    def shown_warnings(self) -> list[ScenarioWarning]:
        """The warnings not silenced."""
        return shown(self.warnings, self.quiet_warnings)

    @property
    def summary(self) -> pa.Table:
        return self.tables["summary"]

    def write(self, out: str | os.PathLike, force: bool = False) -> Path:
        """Write every table as Parquet under ``out`` atomically (see :class:`AtomicDir`)."""
        with AtomicDir(out, force=force) as tmp:
            self.write_into(tmp.path)
            return tmp.commit()

    def write_into(self, root: Path) -> None:
        meta = metadata(self.scenario)
        for r, part in self.parts.items():
            for name, table in part.items():
                write_table(table, root / name / f"part-r{r:05d}.parquet", dict(meta, **{"cvj.replication": str(r)}))
        write_manifest(
            root,
            {
                "kind": "run",
                "complete": True,
                "scenario": self.scenario.name,
                "scenario_sha256": self.scenario.sha256(),
                "seed": self.scenario.market.seed,
                "replications": list(self.replications),
                "tables": sorted({n for p in self.parts.values() for n in p}),
                "version": __version__,
                **manifest_entry(self.warnings, self.quiet_warnings),
            },
        )


def simulate(
    compiled: Compiled,
    replication: int = 0,
    *,
    customers_table: bool = False,
    progress: Progress | None = None,
) -> dict[str, pa.Table]:
    """Run one replication to the horizon and return its tables."""
    e = Engine(compiled, replication=replication, track_customers=customers_table)
    while not e.done:
        e.step()
        if progress is not None:
            progress(e.day, compiled.days)
    return tables_of(e)


def tables_of(e: Engine) -> dict[str, pa.Table]:
    """The output tables of an engine that has run (any number of days)."""
    cm, h, r = e.cm, e.history, e.replication
    if e.day < cm.days:
        h = _truncate(h, e.day)
    out = {
        "daily_stages": R.daily_stages(cm, h, r),
        "transitions": R.transitions(cm, h, r),
        "finance": R.finance(cm, h, r),
        "channels": R.channels(cm, h, r),
        "orders": R.orders(cm, h, r),
        "summary": R.summary_table([R.summary(cm, h, r, network_kpis(e))]),
    }
    if e.track:
        out["customers"] = R.customers(cm, e, r)
    if e.referrals is not None:
        out["referrals"] = referrals_table(cm, e, r)
        if e.track:
            for name, col in customer_columns(e).items():
                out["customers"] = out["customers"].append_column(name, col)
    if cm.billing is not None:
        out["subscriptions"] = R.subscriptions(cm, h, r)
    return out


def _truncate(h, days):
    from dataclasses import fields, replace

    return replace(h, **{f.name: getattr(h, f.name)[: days + 1] for f in fields(h)})


def run(
    scenario: Scenario | str | os.PathLike | None = None,
    *,
    replications: int | Iterable[int] = 1,
    threads: int | None = None,
    customers_table: bool = False,
    progress: Progress | None = None,
    quiet_warnings: Iterable[str] = (),
) -> RunResult:
    """Simulate a scenario.

    Parameters
    ----------
    scenario : Scenario or path, optional
        A validated scenario, a scenario file, or None for the bundled default.
    replications : int or iterable of int
        ``n`` runs replications ``0 .. n-1``; an iterable names them. Replication ``r``
        always gives the same tables, whichever others run with it.
    threads : int, optional
        Worker threads for the kernel (default: all cores). Results do not depend on it.
    customers_table : bool
        Also return the one-row-per-customer table (about
        ``cvj.engine.CUSTOMERS_TABLE_BYTES`` = 82 more bytes per customer and
        replication in memory, which the memory check counts).
    progress : callable(done, total), optional
        Called after every simulated day with the days simulated so far and the days
        to simulate, both counted over all replications.
    quiet_warnings : iterable of str
        Kinds of warning (:data:`cvj.checks.CHECKS`, or ``"all"``) to silence.

    Returns
    -------
    RunResult
        ``tables`` maps table name to a ``pyarrow.Table`` with all replications;
        ``warnings`` lists what :mod:`cvj.checks` finds in the scenario and the run.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    quiet = check_names(quiet_warnings)
    reps = tuple(range(replications)) if isinstance(replications, int) else tuple(int(r) for r in replications)
    if not reps or min(reps) < 0:
        raise ArgumentError("must name at least one replication, all >= 0", "replications", list(reps))
    check_memory(sc.market.simulated, customers_table, replications=len(reps))
    cm = compile_scenario(sc)
    total = len(reps) * cm.days
    res = RunResult(scenario=sc, replications=reps, quiet_warnings=quiet)
    with use_threads(threads):
        for i, r in enumerate(reps):
            cb = None if progress is None else (lambda d, _D, i=i: progress(i * cm.days + d, total))
            res.parts[r] = simulate(cm, r, customers_table=customers_table, progress=cb)
    names = res.parts[reps[0]].keys()
    res.tables = {name: pa.concat_tables([res.parts[r][name] for r in reps]) for name in names}
    res.warnings = combine(check_scenario(sc, cm), check_run(sc, res.tables, cm))
    return res


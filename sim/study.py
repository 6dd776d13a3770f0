"""Studies: a strategist's comparison of variants of a scenario, with replications,
common random numbers and paired confidence intervals.

A study file is TOML with ``format = 1``, validated like a scenario (unknown keys are
errors; every error is a :class:`~cvj.scenario.ScenarioError` naming the key path and
the value)::

    format = 1
    name = "compare-entry-offers"
    scenario = "default.toml"          # the base scenario, relative to this file
    replications = 20
    days = 365                         # horizon (optional: the scenario's)
    customers = 200_000                # optional: the scenario's
    baseline = "price_9"
    kpis = ["profit", "conversions", "cac", "roas"]

    [marketer]                         # every variant's marketer (cvj.mesa_model.MarketerSettings)
    policy = "fixed"

    [variants.free]
    overrides = { "offers.entry.price" = 0.0 }
    [variants.price_9]
    [variants.price_27]
    overrides = { "offers.entry.price" = 27.0 }
    marketer = { policy = "shift" }    # merged onto the study's [marketer]

Overrides name fields of the scenario by dotted path; a path that the scenario (with
its defaults filled in) does not have is an error, so a typo cannot become a new key.

Every (variant, replication) is one pure task, :func:`run_task`; :func:`compare`
runs them on an executor (by default a local process pool; :mod:`cvj.distributed` for
Dask) and computes the paired contrasts. With ``out=DIR`` each run's tables are written
by this process as soon as the run is back, and ``resume=True`` skips the runs already
in DIR (:mod:`cvj.study_output`). With common random numbers (the default) replication ``r`` of every variant
uses the same random stream keys, so replication ``r`` of a variant equals a standalone
``cvj run`` of its scenario with ``--replication r``.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import math
import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field
from scipy import stats

from .engine import check_memory, use_threads
from .mesa_model import MarketerSettings, run_model
from .model import compile_scenario
from .documents import Name, Strict, apply_overrides, flatten, read_toml, validate
from .errors import ArgumentError, ScenarioError
from .scenario import Scenario, validate_scenario
from .stages import STAGES

FORMAT = 1
#: per-day tables, written hive-partitioned by variant and replication
DAILY_TABLES = ("daily_stages", "transitions", "finance", "kpis_daily")
#: KPIs where less is better (everything else: more is better)
LOWER_IS_BETTER = frozenset({"spend", "cost", "cac", "payback_day", "end_unaware", "end_lapsed"})
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- the file


class VariantSpec(Strict):
    description: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    marketer: dict[str, Any] = Field(default_factory=dict)


class StudySpec(Strict):
    format: Literal[1]
    name: str = "study"
    description: str = ""
    scenario: str
    replications: int = Field(ge=1, le=100_000)
    days: int | None = Field(default=None, ge=1, le=65_534)
    customers: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    common_random_numbers: bool = True
    baseline: str
    kpis: list[str] = Field(min_length=1)
    rank_by: str | None = None
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    overrides: dict[str, Any] = Field(default_factory=dict)
    marketer: dict[str, Any] = Field(default_factory=dict)
    variants: dict[Name, VariantSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    scenario: Scenario
    marketer: MarketerSettings
    overrides: dict


@dataclass(frozen=True)
class Study:
    """A validated study: every variant's fully-resolved scenario and marketer."""

    name: str
    description: str
    replications: int
    baseline: str
    kpis: tuple[str, ...]
    rank_by: str
    confidence: float
    common_random_numbers: bool
    variants: dict[str, Variant]
    source: str = ""

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(self.variants)

    def stream(self, variant: str, replication: int) -> int:
        """The random stream (replication number passed to the engine) of a run.

        With common random numbers every variant's replication ``r`` uses stream ``r``;
        without, variant ``i`` (in file order) uses ``r + i * replications``.
        """
        if self.common_random_numbers:
            return int(replication)
        return int(replication) + self.variant_names.index(variant) * self.replications

    def to_json(self) -> str:
        """Everything a task needs, as canonical JSON (no file is read again)."""
        doc = {
            "format": FORMAT,
            "name": self.name,
            "description": self.description,
            "replications": self.replications,
            "baseline": self.baseline,
            "kpis": list(self.kpis),
            "rank_by": self.rank_by,
            "confidence": self.confidence,
            "common_random_numbers": self.common_random_numbers,
            "variants": {
                n: {
                    "description": v.description,
                    "overrides": v.overrides,
                    "marketer": v.marketer.model_dump(mode="json"),
                    "scenario": v.scenario.model_dump(mode="json"),
                }
                for n, v in self.variants.items()
            },
        }
        # not sort_keys: the order of segments and channels is part of a scenario
        return json.dumps(doc, separators=(",", ":"))


@functools.lru_cache(maxsize=8)
def study_from_json(text: str) -> Study:
    """Rebuild a study from :meth:`Study.to_json` (as a task receives it)."""
    doc = json.loads(text)
    variants = {}
    for n, v in doc["variants"].items():
        variants[n] = Variant(
            name=n,
            description=v["description"],
            scenario=validate_scenario(v["scenario"], source=f"<study variant {n}>"),
            marketer=MarketerSettings.model_validate(v["marketer"]),
            overrides=v["overrides"],
        )
    return Study(
        name=doc["name"],
        description=doc["description"],
        replications=doc["replications"],
        baseline=doc["baseline"],
        kpis=tuple(doc["kpis"]),
        rank_by=doc["rank_by"],
        confidence=doc["confidence"],
        common_random_numbers=doc["common_random_numbers"],
        variants=variants,
        source="<json>",
    )


def _marketer(common: dict, own: dict, variant_path: str, source: str) -> MarketerSettings:
    """The study's [marketer] with the variant's keys on top."""
    try:
        return validate(MarketerSettings, {**common, **own}, kind="marketer")
    except ScenarioError as err:
        head = err.path.split(".", 1)[0]
        path = f"{variant_path}.marketer" if head in own else "marketer"
        raise ScenarioError(err.reason, f"{path}.{err.path}", err.value, source) from None


def kpi_names(sc: Scenario) -> tuple[str, ...]:
    """The KPIs a run reports (the numeric columns of ``summary``)."""
    return (
        "spend",
        "revenue",
        "cost",
        "profit",
        "conversions",
        "cac",
        "roas",
        "payback_day",
        "front_end_profit",
        "back_end_profit",
        *(f"ltv_{g}" for g in sc.segments),
        *(f"end_{s}" for s in STAGES),
    )


def load_study(path: str | os.PathLike, replications: int | None = None) -> Study:
    """Load and validate a study file.

    Parameters
    ----------
    path : path-like
        The study (TOML, ``format = 1``).
    replications : int, optional
        Replace the file's number of replications.

    Returns
    -------
    Study

    Raises
    ------
    ScenarioError
        Naming the study file, the key path and the value of the first problem.
    """
    p = Path(path)
    source = str(p)
    raw = read_toml(p)  # the same "no such file" and "malformed TOML" errors as a scenario
    if replications is not None and isinstance(raw, dict) and "format" in raw:
        raw = dict(raw, replications=replications)
    spec = validate(StudySpec, raw, kind="study", source=source, format=FORMAT)

    base_path = (p.parent / spec.scenario).resolve() if not Path(spec.scenario).is_absolute() else Path(spec.scenario)
    if not base_path.is_file():
        raise ScenarioError(f"no such scenario file ({base_path})", "scenario", spec.scenario, source)
    try:
        base = validate_scenario(read_toml(base_path), source=str(base_path))
    except ScenarioError as exc:
        raise ScenarioError(f"the base scenario is invalid: {exc}", "scenario", spec.scenario, source) from None
    # defaults filled in, so every real field exists; model_dump keeps the file's order of
    # segments and channels (canonical JSON sorts them, and the order changes the run)
    resolved = base.model_dump(mode="json")

    common = {}
    for key, value in (("market.days", spec.days), ("market.customers", spec.customers), ("market.seed", spec.seed)):
        if value is not None:
            common[key] = value
    common.update(flatten(spec.overrides))

    if not _NAME.match(spec.baseline) or spec.baseline not in spec.variants:
        raise ScenarioError(f"not one of the variants ({', '.join(spec.variants)})", "baseline", spec.baseline, source)

    variants = {}
    for name, v in spec.variants.items():
        where = f"variants.{name}"
        if not _NAME.match(name):
            raise ScenarioError("a variant name may hold only letters, digits, '_', '-' and '.'", where, None, source)
        own = flatten(v.overrides)
        overrides = {**common, **own}

        for key, value in overrides.items():
            try:
                apply_overrides(resolved, {key: value}, must_exist=True)
            except ScenarioError as exc:
                raise ScenarioError(f"{exc.reason} ({base_path.name})", _where(key, own, where, spec.overrides), value, source) from None
        try:
            sc = validate_scenario(apply_overrides(resolved, overrides, must_exist=True), source=source)
        except ScenarioError as exc:
            if exc.path in overrides:
                raise ScenarioError(exc.reason, _where(exc.path, own, where, spec.overrides), exc.value, source) from None
            raise ScenarioError(f"{exc.path}: {exc.reason}" if exc.path else exc.reason, where, None, source) from None
        settings = _marketer(spec.marketer, v.marketer, where, source)
        _check_marketer(settings, sc, lambda key, w=where, m=v.marketer: f"{w}.marketer" if key in m else "marketer", source)
        variants[name] = Variant(name, v.description, sc, settings, overrides)

    known = kpi_names(variants[spec.baseline].scenario)
    for i, k in enumerate(spec.kpis):
        if k not in known:
            raise ScenarioError(f"unknown KPI; KPIs are {', '.join(known)}", f"kpis.{i}", k, source)
    rank_by = spec.rank_by or spec.kpis[0]
    if rank_by not in spec.kpis:
        raise ScenarioError("must be one of the study's kpis", "rank_by", rank_by, source)
    for name, v in variants.items():
        if kpi_names(v.scenario) != known:
            raise ScenarioError("variants must keep the base scenario's segments", f"variants.{name}.overrides", None, source)
    return Study(
        name=spec.name,
        description=spec.description,
        replications=spec.replications,
        baseline=spec.baseline,
        kpis=tuple(spec.kpis),
        rank_by=rank_by,
        confidence=spec.confidence,
        common_random_numbers=spec.common_random_numbers,
        variants=variants,
        source=source,
    )


def _where(key: str, own: dict, variant_path: str, common: dict) -> str:
    """The key path in the study file of the override ``key`` of a variant."""
    if key in own:
        return f"{variant_path}.overrides.{key}"
    short = {"market.days": "days", "market.customers": "customers", "market.seed": "seed"}
    return short[key] if key in short and key not in flatten(common) else f"overrides.{key}"


def _check_marketer(s: MarketerSettings, sc: Scenario, path: Callable[[str], str], source: str) -> None:
    """The marketer's channels must be the scenario's channels with a budget.
    ``path(key)`` is where the key was written (the study's or the variant's table)."""
    budgeted = [n for n, ch in sc.channels.items() if ch.pricing != "commission"]
    for i, n in enumerate(s.channels or ()):
        if n not in budgeted:
            raise ScenarioError(
                f"not a channel with a budget; those are {', '.join(budgeted)}", f"{path('channels')}.channels.{i}", n, source
            )
    for n, cap in s.channel_caps.items():
        where = f"{path('channel_caps')}.channel_caps.{n}"
        if n not in budgeted:
            raise ScenarioError(f"not a channel with a budget; those are {', '.join(budgeted)}", where, cap, source)
        if cap < 0:
            raise ScenarioError("a cap cannot be negative", where, cap, source)


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
        ``kpis_daily`` (the Mesa DataCollector's model-level KPIs).
    """
    st = study_from_json(study) if isinstance(study, str) else study
    if variant not in st.variants:
        raise ArgumentError(f"no such variant; variants are {', '.join(st.variants)}", "variant", variant)
    if not 0 <= replication < st.replications:
        raise ArgumentError(f"must be in 0..{st.replications - 1}", "replication", replication)
    v = st.variants[variant]
    cm = _compiled(json.dumps(v.scenario.model_dump(mode="json"), separators=(",", ":")))
    return run_model(cm, st.stream(variant, replication), v.marketer)


def _worker_init(threads: int) -> None:
    # Ctrl-C goes to the whole process group: the parent alone decides what to do
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import kernels

    kernels.set_threads(max(1, min(threads, kernels.max_threads())))


# --------------------------------------------------------------------------- statistics


def paired_contrast(x, y, confidence: float = 0.95) -> dict:
    """Mean of ``x - y`` over the pairs where both are known, with a t confidence
    interval and the two-sided p-value of "no difference"."""
    x = np.asarray([np.nan if v is None else v for v in x], dtype=np.float64)
    y = np.asarray([np.nan if v is None else v for v in y], dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    n = int(d.size)
    out = {"n": n, "mean_difference": float(d.mean()) if n else None, "sd": None, "halfwidth": None,
           "ci_low": None, "ci_high": None, "p_value": None}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    tq = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    hw = tq * sd / math.sqrt(n)
    if sd > 0:
        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    else:
        p = 1.0 if mean == 0 else 0.0
    out.update(sd=sd, halfwidth=hw, ci_low=mean - hw, ci_high=mean + hw, p_value=p)
    return out


def replications_needed(sd: float | None, halfwidth: float, confidence: float = 0.95) -> int | None:
    """Fewest replications whose t confidence interval has at most ``halfwidth``
    (taking the sample standard deviation as the true one)."""
    if sd is None or halfwidth <= 0:
        return None
    if sd == 0:
        return 2
    z = stats.norm.ppf(0.5 + confidence / 2)
    n = max(2, math.ceil((z * sd / halfwidth) ** 2))
    while stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) > halfwidth:
        n += 1
    return n


def _values(runs: dict[str, list[dict]], variant: str, kpi: str) -> np.ndarray:
    return np.array([np.nan if r[kpi] is None else r[kpi] for r in runs[variant]], dtype=np.float64)


def _independent_variance(x: np.ndarray, y: np.ndarray) -> float | None:
    """Variance of differences of runs that share no random numbers: replication ``r``
    of the variant against replication ``r + 1`` (mod n) of the baseline."""
    if x.size < 2:
        return None
    d = x - np.roll(y, -1)
    d = d[np.isfinite(d)]
    return float(d.var(ddof=1)) if d.size >= 2 else None


def contrasts(study: Study, runs: dict[str, list[dict]], target_halfwidth: dict[str, float] | None = None) -> pa.Table:
    """Every variant against the baseline, for every KPI of the study."""
    rows = []
    target_halfwidth = target_halfwidth or {}
    b = study.baseline
    for v in study.variant_names:
        if v == b:
            continue
        for k in study.kpis:
            x, y = _values(runs, v, k), _values(runs, b, k)
            c = paired_contrast(x, y, study.confidence)
            var_p = c["sd"] ** 2 if c["sd"] is not None else None
            var_i = _independent_variance(x, y)
            if var_p is None or var_i is None:
                factor = None
            elif var_p > 0:
                factor = var_i / var_p
            else:
                factor = math.inf if var_i > 0 else None
            tgt = target_halfwidth.get(k)
            rows.append(
                {
                    "variant": v,
                    "baseline": b,
                    "kpi": k,
                    "n": c["n"],
                    "variant_mean": _nanmean(x),
                    "baseline_mean": _nanmean(y),
                    "mean_difference": c["mean_difference"],
                    "ci_low": c["ci_low"],
                    "ci_high": c["ci_high"],
                    "halfwidth": c["halfwidth"],
                    "p_value": c["p_value"],
                    "significant": None if c["p_value"] is None else bool(c["p_value"] < 1 - study.confidence),
                    "var_paired": var_p,
                    "var_independent": var_i,
                    "crn_variance_factor": factor,
                    "target_halfwidth": tgt,
                    "replications_needed": replications_needed(c["sd"], tgt, study.confidence) if tgt else None,
                }
            )
    schema = pa.schema(
        [
            ("variant", pa.string()),
            ("baseline", pa.string()),
            ("kpi", pa.string()),
            ("n", pa.int32()),
            ("variant_mean", pa.float64()),
            ("baseline_mean", pa.float64()),
            ("mean_difference", pa.float64()),
            ("ci_low", pa.float64()),
            ("ci_high", pa.float64()),
            ("halfwidth", pa.float64()),
            ("p_value", pa.float64()),
            ("significant", pa.bool_()),
            ("var_paired", pa.float64()),
            ("var_independent", pa.float64()),
            ("crn_variance_factor", pa.float64()),
            ("target_halfwidth", pa.float64()),
            ("replications_needed", pa.int64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _nanmean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def ranking(study: Study, runs: dict[str, list[dict]]) -> list[dict]:
    """Variants ordered best first by ``rank_by`` (mean over replications, with the
    half-width of its confidence interval)."""
    k = study.rank_by
    rows = []
    for v in study.variant_names:
        x = _values(runs, v, k)
        x = x[np.isfinite(x)]
        hw = None
        if x.size >= 2:
            hw = float(stats.t.ppf(0.5 + study.confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
        rows.append({"variant": v, "kpi": k, "mean": float(x.mean()) if x.size else None, "halfwidth": hw})
    sign = 1.0 if k in LOWER_IS_BETTER else -1.0
    rows.sort(key=lambda r: (r["mean"] is None, sign * (r["mean"] or 0.0)))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows


# --------------------------------------------------------------------------- the runner


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
        ``out=`` does (see :class:`cvj.study_output.StudyDir`)."""
        from .study_output import StudyDir

        missing = [k for k in tasks_of(self.study) if k not in self.parts]
        if missing:
            where = f" (they are in {self.out})" if self.out is not None else ""
            raise ValueError(f"this result does not hold the tables of every run{where}")
        d = StudyDir(out, self.study, force=force)
        try:
            for (v, r), part in self.parts.items():
                d.write_partition(v, r, part)
            return d.finish(self.target_halfwidth).out
        finally:
            d.close()


def tasks_of(study: Study) -> list[tuple[str, int]]:
    """Every (variant, replication), replication-major so an early stop leaves pairs."""
    return [(v, r) for r in range(study.replications) for v in study.variant_names]


def compare(
    study: Study | str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    workers: int | None = None,
    threads: int | None = None,
    executor: cf.Executor | None = None,
    progress: Progress | None = None,
    target_halfwidth: dict[str, float] | None = None,
) -> StudyResult:
    """Run every variant x replication of a study and compare the variants.

    Parameters
    ----------
    study : Study or path
    out : path or cvj.study_output.StudyDir, optional
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
        Kernel threads per worker (default: the cores shared out among the workers).
        Results do not depend on it.
    executor : concurrent.futures.Executor-like, optional
        Any object whose ``submit(fn, *args)`` returns a future with ``result()``, e.g.
        :func:`cvj.distributed.dask_executor`. Tasks are
        ``run_task(study_json, variant, replication)`` with plain arguments.
        ``workers`` and ``threads`` are then ignored.
    progress : callable(done, total), optional
        Called once at the start (``done``: runs already in ``out``) and after every
        finished run.
    target_halfwidth : dict, optional
        KPI -> wanted CI half-width of the difference; the contrasts then say how many
        replications would reach it.

    Returns
    -------
    StudyResult
    """
    from .study_output import StudyDir

    st = study if isinstance(study, Study) else load_study(study)
    for k, v in (target_halfwidth or {}).items():
        if k not in st.kpis:
            raise ArgumentError(f"not one of the study's kpis ({', '.join(st.kpis)})", "target_halfwidth", k)
        if not v > 0:
            raise ArgumentError("must be positive", f"target_halfwidth.{k}", v)
    if isinstance(out, StudyDir):
        sink = out
    else:
        sink = StudyDir(out, st, resume=resume, force=force) if out is not None else None
    try:
        return _run(st, sink, workers, threads, executor, progress, target_halfwidth)
    finally:
        if sink is not None:
            sink.close()


def _run(st: Study, sink, workers, threads, executor, progress, target_halfwidth) -> StudyResult:
    todo = [k for k in tasks_of(st) if sink is None or k not in sink.done]
    total = len(st.variants) * st.replications
    reused = total - len(todo)
    payload = st.to_json()
    parts: dict[tuple[str, int], dict[str, pa.Table]] = {}
    summaries: dict[tuple[str, int], pa.Table] = {}
    moves: dict[tuple[str, int], pa.Table] = {}
    cores = os.cpu_count() or 1
    biggest = max(v.scenario.market.customers for v in st.variants.values())
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
    else:
        n = max(1, min(workers or cores, len(todo)))
        if n == 1:
            check_memory(biggest)
            with use_threads(threads):
                for v, r in todo:
                    done((v, r), run_task(st, v, r))
        else:
            check_memory(biggest * n)
            per = threads or max(1, cores // n)
            # spawn, not fork: the parent may already run Numba's thread pool
            pool = cf.ProcessPoolExecutor(
                max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(per,)
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
        res = sink.finish(target_halfwidth)  # every partition read back from DIR
    else:
        res = StudyResult(st, summaries=summaries, moves=moves, target_halfwidth=dict(target_halfwidth or {}), parts=parts)
        res.contrasts = contrasts(st, res.run_rows(), target_halfwidth)
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


__all__ = [
    "Study",
    "StudyResult",
    "compare",
    "contrasts",
    "load_study",
    "paired_contrast",
    "ranking",
    "replications_needed",
    "run_task",
    "study_from_json",
]


# --------------------------------------------------------------------------- reporting


def _num(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-" if v is None or math.isnan(v) else "inf"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1 or a == 0:
        return f"{v:,.{digits}f}"
    return f"{v:.3g}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def verdict(row: dict, confidence: float) -> str:
    """A contrast in words: better, worse, or not significant."""
    p = row["p_value"]
    if p is None:
        return "too few replications"
    if p >= 1 - confidence:
        return f"not significant ({_p(p)})"
    better = (row["mean_difference"] < 0) == (row["kpi"] in LOWER_IS_BETTER)
    return f"{'better' if better else 'worse'} ({_p(p)})"


def report(res: StudyResult) -> list:
    """What ``cvj compare`` prints: rich renderables (tables and lines)."""
    from rich import box
    from rich.table import Table

    st = res.study
    level = f"{st.confidence:.0%}"
    con = res.contrasts.to_pylist()
    by = {(r["variant"], r["kpi"]): r for r in con}
    out: list = []
    crn = "common random numbers" if st.common_random_numbers else "independent random numbers (no CRN)"
    out.append(
        f"study {st.name!r}: {len(st.variants)} variants x {st.replications} replications, {crn}; "
        f"baseline {st.baseline!r}"
    )
    t = Table(title=f"Variants ranked by {st.rank_by} (mean, {level} CI)", title_justify="left", box=box.SIMPLE_HEAD)
    for col, just in (("#", "right"), ("variant", "left"), (st.rank_by, "right"), (f"vs {st.baseline}", "right"), ("verdict", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    for r in res.ranking():
        mean = _num(r["mean"]) + (f" ± {_num(r['halfwidth'])}" if r["halfwidth"] is not None else "")
        if r["variant"] == st.baseline:
            diff, word = "", "baseline"
        else:
            c = by[(r["variant"], st.rank_by)]
            diff = f"{_num(c['mean_difference'])} ± {_num(c['halfwidth'])}"
            word = verdict(c, st.confidence)
        t.add_row(str(r["rank"]), r["variant"], mean, diff, word)
    out.append(t)

    targeted = any(r["target_halfwidth"] for r in con)
    t = Table(title=f"Every KPI vs {st.baseline!r}: paired difference, {level} CI", title_justify="left", box=box.SIMPLE_HEAD)
    cols = ["variant", "kpi", "difference", f"{level} CI", "verdict", "CRN gain"]
    if targeted:
        cols.append("reps for target")
    for col in cols:
        t.add_column(col, justify="left" if col in ("variant", "kpi", "verdict") else "right", no_wrap=True)
    for r in con:
        row = [
            r["variant"],
            r["kpi"],
            _num(r["mean_difference"]),
            f"{_num(r['ci_low'])} .. {_num(r['ci_high'])}",
            verdict(r, st.confidence),
            "-" if r["crn_variance_factor"] is None else f"{r['crn_variance_factor']:,.1f}x",
        ]
        if targeted:
            row.append("-" if r["replications_needed"] is None else f"{r['replications_needed']:,}")
        t.add_row(*row)
    out.append(t)

    unclear = [r for r in con if r["p_value"] is not None and not r["significant"]]
    if unclear:
        out.append(
            f"Not significant at {level} (the data cannot tell these from {st.baseline!r}): "
            + ", ".join(f"{r['variant']} on {r['kpi']} ({_p(r['p_value'])})" for r in unclear)
            + "."
        )
    else:
        out.append(f"Every difference is significant at {level}.")
    factors = [r["crn_variance_factor"] for r in con if r["kpi"] == st.rank_by and r["crn_variance_factor"] is not None]
    finite = [f for f in factors if math.isfinite(f)]
    if st.common_random_numbers and finite:
        out.append(
            f"Common random numbers: the paired differences of {st.rank_by} have {min(finite):,.1f}x to "
            f"{max(finite):,.1f}x less variance than differences of independent runs (replication r of a "
            f"variant against replication r+1 of the baseline, which share no random numbers), so independent "
            f"runs would need that many times more replications for the same CI. \"CRN gain\" is this factor "
            f"for every KPI (below 1: pairing hurt)."
        )
    for r in con:
        if r["replications_needed"] is not None and r["kpi"] in res.target_halfwidth:
            out.append(
                f"{r['variant']} vs {st.baseline}, {r['kpi']}: CI half-width {_num(r['halfwidth'])} with "
                f"{r['n']} replications; ± {_num(r['target_halfwidth'])} needs about {r['replications_needed']:,}."
            )
    return out

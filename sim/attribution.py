"""Which channel really works: each channel's true incremental value, from
counterfactual runs, beside what the usual attribution models claim.

An attribution tool sees one world and shares its conversions among the touches it
saw. The simulator can run the other world: the same customers, the same random
numbers, with one channel off. :func:`attribute` runs the scenario (the *base*) and,
for every channel, two counterfactuals with common random numbers (replication ``r``
of every run uses random stream ``r``, as in a study):

- **off**: the channel's budget set to 0 (a retainer's monthly cost to 0; a referral
  programme's commission and pushes removed), for its incremental value;
- **step**: its budget cut by ``step`` (10 %: every daily budget, period and monthly
  cost times 0.9), for its marginal value.

The difference base minus off, replication by replication, is what the channel adds:
customers entering each stage, conversions, revenue, spend (the whole scenario's: a
channel off can change what others spend, e.g. commissions), profit. Incremental CAC
(added spend per added conversion), incremental ROAS (added revenue per added spend)
and marginal ROAS (revenue lost per spend saved by the step) are ratios of paired
means with Fieller's confidence interval (:func:`cvj.study.stats.paired_ratio`).

Beside them, from the base runs' touch paths (:mod:`cvj.touch`): the conversions and
revenue that first touch, last touch, linear and Markov-chain removal-effect
attribution give each channel, per replication (so they too have a confidence
interval), and the CAC and ROAS those would imply (the channel's own spend over what
is credited to it).

The runs are a study (:func:`cvj.study.study_of`) run by the study runner
(:func:`cvj.study.compare`): the same processes, executors and checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import touch
from .checks import ScenarioWarning, check_run, check_scenario, combine, manifest_entry
from .engine import check_memory
from .errors import ArgumentError
from .model import compile_scenario
from .output import AtomicDir, write_manifest, write_table
from .run import metadata
from .scenario import Scenario, load_scenario
from .stages import STAGES
from .version import __version__

#: the variant that is the scenario as it is
BASE = "base"
#: the stages whose entries are counted per channel (aware .. promoter)
ENTRY_STAGES = STAGES[1:9]
#: one row per (channel, measure, model): the ``attribution`` table
SCHEMA = pa.schema(
    [
        ("channel", pa.string()),
        ("measure", pa.string()),
        ("model", pa.string()),
        ("value", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n", pa.int32()),
    ]
)
#: what the ``model`` column holds: ``true`` for the counterfactual runs, ``base`` for
#: figures of the base runs, then the attribution models of :data:`cvj.touch.MODELS`
TRUE, OBSERVED = "true", "base"

Progress = Callable[[int, int], None]


def off_variant(name: str) -> str:
    return f"off {name}"


def step_variant(name: str) -> str:
    return f"step {name}"


def counterfactuals(sc: Scenario, step: float) -> dict[str, dict]:
    """Every variant's overrides: ``base`` (none), ``off <channel>`` for every channel
    and ``step <channel>`` for every channel with a budget (not for a commission
    programme, which has none; not when ``step`` is 0)."""
    out: dict[str, dict] = {BASE: {}}
    for n, ch in sc.channels.items():
        at = f"channels.{n}"
        if ch.pricing == "commission":
            out[off_variant(n)] = {f"{at}.commission": 0.0, f"{at}.pushes": {}}
        elif ch.pricing == "fixed":
            out[off_variant(n)] = {f"{at}.monthly_cost": 0.0, f"{at}.schedule": []}
        else:
            out[off_variant(n)] = {f"{at}.daily_budget": 0.0, f"{at}.schedule": []}
    if step > 0:
        for n, ch in sc.channels.items():
            if ch.pricing != "commission":
                out[step_variant(n)] = _less(n, ch, step, sc.market.days)
    return out


def _less(name: str, ch, step: float, days: int) -> dict:
    at = f"channels.{name}"
    keep = 1.0 - step
    if ch.pricing != "fixed":
        periods = [p.model_dump(mode="json") | {"daily_budget": p.daily_budget * keep} for p in ch.schedule]
        return {f"{at}.daily_budget": ch.daily_budget * keep, f"{at}.schedule": periods}
    # a retainer buys contacts in proportion to its cost over its monthly_cost, so the
    # cut is a schedule over the whole horizon (scaling monthly_cost alone changes nothing)
    cost = np.full(days + 1, ch.monthly_cost)
    for p in ch.schedule:
        cost[p.from_day : min(p.to_day, days) + 1] = p.monthly_cost
    cost = cost[1:] * keep
    periods, start = [], 1
    for d in range(2, days + 2):
        if d == days + 1 or cost[d - 1] != cost[start - 1]:
            periods.append({"from_day": start, "to_day": d - 1, "monthly_cost": float(cost[start - 1])})
            start = d
    return {f"{at}.schedule": periods}


@dataclass
class AttributionResult:
    """What :func:`attribute` found.

    Attributes
    ----------
    scenario : Scenario
        The base scenario.
    study : cvj.study.Study
        The base and every counterfactual, as a study (variants ``base``, ``off C``,
        ``step C``).
    table : pyarrow.Table
        The ``attribution`` table (:data:`SCHEMA`): one row per (channel, measure,
        model) with its value and confidence interval.
    runs : pyarrow.Table
        Every run's KPIs (the study's ``runs`` table).
    paths : pyarrow.Table
        The base runs' touch paths (:func:`cvj.touch.path_counts` with ``replication``).
    touch_rows : dict of int to pyarrow.Table
        With ``touch_paths``: one row per customer-touch of each base replication.
    warnings : list of ScenarioWarning
        What :mod:`cvj.checks` finds in the scenario and its base runs.
    """

    scenario: Scenario
    study: object
    step: float
    table: pa.Table
    runs: pa.Table
    paths: pa.Table
    touch_rows: dict[int, pa.Table] = field(default_factory=dict)
    warnings: list[ScenarioWarning] = field(default_factory=list)

    @property
    def replications(self) -> int:
        return self.study.replications

    @property
    def channels(self) -> tuple[str, ...]:
        return self.scenario.channel_names

    def get(self, channel: str, measure: str, model: str = TRUE) -> dict | None:
        """One row of :attr:`table` as a dict, or None."""
        for r in self._rows():
            if r["channel"] == channel and r["measure"] == measure and r["model"] == model:
                return r
        return None

    def _rows(self) -> list[dict]:
        if not hasattr(self, "_cache"):
            self._cache = self.table.to_pylist()
        return self._cache

    def write(self, out: str | os.PathLike, force: bool = False, quiet: tuple[str, ...] = ()) -> Path:
        """Write the tables as Parquet under ``out`` atomically (as ``cvj run`` does):
        ``attribution``, ``runs``, ``paths`` and, when computed, ``touch_paths`` (one
        file per base replication); ``_cvj.json`` records the warnings."""
        with AtomicDir(out, force=force, kind="attribution") as d:
            meta = metadata(self.scenario, step=self.step, replications=self.replications)
            write_table(self.table, d.path / "attribution" / "part-0.parquet", meta)
            write_table(self.runs, d.path / "runs" / "part-0.parquet", meta)
            write_table(self.paths, d.path / "paths" / "part-0.parquet", meta)
            for r, t in self.touch_rows.items():
                write_table(t, d.path / "touch_paths" / f"part-r{r:05d}.parquet", dict(meta, **{"cvj.replication": str(r)}))
            tables = ["attribution", "runs", "paths", *(["touch_paths"] if self.touch_rows else [])]
            write_manifest(
                d.path,
                {
                    "kind": "attribution",
                    "complete": True,
                    "scenario": self.scenario.name,
                    "scenario_sha256": self.scenario.sha256(),
                    "seed": self.scenario.market.seed,
                    "replications": self.replications,
                    "step": self.step,
                    "variants": list(self.study.variant_names),
                    "tables": tables,
                    "version": __version__,
                    **manifest_entry(self.warnings, quiet),
                },
            )
            return d.commit()


def attribute(
    scenario: Scenario | str | os.PathLike | None = None,
    *,
    replications: int = 10,
    step: float = 0.1,
    touch_paths: bool = False,
    confidence: float = 0.95,
    common_random_numbers: bool = True,
    workers: int | None = None,
    threads: int | None = None,
    executor=None,
    progress: Progress | None = None,
) -> AttributionResult:
    """Each channel's true incremental value against what attribution models claim.

    Parameters
    ----------
    scenario : Scenario or path, optional
        The base scenario (None: the bundled default).
    replications : int
        Replications of the base and of every counterfactual (paired by replication).
    step : float
        The marginal cut of each channel's budget, in (0, 1); 0 runs no step variants
        (no marginal ROAS).
    touch_paths : bool
        Also keep one row per customer-touch of the base runs (:attr:`AttributionResult.touch_rows`).
    confidence : float
        Of every confidence interval.
    common_random_numbers : bool
        Pair the runs by random stream (the default; False gives independent streams,
        for showing what pairing buys).
    workers, threads, executor :
        Where the runs go, as in :func:`cvj.study.compare`.
    progress : callable(done, total), optional
        Called as runs finish.

    Returns
    -------
    AttributionResult

    Raises
    ------
    ArgumentError
        ``replications`` below 2 or ``step`` outside [0, 1).
    ResourceError
        The runs (with the base runs' customers tables when ``touch_paths``) would not
        fit in memory.
    """
    from .study import compare, study_of

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if replications < 2:
        raise ArgumentError("must be at least 2 (a confidence interval needs two pairs)", "replications", replications)
    if not 0 <= step < 1:
        raise ArgumentError("must be in [0, 1): the share of each budget the marginal run takes away", "step", step)
    if not sc.channels:
        raise ArgumentError("the scenario has no channels to attribute", "scenario", sc.name)
    if touch_paths:
        check_memory(sc.market.simulated, customers_table=True, replications=replications)
    st = study_of(
        sc,
        counterfactuals(sc, step),
        name=f"attribute {sc.name}",
        replications=replications,
        baseline=BASE,
        kpis=("profit", "revenue", "spend", "conversions"),
        confidence=confidence,
        common_random_numbers=common_random_numbers,
        tracked=(BASE,),
        keep_customers=touch_paths,
    )
    res = compare(st, workers=workers, threads=threads, executor=executor, progress=progress)
    parts = res.parts
    reps = range(replications)
    cm = compile_scenario(sc)
    up = 1.0 / cm.scale  # a sample's counts, for the whole market (summary KPIs already are)

    def kpis(v):
        rows = [parts[(v, r)]["summary"].to_pylist()[0] for r in reps]
        return {k: np.array([float(row[k]) for row in rows]) for k in ("spend", "revenue", "profit", "conversions")}

    def entries(v):
        """Customers moving into each stage aware .. promoter, by replication."""
        out = np.zeros((len(ENTRY_STAGES), replications))
        for r in reps:
            got = _sums(parts[(v, r)]["transitions"], "to_stage", "customers")
            out[:, r] = [got.get(s, 0.0) * up for s in ENTRY_STAGES]
        return out

    def own_spend(v):
        """Each channel's own spend, by replication."""
        out = {n: np.zeros(replications) for n in sc.channels}
        for r in reps:
            got = _sums(parts[(v, r)]["channels"], "channel", "spend")
            for n in sc.channels:
                out[n][r] = got.get(n, 0.0) * up
        return out

    base, base_entries, base_spend = kpis(BASE), entries(BASE), own_spend(BASE)
    paths = {r: parts[(BASE, r)]["touch_paths"] for r in reps}
    claims = [touch.claims(touch.paths_of(paths[r], scale=up)) for r in reps]
    rows: list[dict] = []
    from .study.stats import paired_contrast, paired_ratio

    def mean_row(channel, measure, model, x):
        c = paired_contrast(x, np.zeros_like(x), confidence)
        rows.append(_row(channel, measure, model, c["mean_difference"], c["ci_low"], c["ci_high"], c["n"]))

    def diff_row(channel, measure, x, y):
        c = paired_contrast(x, y, confidence)
        rows.append(_row(channel, measure, TRUE, c["mean_difference"], c["ci_low"], c["ci_high"], c["n"]))

    def ratio_row(channel, measure, num, den):
        c = paired_ratio(num, den, confidence)
        rows.append(_row(channel, measure, TRUE, c["ratio"], c["ci_low"], c["ci_high"], c["n"]))

    for n in sc.channels:
        off = kpis(off_variant(n))
        mean_row(n, "channel_spend", OBSERVED, base_spend[n])
        for k in ("conversions", "revenue", "spend", "profit"):
            diff_row(n, k, base[k], off[k])
        off_entries = entries(off_variant(n))
        for j, s in enumerate(ENTRY_STAGES):
            diff_row(n, f"entered_{s}", base_entries[j], off_entries[j])
        ratio_row(n, "cac", base["spend"] - off["spend"], base["conversions"] - off["conversions"])
        ratio_row(n, "roas", base["revenue"] - off["revenue"], base["spend"] - off["spend"])
        if step_variant(n) in st.variants:
            less = kpis(step_variant(n))
            diff_row(n, "marginal_spend", base["spend"], less["spend"])
            diff_row(n, "marginal_revenue", base["revenue"], less["revenue"])
            ratio_row(n, "marginal_roas", base["revenue"] - less["revenue"], base["spend"] - less["spend"])
    causes = (*sc.channels, "organic", "referral")
    for model in touch.MODELS:
        for n in causes:
            conv = np.array([claims[r][model].get(n, (0.0, 0.0))[0] for r in reps])
            rev = np.array([claims[r][model].get(n, (0.0, 0.0))[1] for r in reps])
            mean_row(n, "conversions", model, conv)
            mean_row(n, "revenue", model, rev)
            if n in sc.channels:
                ratio = paired_ratio(base_spend[n], conv, confidence)
                rows.append(_row(n, "cac", model, ratio["ratio"], ratio["ci_low"], ratio["ci_high"], ratio["n"]))
                ratio = paired_ratio(rev, base_spend[n], confidence)
                rows.append(_row(n, "roas", model, ratio["ratio"], ratio["ci_low"], ratio["ci_high"], ratio["n"]))
    for n in causes:
        mean_row(n, "removal_effect", "markov", np.array([_removal(paths[r], n) for r in reps]))
    mean_row("all", "conversions", OBSERVED, base["conversions"])
    mean_row("all", "path_conversions", OBSERVED,
             np.array([touch.paths_of(paths[r], scale=up).total_conversions for r in reps]))

    path_table = pa.concat_tables(
        [paths[r].add_column(0, "replication", pa.array([r] * paths[r].num_rows, pa.int32())) for r in reps]
    )
    touch_rows = {r: touch.touch_rows(parts[(BASE, r)]["customers"]) for r in reps} if touch_paths else {}
    base_tables = {k: pa.concat_tables([parts[(BASE, r)][k] for r in reps]) for k in ("finance", "channels")}
    warnings = combine(check_scenario(sc, cm), check_run(sc, base_tables, cm))
    return AttributionResult(
        scenario=sc,
        study=st,
        step=step,
        table=pa.Table.from_pylist(rows, schema=SCHEMA),
        runs=res.runs,
        paths=path_table,
        touch_rows=touch_rows,
        warnings=warnings,
    )


def _sums(t: pa.Table, key: str, value: str) -> dict[str, float]:
    """``value`` summed by ``key`` (a dictionary or string column)."""
    g = pa.table({key: t.column(key).cast(pa.string()), value: t.column(value)}).group_by(key).aggregate([(value, "sum")])
    return dict(zip(g.column(key).to_pylist(), g.column(f"{value}_sum").to_pylist()))


def _removal(counts: pa.Table, cause: str) -> float:
    return touch.removal_effects(touch.paths_of(counts)).get(cause, 0.0)


def _row(channel, measure, model, value, lo, hi, n) -> dict:
    return {"channel": channel, "measure": measure, "model": model, "value": value, "ci_low": lo, "ci_high": hi, "n": n}


__all__ = ["BASE", "SCHEMA", "AttributionResult", "attribute", "counterfactuals", "off_variant", "step_variant"]

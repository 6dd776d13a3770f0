"""The calibration document and the observed data it points at.

A calibration file is TOML with ``format = 1``, validated by the document layer shared
with scenarios and studies (:mod:`cvj.documents`: unknown keys are errors; every error
names the key path and the value)::

    format = 1
    name = "handbag-shop-fit"
    scenario = "default.toml"            # the base scenario, relative to this file
    observed = "handbag_observed.csv"    # period_start, metric, value (CSV or Parquet)
    period = "week"                      # or "day"
    loss = "poisson"                     # Poisson deviance, or "negative_binomial"
    sample = 100_000                     # simulated customers (market.sample)
    seed = 0                             # the random stream every evaluation shares

    [parameters."shop.conversion.subscribed"]
    bounds = [0.02, 0.15]
    prior = { mean = 0.06, sd = 0.03 }   # optional: a normal prior (a penalty on the deviance)

The free parameters are scenario fields by dotted path, the paths of ``cvj run --set``:
each must exist in the base scenario (with its defaults filled in) and hold a number.
The observed file has one row per period and metric; periods start on the scenario's
``start_date`` (day 1) and run for a day or a week; a metric is one of
:func:`cvj.calibrate.metrics.metric_names`. :func:`load_calibration` checks all of it
and returns a frozen :class:`Calibration`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..documents import Label, Strict, apply_overrides, flatten, read_toml, validate
from ..errors import ScenarioError
from ..scenario import Scenario, override, validate_scenario
from .metrics import PERIODS, known_metric, metric_names, n_periods, period_starts

FORMAT = 1
#: the observed data's columns
COLUMNS = ("period_start", "metric", "value")
#: at most this many rows are read (a year of days x every metric of a large shop)
MAX_ROWS = 1_000_000


class Prior(Strict):
    mean: float = Field(allow_inf_nan=False)
    sd: float = Field(gt=0, allow_inf_nan=False)


class ParameterSpec(Strict):
    bounds: list[float] = Field(min_length=2, max_length=2)
    start: float | None = Field(default=None, allow_inf_nan=False)
    prior: Prior | None = None


class CalibrationSpec(Strict):
    format: Literal[1]
    name: Label = "calibration"
    description: str = ""
    scenario: str
    observed: str
    period: Literal["day", "week"] = "week"
    loss: Literal["poisson", "negative_binomial"] = "poisson"
    #: negative binomial: variance = mean + dispersion * mean^2
    dispersion: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    sample: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**31)
    bootstrap: int = Field(default=100, ge=20, le=10_000)
    max_simulations: int = Field(default=300, ge=10, le=100_000)
    parameters: dict[str, ParameterSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Parameter:
    path: str
    lower: float
    upper: float
    start: float
    prior: tuple[float, float] | None
    integer: bool


@dataclass(frozen=True)
class Observed:
    """The observed data as a dense grid: ``values[P, M]`` with ``mask`` True where a
    row was given."""

    metrics: tuple[str, ...]
    starts: tuple[date, ...]
    values: np.ndarray
    mask: np.ndarray
    source: str


@dataclass(frozen=True)
class Calibration:
    """A validated calibration: the base scenario (with the simulation size), the free
    parameters and the observed data."""

    name: str
    description: str
    scenario: Scenario  # the base scenario, with market.sample set to the simulation size
    base: Scenario  # the base scenario as written (the fitted file keeps its own size)
    parameters: tuple[Parameter, ...]
    observed: Observed
    period: str
    loss: str
    dispersion: float
    seed: int
    bootstrap: int
    max_simulations: int
    source: str
    sha256: str

    @property
    def fraction(self) -> float:
        """Simulated customers per customer of the market."""
        sc = self.scenario
        return sc.market.simulated / sc.market.customers


def load_calibration(
    path: str | os.PathLike, *, sample: int | None = None, max_simulations: int | None = None, bootstrap: int | None = None
) -> Calibration:
    """Load and check a calibration file and its base scenario and observed data.

    Parameters
    ----------
    path : path-like
        The calibration (TOML, ``format = 1``).
    sample, max_simulations, bootstrap : int, optional
        Replace the file's value.

    Returns
    -------
    Calibration

    Raises
    ------
    ScenarioError
        Naming the file, the key path (or the observed file's row) and the value of
        the first problem.
    """
    p = Path(path)
    source = str(p)
    raw = read_toml(p)
    if isinstance(raw, dict) and "format" in raw:
        extra = {"sample": sample, "max_simulations": max_simulations, "bootstrap": bootstrap}
        raw = dict(raw, **{k: v for k, v in extra.items() if v is not None})
    spec = validate(CalibrationSpec, raw, kind="calibration", source=source, format=FORMAT)

    base_path = p.parent / spec.scenario
    if not base_path.is_file():
        raise ScenarioError(f"no such scenario file ({base_path})", "scenario", spec.scenario, source)
    try:
        base = validate_scenario(read_toml(base_path), source=str(base_path))
    except ScenarioError as exc:
        raise ScenarioError(f"the base scenario is invalid: {exc}", "scenario", spec.scenario, source) from None
    if base.start_date is None:
        raise ScenarioError(
            "the base scenario needs start_date (the date of day 1) to place the observed periods", "scenario",
            spec.scenario, source,
        )
    if n_periods(base.market.days, spec.period) < 1:
        raise ScenarioError(f"the scenario's {base.market.days} days hold no whole {spec.period}", "period", spec.period, source)
    scenario = base
    if spec.sample is not None:
        if spec.sample > base.market.customers:
            raise ScenarioError(
                f"more than the market's {base.market.customers:,} customers", "sample", spec.sample, source
            )
        scenario = override(base, {"market.sample": spec.sample}, source=source)

    resolved = flatten(base.model_dump(mode="json"))
    params = []
    for key, ps in spec.parameters.items():
        where = f"parameters.{key}"
        if key not in resolved:
            # a path into a table the scenario has (apply_overrides says which part is missing)
            try:
                apply_overrides(base.model_dump(mode="json"), {key: 0.0}, must_exist=True)
            except ScenarioError as exc:
                raise ScenarioError(f"no such field in the scenario ({exc.path})", where, None, source) from None
            raise ScenarioError("is a table, not a number; name one of its fields", where, None, source)
        current = resolved[key]
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise ScenarioError(f"is not a number in the scenario (it is {json.dumps(current)})", where, None, source)
        lo, hi = ps.bounds
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ScenarioError("bounds must be finite numbers", f"{where}.bounds", list(ps.bounds), source)
        if not lo < hi:
            raise ScenarioError("bounds must be [lower, upper] with lower < upper", f"{where}.bounds", list(ps.bounds), source)
        start = ps.start if ps.start is not None else (current if lo <= current <= hi else (lo + hi) / 2)
        if not lo <= start <= hi:
            raise ScenarioError(f"outside the bounds [{lo}, {hi}]", f"{where}.start", start, source)
        for value, what in ((lo, "bounds"), (hi, "bounds")):
            try:
                override(base, {key: int(value) if isinstance(current, int) else float(value)})
            except ScenarioError as exc:
                raise ScenarioError(f"{value} is not a valid value: {exc.reason}", f"{where}.{what}", list(ps.bounds),
                                    source) from None
        prior = (ps.prior.mean, ps.prior.sd) if ps.prior is not None else None
        params.append(Parameter(key, float(lo), float(hi), float(start), prior, isinstance(current, int)))

    obs_path = p.parent / spec.observed
    observed = read_observed(obs_path, base, spec.period, where="observed", calibration=source)
    digest = hashlib.sha256(
        json.dumps(
            {
                "spec": spec.model_dump(mode="json"),
                "scenario": scenario.sha256(),
                "observed": observed.values[observed.mask].tolist(),
                "mask": np.flatnonzero(observed.mask).tolist(),
                "metrics": observed.metrics,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return Calibration(
        name=spec.name,
        description=spec.description,
        scenario=scenario,
        base=base,
        parameters=tuple(params),
        observed=observed,
        period=spec.period,
        loss=spec.loss,
        dispersion=spec.dispersion,
        seed=spec.seed,
        bootstrap=spec.bootstrap,
        max_simulations=spec.max_simulations,
        source=source,
        sha256=digest,
    )


def read_observed(path: Path, scenario: Scenario, period: str, *, where: str = "observed",
                  calibration: str | None = None) -> Observed:
    """Read and check an observed-data file (CSV or Parquet: ``period_start, metric,
    value``) against a scenario's horizon, start date and metrics.

    Raises
    ------
    ScenarioError
        The file's name and row, the column and the value of the first problem.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    src = str(path)
    if not path.is_file():
        raise ScenarioError(f"no such observed-data file ({path})", where, str(path.name), calibration)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif path.suffix.lower() == ".csv":
            from pyarrow import csv

            table = csv.read_csv(
                path,
                convert_options=csv.ConvertOptions(
                    column_types={"period_start": pa.date32(), "metric": pa.string(), "value": pa.float64()}
                ),
            )
        else:
            raise ScenarioError("observed data must be a .csv or .parquet file", where, str(path.name), calibration)
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScenarioError(f"cannot read the observed data: {first}", source=src) from None
    if tuple(table.column_names) != COLUMNS:
        raise ScenarioError(
            f"the columns must be {', '.join(COLUMNS)} (found {', '.join(table.column_names) or 'none'})", source=src
        )
    if table.num_rows == 0:
        raise ScenarioError("the observed data has no rows", source=src)
    if table.num_rows > MAX_ROWS:
        raise ScenarioError(f"more than {MAX_ROWS:,} rows", source=src)
    try:
        starts = table.column("period_start").cast(pa.date32()).to_pylist()
        metrics = table.column("metric").cast(pa.string()).to_pylist()
        values = pc.cast(table.column("value"), pa.float64()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ScenarioError(f"a column has the wrong type: {str(exc).splitlines()[0]}", source=src) from None

    channels = list(scenario.channels)
    all_starts = period_starts(scenario.start_date, scenario.market.days, period)
    index = {d: i for i, d in enumerate(all_starts)}
    k = PERIODS[period]
    first, last_day = scenario.start_date, all_starts[-1] if all_starts else scenario.start_date
    used: list[str] = []
    cells: dict[tuple[int, int], float] = {}
    for row, (d, m, v) in enumerate(zip(starts, metrics, values), start=1):
        at = f"row {row}"
        if m is None or not known_metric(m, channels):
            some = ", ".join(metric_names(channels)[:12])
            raise ScenarioError(
                f"unknown metric; metrics are {some}, ... and COLUMN.CHANNEL for one channel (docs/model.md)",
                f"{at} metric", m, src,
            )
        if d is None:
            raise ScenarioError("period_start is empty", f"{at} period_start", None, src)
        if d not in index:
            if d < first or d > last_day:
                raise ScenarioError(
                    f"outside the horizon: the scenario's whole {period}s start from {first} to {last_day}",
                    f"{at} period_start", str(d), src,
                )
            raise ScenarioError(
                f"not the start of a {period} (periods of {k} day{'s' * (k > 1)} start on {first})",
                f"{at} period_start", str(d), src,
            )
        if v is None or not math.isfinite(v):
            raise ScenarioError("value must be a finite number", f"{at} value", v, src)
        if v < 0:
            raise ScenarioError("value must not be negative (counts and money)", f"{at} value", v, src)
        if m not in used:
            used.append(m)
        key = (index[d], used.index(m))
        if key in cells:
            raise ScenarioError(f"a second row for {m} in the {period} of {d}", f"{at} metric", m, src)
        cells[key] = v
    P = len(all_starts)
    vals = np.zeros((P, len(used)))
    mask = np.zeros((P, len(used)), bool)
    for (i, j), v in cells.items():
        vals[i, j] = v
        mask[i, j] = True
    return Observed(tuple(used), tuple(all_starts), vals, mask, src)


__all__ = ["FORMAT", "Calibration", "CalibrationSpec", "Observed", "Parameter", "load_calibration", "read_observed"]

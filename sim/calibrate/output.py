"""What ``cvj calibrate`` writes, and the observed-data shape of a run.

Layout of ``DIR``::

    _cvj.json                   manifest (kind "calibration"): warnings, simulations, timing
    fitted.toml                 the base scenario with the fitted values (cvj run takes it as is)
    parameters/part-0.parquet   one row per parameter: estimate, 90% interval, bounds, truth-free checks
    fit/part-0.parquet          one row per observed period and metric: observed, fitted, 90% band
    bootstrap/part-0.parquet    one row per bootstrap refit: every parameter's value and the deviance
    fit.png                     observed against fitted, one panel per metric
    goodness.png                the deviance against the bootstrap refits' (by metric and in total)
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..output import AtomicDir, write_manifest, write_table
from ..scenario import Scenario, override
from ..version import __version__
from .fit import BAD_FIT_P, LEVEL, CalibrationResult
from .metrics import by_period, daily_metrics, period_starts

FILES = ("fitted.toml", "fit.png", "goodness.png")
TABLES = ("parameters", "fit", "bootstrap")


# --------------------------------------------------------------------------- TOML


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k, ensure_ascii=False)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
        return repr(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _table(path: list[str], d: dict, lines: list[str]) -> None:
    scalars = {k: v for k, v in d.items() if v is not None and not (isinstance(v, dict) and v and _has_tables(v))}
    subs = {k: v for k, v in d.items() if isinstance(v, dict) and v and _has_tables(v)}
    if path and (scalars or not subs):
        lines.append("")
        lines.append("[" + ".".join(_key(k) for k in path) + "]")
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in subs.items():
        _table([*path, k], v, lines)


def _has_tables(d: dict) -> bool:
    """Written as a [table] (not inline) when it holds a table or more than a few keys."""
    return any(isinstance(v, dict) for v in d.values()) or len(d) > 4


def scenario_toml(sc: Scenario, header: str = "") -> str:
    """A scenario as a TOML document that validates to the same scenario (every field,
    defaults filled in; lists of tables such as calendar events as inline tables)."""
    data = sc.model_dump(mode="python")
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for k, v in top.items():
        if v is not None:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            _table([k], v, lines)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the observed-data shape


def observed_table(sc: Scenario, metrics: list[str], period: str, replication: int = 0,
                   threads: int | None = None) -> pa.Table:
    """One run of ``sc`` in the observed-data shape (``period_start, metric, value``):
    each metric summed over every whole period, for the whole market, rounded to whole
    counts (money to cents)."""
    from ..engine import Engine, use_threads
    from ..model import compile_scenario

    cm = compile_scenario(sc)
    with use_threads(threads):
        e = Engine(cm, replication=replication)
        while not e.done:
            e.step()
    vals = by_period(daily_metrics(cm, e.history, metrics), period)
    starts = period_starts(sc.start_date, sc.market.days, period)
    rows_d, rows_m, rows_v = [], [], []
    for i, d in enumerate(starts):
        for j, m in enumerate(metrics):
            v = float(vals[i, j])
            rows_d.append(d)
            rows_m.append(m)
            rows_v.append(round(v, 2) if m.split(".")[0] == "spend" else float(round(v)))
    return pa.table({"period_start": pa.array(rows_d, pa.date32()), "metric": pa.array(rows_m, pa.string()),
                     "value": pa.array(rows_v, pa.float64())})


def write_observed(table: pa.Table, path: Path) -> None:
    """Write the observed-data table as CSV or Parquet (by the suffix), atomically."""
    import os
    import uuid

    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp, compression="zstd")
        else:
            from pyarrow import csv

            csv.write_csv(table, tmp, csv.WriteOptions(quoting_style="needed"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- result tables


def parameters_table(res: CalibrationResult) -> pa.Table:
    pars = res.calibration.parameters
    flags = {q.path: [] for q in pars}
    for w in res.warnings:
        for q in pars:
            if w.path == q.path or w.path.startswith(q.path + " ~") or w.path.endswith("~ " + q.path):
                flags[q.path].append(w.name)
    return pa.table({
        "parameter": pa.array([q.path for q in pars], pa.string()),
        "estimate": pa.array(res.estimate, pa.float64()),
        "interval_low": pa.array(res.interval[:, 0], pa.float64()),
        "interval_high": pa.array(res.interval[:, 1], pa.float64()),
        "level": pa.array([LEVEL] * len(pars), pa.float64()),
        "lower_bound": pa.array([q.lower for q in pars], pa.float64()),
        "upper_bound": pa.array([q.upper for q in pars], pa.float64()),
        "start": pa.array([q.start for q in pars], pa.float64()),
        "deviance_at_lower": pa.array(res.slices[:, 0], pa.float64()),
        "deviance_at_upper": pa.array(res.slices[:, 1], pa.float64()),
        "warnings": pa.array([sorted(set(flags[q.path])) for q in pars], pa.list_(pa.string())),
    })


def fit_table(res: CalibrationResult) -> pa.Table:
    obs = res.calibration.observed
    i, j = np.nonzero(obs.mask)
    return pa.table({
        "period_start": pa.array([obs.starts[a] for a in i], pa.date32()),
        "metric": pa.array([obs.metrics[b] for b in j], pa.string()),
        "observed": pa.array(obs.values[i, j], pa.float64()),
        "fitted": pa.array(res.fitted[i, j], pa.float64()),
        "band_low": pa.array(res.band[0, i, j], pa.float64()),
        "band_high": pa.array(res.band[1, i, j], pa.float64()),
    })


def bootstrap_table(res: CalibrationResult) -> pa.Table:
    cols = {"refit": pa.array(np.arange(len(res.boot_deviance), dtype=np.int32))}
    for k, q in enumerate(res.calibration.parameters):
        cols[q.path] = pa.array(res.draws[:, k], pa.float64())
    cols["deviance"] = pa.array(res.boot_deviance, pa.float64())
    return pa.table(cols)


# --------------------------------------------------------------------------- charts


def _png(chart) -> bytes:
    import altair as alt
    import vl_convert as vlc

    vl = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    return vlc.vegalite_to_png(chart.to_dict(), vl_version=vl, scale=2)


def fit_chart(res: CalibrationResult):
    """Observed (points) against fitted (line) with the 90% band of data simulated at
    the estimate, one panel per metric."""
    return fit_chart_of(fit_table(res), res.calibration.name)


def fit_chart_of(table: pa.Table, name: str):
    """:func:`fit_chart` from a ``fit`` table (as written to ``DIR/fit``)."""
    import altair as alt

    t = table.to_pylist()
    for r in t:
        r["period_start"] = r["period_start"].isoformat()
    # the layers take their data from the facet (a layer with data of its own is not split by metric)
    base = alt.Chart().encode(x=alt.X("period_start:T", title=None))
    band = base.mark_area(opacity=0.25, color="#4c78a8").encode(
        y=alt.Y("band_low:Q", title=None), y2="band_high:Q"
    )
    line = base.mark_line(color="#4c78a8").encode(y="fitted:Q")
    pts = base.mark_circle(color="#e45756", size=14).encode(y="observed:Q")
    return (
        alt.layer(band, line, pts, data=alt.Data(values=t))
        .properties(width=260, height=130)
        .facet(facet=alt.Facet("metric:N", title=None), columns=3)
        .resolve_scale(y="independent")
        # every panel its own time axis: with a column's shared axis, the empty cell of a
        # last row (5 metrics in rows of 3) showed an axis with no panel above it
        .resolve_axis(x="independent")
        .properties(title=f"{name}: observed (dots), fitted (line), 90% of data simulated at the fit (band)")
    )


def goodness_chart(res: CalibrationResult):
    """Each metric's deviance (and the total) as a share of what the fitted scenario's
    own data give: the bootstrap refits' 5-95% range and the observed value."""
    import altair as alt

    rows = []
    for m, d in [*res.deviance_by_metric.items(), ("total", res.deviance)]:
        boot = res.boot_deviance if m == "total" else res.boot_by_metric[m]
        rows.append({
            "metric": m, "observed": float(d), "low": float(np.quantile(boot, 0.05)), "high": float(np.quantile(boot, 0.95)),
            "median": float(np.median(boot)),
        })
    base = alt.Chart(alt.Data(values=rows)).encode(y=alt.Y("metric:N", title=None, sort=None))
    rng = base.mark_bar(color="#bab0ac", height=10).encode(
        x=alt.X("low:Q", title="deviance (log scale)", scale=alt.Scale(type="log")), x2="high:Q"
    )
    med = base.mark_tick(color="#4c78a8", thickness=2).encode(x="median:Q")
    obs = base.mark_point(color="#e45756", filled=True, size=60).encode(x="observed:Q")
    verdict = "bad fit" if res.p_value < BAD_FIT_P else "fit consistent with the data"
    return alt.layer(rng, med, obs).properties(
        width=420, height=28 * len(rows),
        title=f"Goodness of fit: observed deviance (red) against fits to data from the fitted scenario "
              f"(grey 5-95%, blue median); p = {res.p_value:.3f}: {verdict}",
    )


# --------------------------------------------------------------------------- writing


def write_result(res: CalibrationResult, target: AtomicDir) -> Path:
    """Write everything into ``target`` (an open :class:`AtomicDir`) and commit it."""
    cal = res.calibration
    root = target.path
    fitted = override(cal.base, res.fitted_overrides())
    header = (
        f"{cal.name}: fitted by cvj calibrate {__version__} from {Path(cal.source).name}\n"
        + "".join(
            f"{q.path} = {v:.6g}  (90% interval {a:.6g} .. {b:.6g})\n"
            for q, v, (a, b) in zip(cal.parameters, res.estimate, res.interval)
        )
    )
    (root / "fitted.toml").write_text(scenario_toml(fitted, header), encoding="utf-8")
    meta = {"cvj.calibration": cal.name, "cvj.calibration_sha256": cal.sha256, "cvj.version": __version__}
    write_table(parameters_table(res), root / "parameters" / "part-0.parquet", meta)
    write_table(fit_table(res), root / "fit" / "part-0.parquet", meta)
    write_table(bootstrap_table(res), root / "bootstrap" / "part-0.parquet", meta)
    (root / "fit.png").write_bytes(_png(fit_chart(res)))
    (root / "goodness.png").write_bytes(_png(goodness_chart(res)))
    write_manifest(root, {
        "kind": "calibration",
        "complete": True,
        "calibration": cal.name,
        "calibration_sha256": cal.sha256,
        "scenario": cal.base.name,
        "tables": list(TABLES),
        "files": list(FILES),
        "simulations": res.simulations,
        "simulations_reused": res.reused,
        "search_evaluations": res.iterations,
        "seconds": round(res.seconds, 1),
        "seconds_per_simulation": round(res.seconds_per_simulation, 3) if res.simulations else None,
        "deviance": res.deviance,
        "p_value": res.p_value,
        "warnings": [w.to_json() for w in res.warnings],
        "version": __version__,
    })
    return target.commit()


__all__ = ["bootstrap_table", "fit_table", "observed_table", "parameters_table", "scenario_toml", "write_observed",
           "write_result"]

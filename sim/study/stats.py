"""The statistics of a study: paired contrasts, their confidence intervals, the
replications a wanted precision needs, and the ranking of the variants.

Pure functions of the runs' KPI rows (``{variant: [row of replication 0, 1, ...]}``):
nothing here runs a simulation, reads or writes a file.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from scipy import stats

from ..registry import CONTRASTS_SCHEMA, kpi

if TYPE_CHECKING:
    from .spec import Study



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


def paired_ratio(num, den, confidence: float = 0.95) -> dict:
    """The ratio of the means of two paired quantities, ``mean(num) / mean(den)`` (an
    incremental CAC: the spend a change adds over the customers it adds, replication by
    replication), with Fieller's confidence interval.

    Fieller's interval is the set of ratios ``r`` for which ``mean(num - r * den)`` is
    not significantly different from 0 (a t test on the pairs). It is exact for normal
    pairs and, unlike the delta method, honest when the denominator is small: if
    ``mean(den)`` is not significantly different from 0, the interval is unbounded
    (``bounded`` False, ``ci_low`` and ``ci_high`` None).

    Returns
    -------
    dict
        ``n`` (pairs with both known), ``ratio`` (None if ``mean(den)`` is 0),
        ``ci_low``, ``ci_high``, ``bounded``.
    """
    a = np.asarray([np.nan if v is None else v for v in num], dtype=np.float64)
    b = np.asarray([np.nan if v is None else v for v in den], dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = int(a.size)
    out = {"n": n, "ratio": None, "ci_low": None, "ci_high": None, "bounded": False}
    if n == 0:
        return out
    ma, mb = float(a.mean()), float(b.mean())
    out["ratio"] = ma / mb if mb != 0 else None
    if n < 2:
        return out
    cov = np.cov(a, b, ddof=1) / n  # variances and covariance of the two means
    t2 = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) ** 2
    qa = mb * mb - t2 * cov[1, 1]
    qb = ma * mb - t2 * cov[0, 1]
    qc = ma * ma - t2 * cov[0, 0]
    disc = qb * qb - qa * qc
    if qa <= 0 or disc < 0:
        return out  # the denominator may be 0: every ratio is consistent with the data
    root = math.sqrt(disc)
    out.update(ci_low=(qb - root) / qa, ci_high=(qb + root) / qa, bounded=True)
    return out


def defined_shares(x, y) -> dict:
    """How often a KPI that can be undefined (``None``/NaN: never paid back, no
    conversions) is defined in paired runs ``x`` and ``y``, and whether the shares
    differ: the exact McNemar test on the pairs where one is defined and the other
    not (the pairs share their random numbers, so they are not independent samples).

    Returns
    -------
    dict
        ``replications``, ``x_defined``, ``y_defined``, ``share_difference`` (x minus
        y, as shares of the replications) and ``p_value`` (1 when no pair differs).
    """
    xd = np.asarray([v is not None and np.isfinite(v) for v in x], bool)
    yd = np.asarray([v is not None and np.isfinite(v) for v in y], bool)
    n = min(xd.size, yd.size)
    xd, yd = xd[:n], yd[:n]
    only_x, only_y = int((xd & ~yd).sum()), int((yd & ~xd).sum())
    p = float(stats.binomtest(min(only_x, only_y), only_x + only_y, 0.5).pvalue) if only_x + only_y else 1.0
    return {
        "replications": n,
        "x_defined": int(xd.sum()),
        "y_defined": int(yd.sum()),
        "share_difference": float((xd.sum() - yd.sum()) / n) if n else None,
        "p_value": p,
    }


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
            shares = defined_shares(x, y)
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
                    "replications": shares["replications"],
                    "variant_defined": shares["x_defined"],
                    "baseline_defined": shares["y_defined"],
                    "defined_share_difference": shares["share_difference"],
                    "defined_p_value": shares["p_value"],
                }
            )
    return pa.Table.from_pylist(rows, schema=CONTRASTS_SCHEMA)


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
    sign = 1.0 if kpi(k).lower_is_better else -1.0
    rows.sort(key=lambda r: (r["mean"] is None, sign * (r["mean"] or 0.0)))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows


__all__ = ["contrasts", "defined_shares", "paired_contrast", "paired_ratio", "ranking", "replications_needed"]

"""What the command line prints, as rich renderables: the rendering side of the CLI.

The library returns data (tables, rows); this module turns it into tables and lines
for a terminal. Its strings hold user text (names, values): print them with the CLI's
console, which reads no markup and escapes what is not printable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from .registry import kpi

if TYPE_CHECKING:
    from .study import StudyResult


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
    better = (row["mean_difference"] < 0) == kpi(row["kpi"]).lower_is_better
    return f"{'better' if better else 'worse'} ({_p(p)})"


def study_report(res: StudyResult) -> list:
    """What ``cvj compare`` prints: rich renderables (tables and lines)."""
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
    columns = (("#", "right"), ("variant", "left"), (st.rank_by, "right"), (f"vs {st.baseline}", "right"), ("verdict", "left"))
    for col, just in columns:
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


__all__ = ["study_report", "verdict"]

"""What the command line prints, as rich renderables: the rendering side of the CLI.

The library returns data (tables, rows); this module turns it into tables and lines
for a terminal. Its strings hold user text (names, values): print them with the CLI's
console, which reads no markup and escapes what is not printable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pyarrow as pa
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


def censored(row: dict) -> str | None:
    """What a contrast of a KPI that can be undefined (never paid back, no conversions)
    must say first: how many replications had it in each variant, whether that share
    differs, or that it never happens; None when it is defined in every replication
    of both (a contrasts row of an earlier cvj, without these columns, too)."""
    n = row.get("replications")
    vd, bd = row.get("variant_defined"), row.get("baseline_defined")
    if n is None or vd is None or bd is None or (vd == n and bd == n):
        return None
    k = kpi(row["kpi"])
    never = k.undefined_as or "undefined"
    did = k.defined_as or "is defined"
    if vd == 0 and bd == 0:
        return f"neither: {never} ({n} of {n} replications each)"
    if vd == 0:
        return f"{never} (0 of {n}; baseline {did} in {bd} of {n})"
    p = row.get("defined_p_value")
    share = f"{did} in {vd} of {n} (baseline {bd} of {n}"
    share += f", {_p(p)})" if p is not None and vd != bd else ")"
    if bd == 0:
        return f"{share}; the baseline {never}"
    return share


def verdict(row: dict, confidence: float) -> str:
    """A contrast in words: better, worse, or not significant; for a KPI that can be
    undefined, how often it was (:func:`censored`) first."""
    told = censored(row)
    if told is not None and (row.get("variant_defined") == 0 or row.get("baseline_defined") == 0):
        return told
    p = row["p_value"]
    if p is None:
        return told or "too few replications"
    if row.get("var_paired") == 0 and row["mean_difference"] == 0:
        word = "identical in every replication (the change does not act on it)"
        return f"{told}; {word}" if told else word
    if p >= 1 - confidence:
        word = f"not significant ({_p(p)})"
    else:
        better = (row["mean_difference"] < 0) == kpi(row["kpi"]).lower_is_better
        word = f"{'better' if better else 'worse'} ({_p(p)})"
    if told:
        return f"{told}; where both: {word}"
    return word


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
            _gain(r),
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
        if r["kpi"] in res.target_halfwidth and r.get("var_paired") == 0 and r["mean_difference"] == 0:
            out.append(
                f"{r['variant']} vs {st.baseline}, {r['kpi']}: identical in every replication; no number of "
                f"replications changes that (the variant does not act on {r['kpi']})."
            )
        elif r["replications_needed"] is not None and r["kpi"] in res.target_halfwidth:
            out.append(
                f"{r['variant']} vs {st.baseline}, {r['kpi']}: CI half-width {_num(r['halfwidth'])} with "
                f"{r['n']} replications; ± {_num(r['target_halfwidth'])} needs about {r['replications_needed']:,}."
            )
    return out


def _count(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _money(v, currency: str) -> str:
    return "-" if v is None else f"{v:,.0f} {currency}"


def kpi_summary(rows: list[dict], currency: str, confidence: float = 0.95) -> list:
    """What ``cvj run`` prints of its KPIs: the value of a single replication, or the
    mean and confidence interval over several; a KPI undefined in some replications
    says in how many it was defined (and the mean is over those), one undefined in all
    says why ("never pays back within the horizon")."""
    from .registry import SUMMARY_KEYS
    from .study.stats import paired_contrast

    keys = [k for k in rows[0] if k not in SUMMARY_KEYS]
    n = len(rows)
    head = f"KPIs: {rows[0]['scenario']} (seed {rows[0]['seed']})"
    level = f"{confidence:.0%}"
    if n > 1:
        head += f", {n} replications: mean and {level} CI"
    t = Table(title=head, title_justify="left")
    t.add_column("kpi")
    if n == 1:
        t.add_column(f"rep {rows[0]['replication']}", justify="right")
    else:
        t.add_column("mean", justify="right")
        t.add_column(f"{level} CI", justify="right")
    notes = {}
    cells = {}
    for k in keys:
        info = kpi(k)
        values = [r[k] for r in rows]
        known = [float(v) for v in values if v is not None]
        if info.money:
            fmt = _num  # the currency is in the mean's cell
        elif pa.types.is_integer(info.type):
            fmt = _count  # a mean of counts or days: one decimal
        else:
            fmt = _num
        if len(known) < n:
            notes[k] = info.undefined_as if not known else (
                f"{info.defined_as or 'defined'} in {len(known)} of {n} replications" + (" (mean of those)" if n > 1 else "")
            )
            if not known and n > 1:
                notes[k] = f"{info.undefined_as} ({n} of {n} replications)"
        if n == 1:
            v = values[0]
            cells[k] = [_money(v, currency) if info.money else "-" if v is None else f"{v:,}" if isinstance(v, int) else _num(v)]
            continue
        c = paired_contrast(known, [0.0] * len(known), confidence)
        ci = "-" if c["ci_low"] is None else f"{fmt(c['ci_low'])} .. {fmt(c['ci_high'])}"
        mean = c["mean_difference"]
        cells[k] = [_money(mean, currency) if info.money else fmt(mean), ci]
    if notes:
        t.add_column("note")
    for k in keys:
        t.add_row(k, *cells[k], *([notes.get(k, "")] if notes else []))
    return [t]


def warning_lines(warnings) -> list[str]:
    """One line per warning (user text raw: print with the CLI's escaping console)."""
    return [f"warning [{w.name}] {w.path}: {w.message}" for w in warnings]


def _ci(row: dict | None, fmt=None) -> str:
    """A ratio and its (asymmetric) confidence interval: ``1.2 (0.9 .. 1.6)``."""
    fmt = fmt or _num
    if row is None or row["value"] is None:
        return "-"
    if row["ci_low"] is None:
        return f"{fmt(row['value'])} (CI unbounded)"
    if row["ci_low"] == row["ci_high"] == row["value"]:
        return f"{fmt(row['value'])} (every pair)"
    return f"{fmt(row['value'])} ({fmt(row['ci_low'])} .. {fmt(row['ci_high'])})"


def _pm(row: dict | None) -> str:
    """A mean difference and its CI half-width: ``1,633 ± 3,513``; a difference of
    exactly 0 in every replication says so."""
    if row is None or row["value"] is None:
        return "-"
    if row["ci_low"] is None:
        return _num(row["value"])
    hw = (row["ci_high"] - row["ci_low"]) / 2
    if hw == 0:
        return f"{_num(row['value'])} (every pair)"
    return f"{_num(row['value'])} ± {_num(hw)}"


def attribution_report(res) -> list:
    """What ``cvj attribute`` prints: claimed against true, channel by channel
    (:class:`cvj.attribution.AttributionResult`)."""
    from .attribution import ENTRY_STAGES, OBSERVED, TRUE
    from .touch import MODELS

    sc = res.scenario
    cur = sc.currency
    level = f"{res.study.confidence:.0%}"
    get = res.get
    out: list = []
    runs = len(res.study.variants)
    out.append(
        f"attribute {sc.name!r}: {res.replications} replications of the base and of {runs - 1} counterfactuals "
        f"(each channel off; each budget cut by {res.step:.0%}), common random numbers; "
        f"mean per replication and {level} CI"
    )
    names = {"first_touch": "first touch", "last_touch": "last touch", "linear": "linear", "markov": "Markov"}

    def claim(n, measure, model, true_row):
        r = get(n, measure, model)
        text = _num(r["value"]) if r is not None and r["value"] is not None else "-"
        if true_row is not None and true_row["ci_low"] is not None and r is not None and r["value"] is not None:
            if not true_row["ci_low"] <= r["value"] <= true_row["ci_high"]:
                text += " *"
        return text

    t = Table(title="Conversions: true (switching the channel off) vs claimed by attribution", title_justify="left",
              box=box.SIMPLE_HEAD)
    for col in ("channel", f"spend {cur}", "true", *(names[m] for m in MODELS)):
        t.add_column(col, justify="left" if col == "channel" else "right", no_wrap=True)
    for n in res.channels:
        true = get(n, "conversions", TRUE)
        spend = get(n, "channel_spend", OBSERVED)
        t.add_row(n, _num(spend["value"]) if spend else "-", _pm(true), *(claim(n, "conversions", m, true) for m in MODELS))
    for n in ("organic", "referral"):
        t.add_row(n, "-", "-", *(claim(n, "conversions", m, None) for m in MODELS))
    total = get("all", "conversions", OBSERVED)
    paths = get("all", "path_conversions", OBSERVED)
    t.add_row("total (base)", "", _num(total["value"]) if total else "-",
              *([_num(paths["value"])] * len(MODELS) if paths else []))
    out.append(t)
    out.append(
        "true: conversions lost when the channel is off (base minus counterfactual, paired by replication); the "
        "models share the base runs' converting customers among the touches on their paths (total: the base runs' "
        "conversions, and the customers who converted, a customer converting twice counted once). * marks a claim "
        f"outside the true {level} CI. The true effects need not add up to the total: customers who would have "
        "converted anyway are no channel's, and channels can need each other."
    )

    t = Table(title=f"Acquisition cost: CAC true vs claimed ({cur} per conversion)", title_justify="left",
              box=box.SIMPLE_HEAD)
    for col in ("channel", "true (incremental)", *(names[m] for m in MODELS)):
        t.add_column(col, justify="left" if col == "channel" else "right", no_wrap=True)
    for n in res.channels:
        t.add_row(n, _ci(get(n, "cac", TRUE)), *(claim(n, "cac", m, get(n, "cac", TRUE)) for m in MODELS))
    out.append(t)

    t = Table(title=f"Money: what each channel adds ({cur}) and returns per {cur} spent", title_justify="left",
              box=box.SIMPLE_HEAD)
    for col in ("channel", "revenue", "profit", "ROAS true", "last touch", "marginal ROAS"):
        t.add_column(col, justify="left" if col == "channel" else "right", no_wrap=True)
    for n in res.channels:
        spent = get(n, "marginal_spend", TRUE)
        marginal = get(n, "marginal_roas", TRUE)
        if spent is None:
            m_text = "-"
        elif spent["value"] == 0 and spent["ci_low"] == 0 and spent["ci_high"] == 0:
            m_text = "budget does not bind"
        else:
            m_text = _ci(marginal)
        t.add_row(n, _pm(get(n, "revenue", TRUE)), _pm(get(n, "profit", TRUE)), _ci(get(n, "roas", TRUE)),
                  claim(n, "roas", "last_touch", get(n, "roas", TRUE)), m_text)
    out.append(t)
    out.append(
        f"revenue, profit: added by the channel (± {level} CI half-width); ROAS true: revenue added per {cur} of "
        f"spend added; last touch: the ROAS last-touch attribution claims; marginal: revenue lost per {cur} saved "
        f"when its budget is cut by {res.step:.0%} ('budget does not bind': the cut saves nothing, the channel "
        "cannot spend its budget). Ratios have Fieller CIs: unbounded when the denominator may be 0."
    )

    t = Table(title="Customers each channel adds, by the stage they enter (true, mean per replication)",
              title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("channel", no_wrap=True)
    for s in ENTRY_STAGES:
        t.add_column(s, justify="right", no_wrap=True)
    for n in res.channels:
        cells = []
        for s in ENTRY_STAGES:
            r = get(n, f"entered_{s}", TRUE)
            sig = r is not None and r["ci_low"] is not None and (r["ci_low"] > 0 or r["ci_high"] < 0)
            cells.append("-" if r is None else _num(r["value"]) + ("" if sig or r["value"] == 0 else " ~"))
        t.add_row(n, *cells)
    out.append(t)
    out.append(f"~ marks an effect whose {level} CI covers 0.")
    return out


def _gain(r: dict) -> str:
    """The CRN gain column: '-' where it means nothing (no pairs, or pairs all equal)."""
    f = r["crn_variance_factor"]
    if f is None or not math.isfinite(f):
        return "-"
    return f"{f:,.1f}x"


__all__ = ["attribution_report", "censored", "kpi_summary", "study_report", "verdict", "warning_lines"]

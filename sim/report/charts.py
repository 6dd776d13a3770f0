"""The panels of a report: one chart specification and the small table behind it each.

Charts are Vega-Lite specifications built with Altair, except the flow of moves by
cause, a two-column Sankey diagram that Vega-Lite has no mark for: it is a plain Vega
specification whose node and ribbon positions are computed here (so the table behind
it says exactly what is drawn). Every builder takes aggregated tables
(:mod:`cvj.report.source`) and returns a :class:`Panel`; nothing here reads files or
renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import altair as alt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..stages import JOURNEY, STAGES
from . import fmt
from .source import COHORT_DAYS, RunData, StudyData

WIDTH = 640
HEIGHT = 280
#: the journey proper, without ``unaware`` (the market outside it) and ``lapsed``
FUNNEL = JOURNEY[1:]
#: Tableau 10, then Tableau 20's light tones: one colour per cause on every chart
PALETTE = (
    "#4c78a8",
    "#f58518",
    "#e45756",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
    "#c7c7c7",
)


def cause_colors(scenario: dict) -> dict[str, str]:
    """A fixed colour for every cause of a scenario: its channels in file order, then
    word of mouth and organic movement, so a channel has one colour on every chart."""
    names = [*scenario.get("channels", {}), "referral", "organic"]
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _color_scale(colors: dict[str, str], present) -> alt.Scale:
    shown = [n for n in colors if n in set(present)]
    return alt.Scale(domain=shown, range=[colors[n] for n in shown])


VERDICT_COLORS = {"better": "#2a9d4b", "worse": "#d1495b", "not significant": "#8d99ae", "too few replications": "#c9c9c9"}


@dataclass
class Panel:
    """One section of the page.

    Attributes
    ----------
    id : str
        File stem of the chart's PNG and data (``stages`` -> ``stages.png``, ``stages.csv``).
    title, question : str
        The heading and the question the chart answers.
    spec : dict or None
        A Vega-Lite (``grammar="vega-lite"``) or Vega specification; None for a panel
        of text only (``notes`` say why there is no chart).
    data : pyarrow.Table or None
        The table behind the chart.
    notes : list of str
        Plain sentences shown under the chart (definitions, what is missing).
    """

    id: str
    title: str
    question: str
    spec: dict | None = None
    data: pa.Table | None = None
    notes: list[str] = field(default_factory=list)
    grammar: str = "vega-lite"
    #: more tables written beside the chart's (name -> table), e.g. every budget move
    extra: dict[str, pa.Table] = field(default_factory=dict)


def _finish(chart, title: str, subtitle: str | None = None) -> dict:
    t = alt.Title(title, subtitle=subtitle or alt.Undefined, anchor="start")
    return (
        chart.properties(title=t)
        .configure_view(stroke=None)
        .configure_axis(labelFontSize=11, titleFontSize=12, gridColor="#eeeeee")
        .configure_legend(labelFontSize=11, titleFontSize=12)
        .configure_title(fontSize=15, subtitleFontSize=12, subtitleColor="#555555")
        # checking against the Vega-Lite schema costs a second per report; the tests
        # check every chart (tests/test_report.py), so a page is not checked again
        .to_dict(validate=False)
    )


def _table(rows: list[dict], schema: dict[str, pa.DataType]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=pa.schema(list(schema.items())))


# =========================================================================== a run


def scorecard(d: RunData) -> list[dict]:
    """The KPI tiles: label, value (formatted), range over replications, and a hint."""
    cur = d.currency
    rows = d.summary
    tiles = []
    subscription = (
        ("mrr_end", "MRR", "paying subscribers x price per month, at the end"),
        ("subscribers_end", "Subscribers", "paying, at the end"),
        ("cac_first_payment", "CAC per payer", f"{cur} of spend per first payment"),
    ) if rows and "mrr_end" in rows[0] else ()
    for key, label, hint in (
        *subscription,
        ("profit", "Profit", "revenue - cost of goods - spend"),
        ("revenue", "Revenue", "every offer sold"),
        ("spend", "Spend", "all channels"),
        ("conversions", "Conversions", "entry offers bought (subscribed → converted)"),
        ("cac", "CAC", f"{cur} of spend per conversion"),
        ("roas", "ROAS", "revenue per unit of spend"),
        ("payback_day", "Payback day", "first day cumulative profit >= 0"),
        ("front_end_profit", "Front end", "lead magnet + entry offer margin - all spend"),
        ("back_end_profit", "Back end", "core offer + upsells margin"),
    ):
        values = [r.get(key) for r in rows]
        known = [v for v in values if v is not None]
        mean = sum(known) / len(known) if known else None
        spread = ""
        if len(rows) > 1 and known:
            spread = f"{fmt.kpi(key, min(known), cur)} .. {fmt.kpi(key, max(known), cur)} over {len(rows)} replications"
            if len(known) < len(rows):
                spread += f" ({len(rows) - len(known)} without a value)"
        tiles.append(
            {
                "kpi": key,
                "label": label,
                "value": fmt.kpi(key, mean, cur),
                "raw": mean,
                "spread": spread,
                "hint": hint,
                "negative": mean is not None and mean < 0,
            }
        )
    return tiles


def scorecard_table(d: RunData) -> pa.Table:
    """The KPIs of every replication (the table behind the scorecard)."""
    return pa.Table.from_pylist(d.summary)


def front_back(d: RunData) -> Panel:
    cur = d.currency
    n = len(d.summary)
    mean = lambda k: sum(r[k] for r in d.summary) / n
    rows = [
        {"part": "front end", "profit": mean("front_end_profit")},
        {"part": "back end", "profit": mean("back_end_profit")},
        {"part": "total", "profit": mean("profit")},
    ]
    data = _table(rows, {"part": pa.string(), "profit": pa.float64()})
    base = alt.Chart(data).encode(
        y=alt.Y("part:N", sort=["front end", "back end", "total"], title=None),
        x=alt.X("profit:Q", title=f"profit ({cur})", axis=alt.Axis(format=fmt.AXIS_MONEY, tickCount=6)),
    )
    bars = base.mark_bar(height=28).encode(
        color=alt.condition("datum.profit < 0", alt.value("#d1495b"), alt.value("#2a9d4b")),
        tooltip=[alt.Tooltip("part:N"), alt.Tooltip("profit:Q", format=fmt.AXIS_MONEY, title=f"profit ({cur})")],
    )
    labels = base.mark_text(align="left", dx=4, fontSize=12).encode(
        x=alt.value(WIDTH + 6), text=alt.Text("profit:Q", format=fmt.AXIS_MONEY)
    )
    spec = _finish(
        alt.layer(bars, labels).properties(width=WIDTH, height=130),
        "Front end vs back end",
        "the front end may lose money on purpose; profit comes at ascension",
    )
    return Panel(
        "front_back",
        "Front end vs back end",
        "Does the entry offer pay for itself, or does the money come from the core offer and repeat purchases?",
        spec,
        data,
    )


def stages(d: RunData) -> Panel:
    t = d.stages
    data = t.filter(pc.is_in(t["stage"], value_set=pa.array(FUNNEL)))
    last = t.filter(pc.equal(t["day"], d.days)).to_pydict()
    end = dict(zip(last["stage"], last["customers"]))
    chart = (
        alt.Chart(data)
        .mark_area()
        .encode(
            x=alt.X("day:Q", title="day", scale=alt.Scale(domain=[0, d.days], nice=False)),
            y=alt.Y("customers:Q", stack="zero", title="customers", axis=alt.Axis(format=fmt.AXIS_COUNT)),
            color=alt.Color("stage:N", sort=list(FUNNEL), scale=alt.Scale(scheme="viridis"), title="stage"),
            order=alt.Order("order:Q", sort="ascending"),
            tooltip=[
                alt.Tooltip("day:Q"),
                alt.Tooltip("stage:N"),
                alt.Tooltip("customers:Q", format=fmt.AXIS_COUNT),
            ],
        )
        .transform_calculate(order=f"indexof({list(FUNNEL)!r}, datum.stage)")
        .properties(width=WIDTH, height=HEIGHT)
    )
    notes = [
        f"On day {d.days:,}: {fmt.count(end.get('unaware'))} customers never heard of the brand (unaware) and "
        f"{fmt.count(end.get('lapsed'))} have lapsed; they are left out of the chart, which would be all theirs.",
    ]
    if d.replications > 1:
        notes.append(f"Mean of {d.replications} replications.")
    return Panel(
        "stages",
        "Customers by stage over time",
        "How does the journey fill up, and where do customers pile up?",
        _finish(chart, "Customers by stage over time", "aware .. promoter, stacked"),
        data,
        notes,
    )


def funnel_rows(d: RunData) -> list[dict]:
    """Per journey stage: customers who were in it (at the start or entering during the
    run), how many moved on to the next stage, and that share."""
    moves = d.moves.to_pylist()
    into = {s: 0.0 for s in STAGES}
    on = {s: 0.0 for s in STAGES}
    for m in moves:
        if m["to_stage"] != "lapsed":
            into[m["to_stage"]] += m["customers"]
            if STAGES.index(m["to_stage"]) == STAGES.index(m["from_stage"]) + 1:
                on[m["from_stage"]] += m["customers"]
    rows = []
    for s in FUNNEL:
        entered = d.starts.get(s, 0.0) + into[s]
        nxt = STAGES[STAGES.index(s) + 1] if s != FUNNEL[-1] else None
        rate = on[s] / entered if nxt is not None and entered > 0 else None
        rows.append(
            {
                "stage": s,
                "entered": entered,
                "moved_on": on[s] if nxt is not None else None,
                "next_stage": nxt,
                "conversion": rate,
                "label": f"{fmt.count(entered)}" + (f"  →  {fmt.share(rate)} on to {nxt}" if rate is not None else ""),
            }
        )
    return rows


def funnel(d: RunData) -> Panel:
    rows = funnel_rows(d)
    data = _table(
        rows,
        {
            "stage": pa.string(),
            "entered": pa.float64(),
            "moved_on": pa.float64(),
            "next_stage": pa.string(),
            "conversion": pa.float64(),
            "label": pa.string(),
        },
    )
    base = alt.Chart(data).encode(y=alt.Y("stage:N", sort=list(FUNNEL), title=None))
    bars = base.mark_bar(color="#3b6ea8").encode(
        x=alt.X("entered:Q", title="customers in the stage during the run", axis=alt.Axis(format=fmt.AXIS_COUNT)),
        tooltip=[
            alt.Tooltip("stage:N"),
            alt.Tooltip("entered:Q", format=fmt.AXIS_COUNT, title="in the stage"),
            alt.Tooltip("moved_on:Q", format=fmt.AXIS_COUNT, title="moved on"),
            alt.Tooltip("conversion:Q", format=".1%", title="stage-to-stage conversion"),
        ],
    )
    labels = base.mark_text(align="left", dx=4, fontSize=11).encode(x=alt.X("entered:Q"), text="label:N")
    spec = _finish(
        alt.layer(bars, labels).properties(width=WIDTH - 120, height=HEIGHT),
        "Funnel with stage-to-stage conversion",
        "customers in each stage (at the start or entering during the run) and the share who moved on",
    )
    return Panel(
        "funnel",
        "Funnel",
        "Which step of the journey loses the most people?",
        spec,
        data,
        [
            "A customer who lapses and is reactivated (back to aware) counts again in the stages "
            "they pass through a second time.",
        ],
    )


def flow_layout(d: RunData, channels: list[str]) -> pa.Table:
    """Ribbons of the Sankey diagram: one per (cause, stage entered), with the y range
    of its ends on the cause node (left) and on the stage node (right), in customers."""
    totals: dict[tuple[str, str], float] = {}
    for m in d.moves.to_pylist():
        key = (m["cause"], m["to_stage"])
        totals[key] = totals.get(key, 0.0) + m["customers"]
    causes_seen = {c for c, _ in totals}
    causes = [c for c in channels if c in causes_seen] + sorted(c for c in causes_seen if c not in channels)
    targets = [s for s in STAGES if any(t == s for _, t in totals)]
    total = sum(totals.values())
    gap = 0.012 * total
    left, y = {}, 0.0
    for c in causes:
        left[c] = y
        y += sum(v for (cc, _), v in totals.items() if cc == c) + gap
    right, y = {}, 0.0
    for s in targets:
        right[s] = y
        y += sum(v for (_, ss), v in totals.items() if ss == s) + gap
    rows = []
    for c in causes:  # a node's ribbons leave and arrive in journey / cause order
        for s in targets:
            v = totals.get((c, s))
            if v:
                rows.append({"cause": c, "to_stage": s, "customers": v, "source_y0": left[c], "target_y0": None})
                left[c] += v
    for s in targets:
        for r in rows:
            if r["to_stage"] == s:
                r["target_y0"] = right[s]
                right[s] += r["customers"]
    return _table(
        rows,
        {
            "cause": pa.string(),
            "to_stage": pa.string(),
            "customers": pa.float64(),
            "source_y0": pa.float64(),
            "target_y0": pa.float64(),
        },
    )


def flow(d: RunData) -> Panel:
    data = flow_layout(d, d.channels)
    rows = data.to_pylist()
    causes = list(dict.fromkeys(r["cause"] for r in rows))
    colors = cause_colors(d.scenario)
    targets = [s for s in STAGES if any(r["to_stage"] == s for r in rows)]
    nodes = []
    for side, key, names in (("cause", "cause", causes), ("stage", "to_stage", targets)):
        for name in names:
            mine = [r for r in rows if r[key] == name]
            y0 = min(r["source_y0" if side == "cause" else "target_y0"] for r in mine)
            size = sum(r["customers"] for r in mine)
            label = name if side == "cause" else f"into {name}"
            nodes.append({"side": side, "name": name, "y0": y0, "y1": y0 + size, "customers": size, "label": label})
    height = 420
    x0, x1 = 150, WIDTH - 150  # the inner edges of the cause and stage nodes
    xm = (x0 + x1) / 2
    top = max(n["y1"] for n in nodes) if nodes else 1.0
    for side in ("cause", "stage"):  # labels of thin nodes would overlap: keep them 13 px apart
        mine = [n for n in nodes if n["side"] == side]
        y = -math.inf
        for n in mine:
            y = max(y + 13, (n["y0"] + n["y1"]) / 2 * height / top)
            n["label_y"] = y
        y = height + 13
        for n in reversed(mine):
            y = min(n["label_y"], y - 13)
            n["label_y"] = y
    spec = {
        "$schema": "https://vega.github.io/schema/vega/v6.json",
        "title": {
            "text": "Moves by cause",
            "subtitle": "who moved customers into each stage over the run (ribbon width: customers)",
            "anchor": "start",
            "fontSize": 15,
            "subtitleFontSize": 12,
            "subtitleColor": "#555555",
        },
        "width": WIDTH,
        "height": height,
        "padding": 5,
        "background": "white",  # vl-convert's PNG of a transparent background garbles translucent fills
        "data": [
            {"name": "nodes", "values": nodes},
            {
                "name": "links",
                "values": rows,
                # a ribbon is a closed band from its slice of the cause node to its
                # slice of the stage node: two cubic curves joined by straight ends
                "transform": [
                    {"type": "formula", "as": "a0", "expr": "scale('y', datum.source_y0)"},
                    {"type": "formula", "as": "a1", "expr": "scale('y', datum.source_y0 + datum.customers)"},
                    {"type": "formula", "as": "b0", "expr": "scale('y', datum.target_y0)"},
                    {"type": "formula", "as": "b1", "expr": "scale('y', datum.target_y0 + datum.customers)"},
                    {
                        "type": "formula",
                        "as": "path",
                        "expr": f"'M{x0},' + datum.a0 + 'C{xm},' + datum.a0 + ' {xm},' + datum.b0 + ' {x1},' + datum.b0"
                        f" + 'L{x1},' + datum.b1 + 'C{xm},' + datum.b1 + ' {xm},' + datum.a1 + ' {x0},' + datum.a1 + 'Z'",
                    },
                ],
            },
        ],
        "scales": [
            {"name": "y", "type": "linear", "domain": [0, top], "range": [0, height]},
            {"name": "color", "type": "ordinal", "domain": causes, "range": [colors.get(c, "#999999") for c in causes]},
        ],
        "marks": [
            {
                "type": "path",
                "from": {"data": "links"},
                "encode": {
                    "enter": {
                        "path": {"field": "path"},
                        "fill": {"scale": "color", "field": "cause"},
                        "fillOpacity": {"value": 0.45},
                        "tooltip": {
                            "signal": "{'cause': datum.cause, 'into': datum.to_stage, "
                            "'customers': format(datum.customers, ',.0f')}"
                        },
                    },
                    "hover": {"fillOpacity": {"value": 0.8}},
                    "update": {"fillOpacity": {"value": 0.45}},
                },
            },
            {
                "type": "rect",
                "from": {"data": "nodes"},
                "encode": {
                    "enter": {
                        "x": {"signal": f"datum.side === 'cause' ? {x0 - 12} : {x1}"},
                        "width": {"value": 12},
                        "y": {"scale": "y", "field": "y0"},
                        "y2": {"scale": "y", "field": "y1"},
                        "fill": {"signal": "datum.side === 'cause' ? scale('color', datum.name) : '#555555'"},
                        "tooltip": {"signal": "{'node': datum.label, 'customers': format(datum.customers, ',.0f')}"},
                    }
                },
            },
            {
                "type": "text",
                "from": {"data": "nodes"},
                "encode": {
                    "enter": {
                        "x": {"signal": f"datum.side === 'cause' ? {x0 - 18} : {x1 + 18}"},
                        "y": {"field": "label_y"},
                        "align": {"signal": "datum.side === 'cause' ? 'right' : 'left'"},
                        "baseline": {"value": "middle"},
                        "fontSize": {"value": 11},
                        "text": {"signal": "datum.label + '  ' + format(datum.customers, ',.0f')"},
                    }
                },
            },
        ],
    }
    notes = [
        "Every move has exactly one cause: the channel, word of mouth (referral) or organic "
        "movement that made it. Lapses are organic decay. Width is proportional to customers, so "
        "the late stages are thin: the table behind the chart has every number.",
    ]
    if d.replications > 1:
        notes.append(f"Mean of {d.replications} replications.")
    return Panel(
        "flow",
        "Moves by cause",
        "Which channel moves people into which stage, and how many are lost on the way?",
        spec,
        data,
        notes,
        grammar="vega",
    )


def cumulative_profit(d: RunData) -> tuple[pa.Table, int | None]:
    """Cumulative profit by day (sampled like the other series) and the payback day of
    that curve (first day it is >= 0, as the ``payback_day`` KPI)."""
    m = d.daily_money.to_pydict()
    day = np.asarray(m["day"])
    profit = np.asarray(m["revenue"]) - np.asarray(m["cost"]) - np.asarray(m["spend"])
    cum = np.cumsum(profit)
    hit = np.flatnonzero(cum >= 0)
    payback = int(day[hit[0]]) if hit.size else None
    step = max(1, math.ceil(day.size / 400))
    keep = (np.arange(day.size) % step == 0) | (np.arange(day.size) == day.size - 1)
    if payback is not None:
        keep |= day == payback
    return pa.table({"day": day[keep].astype(np.int32), "cumulative_profit": cum[keep]}), payback


def profit_curve(d: RunData) -> Panel:
    cur = d.currency
    data, payback = cumulative_profit(d)
    line = (
        alt.Chart(data)
        .mark_line(color="#3b6ea8", strokeWidth=2)
        .encode(
            x=alt.X("day:Q", title="day", scale=alt.Scale(domain=[0, d.days], nice=False)),
            y=alt.Y("cumulative_profit:Q", title=f"cumulative profit ({cur})", axis=alt.Axis(format=fmt.AXIS_MONEY)),
            tooltip=[alt.Tooltip("day:Q"), alt.Tooltip("cumulative_profit:Q", format=fmt.AXIS_MONEY, title=f"profit ({cur})")],
        )
    )
    zero = alt.Chart(data).mark_rule(color="#999999").encode(y=alt.datum(0))
    layers = [zero, line]
    if payback is not None:
        mark = alt.Chart(data).transform_filter(f"datum.day == {payback}")
        layers += [
            mark.mark_rule(color="#2a9d4b", strokeDash=[4, 3]).encode(x="day:Q"),
            mark.mark_text(align="left", dx=5, dy=-8, color="#2a9d4b", fontWeight="bold").encode(
                x="day:Q", y=alt.datum(0), text=alt.value(f"payback: day {payback:,}")
            ),
        ]
    sub = f"payback on day {payback:,}" if payback is not None else f"not paid back within {d.days:,} days"
    notes = []
    if d.replications > 1:
        notes.append(
            f"Mean of {d.replications} replications; the marked day is where the mean curve turns positive "
            "(the scorecard's payback day is the mean of each replication's)."
        )
    return Panel(
        "profit",
        "Cumulative profit and payback",
        "When does the campaign pay back what it spent?",
        _finish(alt.layer(*layers).properties(width=WIDTH, height=HEIGHT), "Cumulative profit", sub),
        data,
        notes,
    )


def spend(d: RunData) -> Panel:
    cur = d.currency
    rows = []
    for r in d.channel_periods.to_pylist():
        if r["spend"] > 0:  # per day, so that a short last period is not a dip
            n = r["period_end"] - ((r["period_end"] - 1) // d.period) * d.period
            rows.append(
                {
                    "period_end": r["period_end"],
                    "channel": r["channel"],
                    "spend": r["spend"],
                    "days": n,
                    "daily_spend": r["spend"] / n,
                }
            )
    data = _table(
        rows,
        {
            "period_end": pa.int32(),
            "channel": pa.string(),
            "spend": pa.float64(),
            "days": pa.int32(),
            "daily_spend": pa.float64(),
        },
    )
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(
                "period_end:O", title=f"day (end of each {d.period}-day period)", axis=alt.Axis(labelAngle=0, labelOverlap=True)
            ),
            y=alt.Y("daily_spend:Q", title=f"spend per day ({cur})", axis=alt.Axis(format=fmt.AXIS_MONEY)),
            color=alt.Color("channel:N", sort=d.channels, scale=_color_scale(cause_colors(d.scenario), d.channels)),
            tooltip=[
                alt.Tooltip("period_end:O", title="period ending on day"),
                alt.Tooltip("channel:N"),
                alt.Tooltip("daily_spend:Q", format=fmt.AXIS_MONEY, title=f"spend per day ({cur})"),
                alt.Tooltip("spend:Q", format=fmt.AXIS_MONEY, title=f"spend in the period ({cur})"),
            ],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    return Panel(
        "spend",
        "Spend by channel",
        "Where did the money go, and when?",
        _finish(chart, "Spend by channel", f"average spend per day over each {d.period}-day period"),
        data,
    )


def _cumulative_by(rows: list[dict], key: str, fields: tuple[str, ...]) -> list[dict]:
    running: dict[tuple, float] = {}
    out = []
    for r in rows:
        acc = {}
        for f in fields:
            running[(r[key], f)] = running.get((r[key], f), 0.0) + r[f]
            acc[f] = running[(r[key], f)]
        out.append({**r, **{f"cum_{f}": v for f, v in acc.items()}})
    return out


def cac_roas(d: RunData) -> Panel:
    """Blended CAC and ROAS to date, sampled at the end of each period."""
    cur = d.currency
    money = d.daily_money.to_pydict()
    conv = dict(zip(d.daily_conversions["day"].to_pylist(), d.daily_conversions["conversions"].to_pylist()))
    rows, cs, cr, cc = [], 0.0, 0.0, 0.0
    for i, day in enumerate(money["day"]):
        cs += money["spend"][i]
        cr += money["revenue"][i]
        cc += conv.get(day, 0.0)
        if day % d.period == 0 or day == d.days:
            rows.append(
                {
                    "day": day,
                    "spend": cs,
                    "revenue": cr,
                    "conversions": cc,
                    "cac": cs / cc if cc > 0 else None,
                    "roas": cr / cs if cs > 0 else None,
                }
            )
    data = _table(
        rows,
        {k: pa.int32() if k == "day" else pa.float64() for k in ("day", "spend", "revenue", "conversions", "cac", "roas")},
    )
    base = alt.Chart(data).encode(x=alt.X("day:Q", title="day", scale=alt.Scale(domain=[0, d.days], nice=False)))
    cac = (
        base.mark_line(color="#d1495b", point=False)
        .encode(
            y=alt.Y("cac:Q", title=f"CAC to date ({cur})", axis=alt.Axis(format=fmt.AXIS_RATIO)),
            tooltip=[alt.Tooltip("day:Q"), alt.Tooltip("cac:Q", format=fmt.AXIS_RATIO, title=f"CAC ({cur})")],
        )
        .properties(width=WIDTH // 2 - 40, height=220, title="CAC: spend per conversion")
    )
    roas = (
        base.mark_line(color="#2a9d4b")
        .encode(
            y=alt.Y("roas:Q", title="ROAS to date", axis=alt.Axis(format=fmt.AXIS_RATIO)),
            tooltip=[alt.Tooltip("day:Q"), alt.Tooltip("roas:Q", format=fmt.AXIS_RATIO, title="ROAS")],
        )
        .properties(width=WIDTH // 2 - 40, height=220, title="ROAS: revenue per unit of spend")
    )
    return Panel(
        "cac_roas",
        "CAC and ROAS to date (all channels)",
        "Is acquisition getting cheaper or dearer, and does the spend come back?",
        _finish(alt.hconcat(cac, roas), "CAC and ROAS to date, all channels", "cumulative from day 1; the last point is the KPI"),
        data,
    )


def channel_efficiency(d: RunData) -> Panel:
    """Per channel, cumulative to date: CAC of the conversions it caused (last touch)
    and ROAS of the purchases it caused."""
    cur = d.currency
    rows = _cumulative_by(d.channel_periods.to_pylist(), "channel", ("spend", "conversions", "purchase_revenue"))
    for r in rows:
        r["cac"] = r["cum_spend"] / r["cum_conversions"] if r["cum_conversions"] > 0 else None
        r["roas"] = r["cum_purchase_revenue"] / r["cum_spend"] if r["cum_spend"] > 0 else None
    keep = (
        "period_end",
        "channel",
        "spend",
        "conversions",
        "purchase_revenue",
        "cum_spend",
        "cum_conversions",
        "cum_purchase_revenue",
        "cac",
        "roas",
    )
    data = _table(
        [{k: r[k] for k in keep} for r in rows],
        {k: pa.int32() if k == "period_end" else pa.string() if k == "channel" else pa.float64() for k in keep},
    )
    base = alt.Chart(data).encode(
        x=alt.X("period_end:Q", title="day", scale=alt.Scale(domain=[0, d.days], nice=False)),
        color=alt.Color("channel:N", sort=d.channels, scale=_color_scale(cause_colors(d.scenario), d.channels)),
    )
    tip = [alt.Tooltip("period_end:Q", title="day"), alt.Tooltip("channel:N")]
    cac = (
        base.mark_line(point=True)
        .encode(
            y=alt.Y("cac:Q", title=f"CAC, last touch ({cur})", axis=alt.Axis(format=fmt.AXIS_RATIO)),
            tooltip=[*tip, alt.Tooltip("cac:Q", format=fmt.AXIS_RATIO, title=f"CAC ({cur})")],
        )
        .transform_filter("isValid(datum.cac)")
        .properties(width=WIDTH // 2 - 60, height=220, title="CAC of the conversions it caused")
    )
    roas = (
        base.mark_line(point=True)
        .encode(
            y=alt.Y("roas:Q", title="ROAS of purchases caused", axis=alt.Axis(format=fmt.AXIS_RATIO)),
            tooltip=[*tip, alt.Tooltip("roas:Q", format=fmt.AXIS_RATIO, title="ROAS")],
        )
        .transform_filter("isValid(datum.roas)")
        .properties(width=WIDTH // 2 - 60, height=220, title="ROAS of the purchases it caused")
    )
    spent = {r["channel"] for r in rows if r["cum_spend"] > 0}
    never = sorted(c for c in spent if not any(r["channel"] == c and r["cum_conversions"] > 0 for r in rows))
    notes = [
        "Attribution is last touch per move: a conversion (subscribed → converted) is credited to the one "
        "cause that made that move, and a channel's purchase revenue is the entry offers and first core offers "
        "bought on the moves it caused (repeat purchases and upsells record no cause, so they are in the "
        "all-channel ROAS only).",
    ]
    if never:
        notes.append(
            f"No conversion was caused by {', '.join(never)}: their pushes act earlier in the journey, so their "
            "last-touch CAC is undefined (not drawn) although they feed the conversions of the others."
        )
    return Panel(
        "channels",
        "CAC and ROAS by channel",
        "Which channel closes the sale cheaply, and which only feeds the top of the journey?",
        _finish(alt.hconcat(cac, roas), "CAC and ROAS by channel, to date", "last-touch attribution of each move"),
        data,
        notes,
    )


def retention_rows(d: RunData) -> list[dict]:
    """Cohorts by conversion period (``COHORT_DAYS`` days) x age in periods: customers
    observed for that long, and the share of them who had not lapsed."""
    rows = d.cohorts.to_pylist()
    D = d.days
    ages = range(1, D // COHORT_DAYS + 1)  # age 0 is 100% by definition
    out = []
    cohorts = sorted({r["cohort"] for r in rows})
    for c in cohorts:
        mine = [r for r in rows if r["cohort"] == c]
        first, last = c * COHORT_DAYS + 1, min((c + 1) * COHORT_DAYS, D)
        n = sum(r["customers"] for r in mine)
        for k in ages:
            span = k * COHORT_DAYS
            if last + span > D:  # not every buyer of the cohort was observed that long
                break
            lost = sum(r["customers"] for r in mine if r["lapse_after"] is not None and r["lapse_after"] <= span)
            out.append(
                {
                    "cohort": f"days {first}-{last}",
                    "cohort_index": c,
                    "age_days": span,
                    "customers": n,
                    "retained": n - lost,
                    "retention": (n - lost) / n,
                }
            )
    return out


def retention(d: RunData) -> Panel:
    rows = retention_rows(d)
    data = _table(
        rows,
        {
            "cohort": pa.string(),
            "cohort_index": pa.int32(),
            "age_days": pa.int32(),
            "customers": pa.float64(),
            "retained": pa.float64(),
            "retention": pa.float64(),
        },
    )
    order = [name for _, name in sorted({(r["cohort_index"], r["cohort"]) for r in rows})]
    base = alt.Chart(data).encode(
        x=alt.X("age_days:O", title="days since the first order (entry offer)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("cohort:N", sort=order, title="first order in"),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("retention:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=alt.Legend(format=".0%")),
        tooltip=[
            alt.Tooltip("cohort:N", title="first order in"),
            alt.Tooltip("age_days:O", title="days later"),
            alt.Tooltip("customers:Q", format=fmt.AXIS_COUNT, title="buyers observed"),
            alt.Tooltip("retention:Q", format=".1%", title="not lapsed"),
        ],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("retention:Q", format=".0%"),
        color=alt.condition("datum.retention > 0.6", alt.value("white"), alt.value("#222222")),
    )
    notes = [
        "Retention here is the share of a cohort's buyers who have not lapsed (left the journey) that many days "
        "after their first order, whether or not they ordered again (the time to the second order is below).",
        "A cell appears only when every buyer it counts was observed that long (the triangle is the horizon).",
    ]
    if any(m["from_stage"] == "lapsed" and m["customers"] > 0 for m in d.moves.to_pylist()):
        notes.append(
            "Lapsed customers came back in this run (reactivation or a win-back campaign); the customers table keeps "
            "only the last lapse, so a buyer who lapsed, came back and lapsed again counts as lost from the last lapse."
        )
    return Panel(
        "retention",
        "Cohort retention",
        "Do buyers stay in the journey after their first order, and do later cohorts stay longer?",
        _finish(
            alt.layer(heat, text).properties(width=WIDTH, height=max(120, 22 * len(order))),
            "Cohort retention",
            f"buyers by {COHORT_DAYS}-day cohort of first order",
        ),
        data,
        notes,
    )


def second_order_rows(d: RunData) -> tuple[list[dict], float, float, str]:
    """Second orders by days since the first: (gap, orders, capped) rows, how many
    ordered a second time, out of how many first-time buyers, and where the numbers
    come from. The orders table (every order's gap to the customer's previous one) is
    preferred; a customers table without it gives the days from ascension back to
    conversion."""
    if d.order_gaps is not None:
        rows = [{"gap": r["gap"], "orders": r["orders"], "capped": r["capped"]} for r in d.order_gaps.to_pylist()]
        return rows, sum(r["orders"] for r in rows), d.first_orders or 0.0, "orders"
    raw = d.second_orders.to_pylist()
    rows = [{"gap": r["gap"], "orders": r["customers"], "capped": False} for r in raw if r["gap"] is not None]
    return rows, sum(r["orders"] for r in rows), sum(r["customers"] for r in raw), "customers"


def second_order(d: RunData) -> Panel:
    rows, again, buyers, origin = second_order_rows(d)
    weeks: dict[int, float] = {}
    for r in rows:
        weeks[r["gap"] // 7] = weeks.get(r["gap"] // 7, 0.0) + r["orders"]
    data = _table(
        [{"week": w, "from_day": 7 * w, "to_day": 7 * w + 7, "orders": n} for w, n in sorted(weeks.items())],
        {"week": pa.int32(), "from_day": pa.int32(), "to_day": pa.int32(), "orders": pa.float64()},
    )
    median, acc = None, 0.0
    for r in sorted(rows, key=lambda r: r["gap"]):
        acc += r["orders"]
        if median is None and acc >= again / 2:
            median = r["gap"]
    chart = (
        alt.Chart(data)
        .mark_bar(color="#3b6ea8")
        .encode(
            x=alt.X(
                "from_day:Q",
                bin=alt.Bin(binned=True, step=7),
                scale=alt.Scale(zero=True),
                title="days from the first order to the second",
            ),
            x2="to_day:Q",
            # significant digits, not whole numbers: with few orders a tick at 0.5 must not read "1"
            y=alt.Y("orders:Q", title="second orders", axis=alt.Axis(format=fmt.AXIS_RATIO)),
            tooltip=[
                alt.Tooltip("from_day:Q", title="from day"),
                alt.Tooltip("to_day:Q", title="to (not incl.)"),
                alt.Tooltip("orders:Q", format=fmt.AXIS_COUNT, title="second orders"),
            ],
        )
        .properties(width=WIDTH, height=HEIGHT - 60)
    )
    share = fmt.share(again / buyers if buyers else None)
    sub = (
        f"{fmt.count(again)} second orders from {fmt.count(buyers)} first-time buyers ({share}) within the run; "
        f"median {median if median is not None else '-'} days"
    )
    if origin == "orders":
        notes = [
            "From the run's orders table: the days between a customer's first and second order. The first order is "
            "normally the entry-point offer and the second the core offer, bought on ascension; a customer who "
            "lapsed and converted again counts that entry offer as a later order.",
        ]
        capped = [r for r in rows if r["capped"]]
        if capped:
            cap = capped[0]["gap"]
            notes.append(f"{fmt.count(sum(r['orders'] for r in capped))} gaps of {cap} days or more are drawn at {cap}.")
    else:
        notes = [
            "This run has no orders table: the second order is taken as the core offer bought on ascension "
            "(excited → ascended) after the entry-point offer (subscribed → converted), from the customers table; "
            "nobody skips a stage.",
        ]
    notes.append("Buyers who first ordered late had little time to order again, so the share is a floor.")
    return Panel(
        "second_order",
        "Time to the second order",
        "How long after the first order do buyers come back?",
        _finish(chart, "Time to the second order", sub),
        data,
        notes,
    )


def no_customers_table(second_orders_shown: bool) -> Panel:
    what = "Cohort retention" if second_orders_shown else "Cohort retention and time to the second order"
    return Panel(
        "customers",
        what,
        "Do buyers stay in the journey" + ("?" if second_orders_shown else ", and how soon do they order again?"),
        notes=[
            f"This run has no customers table, which {what.lower()} needs (the day each customer first ordered, "
            "and the day of the lapse). Run again with --customers-table to see it."
        ],
    )


def subscriptions(d: RunData) -> Panel:
    """Paying subscribers and customers in a free trial by day, and the MRR."""
    cur = d.currency
    t = d.subscriptions.to_pydict()
    rows = [
        {"day": day, "who": who, "customers": n, "mrr": mrr}
        for day, paying, trial, mrr in zip(t["day"], t["subscribers"], t["in_trial"], t["mrr"])
        for who, n in (("paying", paying), ("in a free trial", trial))
    ]
    data = _table(rows, {"day": pa.int32(), "who": pa.string(), "customers": pa.float64(), "mrr": pa.float64()})
    area = (
        alt.Chart(data)
        .mark_area(opacity=0.85)
        .encode(
            x=alt.X("day:Q", title="day", scale=alt.Scale(domain=[0, d.days], nice=False)),
            y=alt.Y("customers:Q", title="subscribers", stack=True, axis=alt.Axis(format=",.0f")),
            color=alt.Color("who:N", title=None, scale=alt.Scale(domain=["paying", "in a free trial"],
                                                                  range=["#3b6ea8", "#aec7e8"])),
            order=alt.Order("who:N", sort="descending"),
            tooltip=[alt.Tooltip("day:Q"), alt.Tooltip("who:N"), alt.Tooltip("customers:Q", format=",.0f"),
                     alt.Tooltip("mrr:Q", format=fmt.AXIS_MONEY, title=f"MRR ({cur})")],
        )
    )
    last = t["mrr"][-1] if t["mrr"] else 0.0
    sub = f"MRR at the end {fmt.kpi('mrr_end', last, cur)}, ARR {fmt.kpi('arr_end', 12 * last, cur)}"
    notes = ["MRR: paying subscribers x the price per month (a yearly plan counts a twelfth of its price)."]
    if d.replications > 1:
        notes.append(f"Mean of {d.replications} replications.")
    return Panel(
        "subscriptions",
        "Subscribers and MRR",
        "How many pay, how many are trying, and what that brings in each month?",
        _finish(area.properties(width=WIDTH, height=HEIGHT), "Subscribers", sub),
        data,
        notes,
    )


def run_panels(d: RunData) -> list[Panel]:
    """Every panel of a run report, in page order."""
    panels = [front_back(d), stages(d), funnel(d), flow(d), profit_curve(d), spend(d), cac_roas(d), channel_efficiency(d)]
    if d.subscriptions is not None:
        panels.insert(5, subscriptions(d))
    if d.cohorts is not None:
        panels.append(retention(d))
    has_orders = d.order_gaps is not None or d.second_orders is not None
    if has_orders:
        panels.append(second_order(d))
    if d.cohorts is None:
        panels.append(no_customers_table(has_orders))
    return panels


# =========================================================================== a study


def verdict_word(text: str) -> str:
    """``better (p < 0.001)`` -> ``better``; the category the forest plot colours. A
    censored KPI's verdict (``pays back in 6 of 10 ...; where both: better ...``) is
    read after its count; pairs identical in every replication are not significant."""
    tail = text.rsplit("where both: ", 1)[-1]
    for word in ("better", "worse", "not significant"):
        if tail.startswith(word):
            return word
    if tail.startswith("identical"):
        return "not significant"
    return "too few replications"


def ranking_rows(s: StudyData) -> list[dict]:
    from ..console import verdict
    from ..study.stats import ranking

    # ranking reads only these three fields; the whole Study (cvj.study.spec) would
    # validate every variant's scenario and import Mesa, a second of a report's time
    st = SimpleNamespace(
        rank_by=s.study["rank_by"],
        variant_names=tuple(s.study["variants"]),
        confidence=float(s.study["confidence"]),
        baseline=s.study["baseline"],
    )
    runs = {v: [] for v in st.variant_names}
    for r in s.runs.to_pylist():
        runs[r["variant"]].append(r)
    by = {(c["variant"], c["kpi"]): c for c in s.contrasts.to_pylist()}
    out = []
    for r in ranking(st, runs):
        c = by.get((r["variant"], st.rank_by))
        text = "baseline" if r["variant"] == st.baseline else (verdict(c, st.confidence) if c else "-")
        hw = r["halfwidth"]
        out.append(
            {
                "rank": r["rank"],
                "variant": r["variant"],
                "kpi": st.rank_by,
                "mean": r["mean"],
                "halfwidth": hw,
                "ci_low": None if hw is None or r["mean"] is None else r["mean"] - hw,
                "ci_high": None if hw is None or r["mean"] is None else r["mean"] + hw,
                "difference": None if c is None else c["mean_difference"],
                "difference_halfwidth": None if c is None else c["halfwidth"],
                "verdict": text,
                "category": "baseline" if text == "baseline" else verdict_word(text),
            }
        )
    return out


def study_ranking(s: StudyData) -> Panel:
    cur = s.currency
    k = s.study["rank_by"]
    rows = ranking_rows(s)
    data = _table(
        rows,
        {
            "rank": pa.int32(),
            "variant": pa.string(),
            "kpi": pa.string(),
            "mean": pa.float64(),
            "halfwidth": pa.float64(),
            "ci_low": pa.float64(),
            "ci_high": pa.float64(),
            "difference": pa.float64(),
            "difference_halfwidth": pa.float64(),
            "verdict": pa.string(),
            "category": pa.string(),
        },
    )
    order = [r["variant"] for r in rows]
    present = {r["category"] for r in rows}
    colors = {k: v for k, v in {**VERDICT_COLORS, "baseline": "#222222"}.items() if k in present}
    base = alt.Chart(data).encode(y=alt.Y("variant:N", sort=order, title=None))
    xs = alt.X("ci_low:Q", title=fmt.kpi_title(k, cur), axis=alt.Axis(format=fmt.kpi_axis(k)), scale=alt.Scale(zero=False))
    rule = base.mark_rule(strokeWidth=2).encode(
        x=xs,
        x2="ci_high:Q",
        color=alt.Color("category:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())), title="vs baseline"),
    )
    point = base.mark_point(filled=True, size=80).encode(
        x=alt.X("mean:Q"),
        color=alt.Color("category:N", scale=alt.Scale(domain=list(colors), range=list(colors.values()))),
        tooltip=[
            alt.Tooltip("rank:Q"),
            alt.Tooltip("variant:N"),
            alt.Tooltip("mean:Q", format=fmt.kpi_axis(k), title=f"mean {k}"),
            alt.Tooltip("halfwidth:Q", format=fmt.kpi_axis(k), title="95% CI +/-"),
            alt.Tooltip("verdict:N", title="vs baseline"),
        ],
    )
    level = f"{s.study.get('confidence', 0.95):.0%}"
    return Panel(
        "ranking",
        f"Variants ranked by {k}",
        f"Which variant wins on {k}, and by how much is it surer than noise?",
        _finish(
            alt.layer(rule, point).properties(width=WIDTH - 100, height=max(120, 34 * len(rows))),
            f"Variants ranked by {k}",
            f"mean over replications with its {level} confidence interval",
        ),
        data,
    )


def forest(s: StudyData) -> Panel:
    from ..console import verdict

    conf = float(s.study.get("confidence", 0.95))
    cur = s.currency
    rows = []
    for c in s.contrasts.to_pylist():
        text = verdict(c, conf)
        rows.append(
            {
                "variant": c["variant"],
                "kpi": c["kpi"],
                "kpi_title": fmt.kpi_title(c["kpi"], cur),
                "difference": c["mean_difference"],
                "ci_low": c["ci_low"],
                "ci_high": c["ci_high"],
                "p_value": c["p_value"],
                "verdict": text,
                "category": verdict_word(text),
            }
        )
    data = _table(
        rows,
        {
            "variant": pa.string(),
            "kpi": pa.string(),
            "kpi_title": pa.string(),
            "difference": pa.float64(),
            "ci_low": pa.float64(),
            "ci_high": pa.float64(),
            "p_value": pa.float64(),
            "verdict": pa.string(),
            "category": pa.string(),
        },
    )
    variants = [v for v in s.study["variants"] if v != s.study["baseline"]]
    kpis = list(dict.fromkeys(r["kpi_title"] for r in rows))
    present = {r["category"] for r in rows}
    colors = {k: v for k, v in VERDICT_COLORS.items() if k in present}
    y = alt.Y("variant:N", sort=variants, title=None)
    base = alt.Chart().encode(y=y)
    rule = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_low:Q", title="difference vs baseline", axis=alt.Axis(format="~s")),
        x2="ci_high:Q",
        color=alt.Color("category:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())), title="verdict"),
    )
    point = base.mark_point(filled=True, size=60).encode(
        x="difference:Q",
        color=alt.Color("category:N", scale=alt.Scale(domain=list(colors), range=list(colors.values()))),
        tooltip=[
            alt.Tooltip("kpi:N"),
            alt.Tooltip("variant:N"),
            alt.Tooltip("difference:Q", format=",.4~r"),
            alt.Tooltip("ci_low:Q", format=",.4~r", title="CI low"),
            alt.Tooltip("ci_high:Q", format=",.4~r", title="CI high"),
            alt.Tooltip("verdict:N"),
        ],
    )
    zero = alt.Chart().mark_rule(color="#999999", strokeDash=[3, 3]).encode(x=alt.datum(0))
    chart = (
        alt.layer(zero, rule, point, data=data)
        .properties(width=WIDTH - 200, height=max(60, 22 * len(variants)))
        .facet(
            row=alt.Row(
                "kpi_title:N",
                sort=kpis,
                title=None,
                header=alt.Header(labelAngle=0, labelAlign="left", labelFontSize=12, labelFontWeight="bold"),
            )
        )
        .resolve_scale(x="independent")
        .transform_filter("isValid(datum.difference)")  # a KPI without values would be an empty, broken row
    )
    base_name = s.study["baseline"]
    level = f"{conf:.0%}"
    missing = [f"{r['variant']} on {r['kpi']}" for r in rows if r["difference"] is None]
    return Panel(
        "forest",
        f"Every KPI vs {base_name}",
        "On which KPIs does each variant really differ from the baseline, and in which direction?",
        _finish(chart, f"Paired differences vs {base_name}", f"variant minus baseline, {level} CI; colour: the verdict"),
        data,
        [
            "Green is better and red worse for the business (for spend, cost, CAC and payback day less is better); "
            f"grey: the {level} interval does not exclude no difference.",
            *(
                [
                    f"No difference to show for {', '.join(missing)}: the KPI has no value in those runs "
                    "(e.g. payback not reached within the horizon)."
                ]
                if missing
                else []
            ),
        ],
    )


def distribution(s: StudyData) -> Panel:
    k = s.study["rank_by"]
    cur = s.currency
    data = s.runs.select(["variant", "replication", k])
    order = [r["variant"] for r in ranking_rows(s)]
    y = alt.Y("variant:N", sort=order, title=None)
    box = (
        alt.Chart(data)
        .mark_boxplot(extent="min-max", size=18, color="#9db4d3")
        .encode(
            y=y,
            x=alt.X(f"{k}:Q", title=fmt.kpi_title(k, cur), axis=alt.Axis(format=fmt.kpi_axis(k)), scale=alt.Scale(zero=False)),
        )
    )
    dots = (
        alt.Chart(data)
        .mark_tick(color="#1d3557", thickness=1.5, size=16)
        .encode(
            y=y,
            x=f"{k}:Q",
            tooltip=[alt.Tooltip("variant:N"), alt.Tooltip("replication:Q"), alt.Tooltip(f"{k}:Q", format=fmt.kpi_axis(k))],
        )
    )
    return Panel(
        "distribution",
        f"Distribution of {k} per variant",
        f"How much does {k} vary from one replication to the next, and do the variants overlap?",
        _finish(
            alt.layer(box, dots).properties(width=WIDTH - 100, height=max(120, 34 * len(order))),
            f"{k.capitalize()} of every replication",
            "box: min, quartiles, max; ticks: replications",
        ),
        data,
        [
            "With common random numbers, replication r of every variant faced the same customers and luck: "
            "compare variants through the paired differences above, not through these overlaps."
        ],
    )


def budgets(s: StudyData) -> Panel:
    cur = s.currency
    if not s.marketer_variants:
        return Panel(
            "budgets",
            "Marketer's budget moves",
            "How did the marketer agent move the budget over time?",
            extra={"budget_moves": s.moves},
            notes=['No variant of this study has a marketer that moves budget (every policy is "fixed").'],
        )
    data = s.budgets
    days = max(int(v["scenario"]["market"]["days"]) for v in s.study["variants"].values())
    base_name = s.study["baseline"]
    shown = [*s.marketer_variants, base_name]
    scale = _color_scale(cause_colors(s.baseline_scenario), pc.unique(data["channel"]).to_pylist())
    band = (
        alt.Chart(data)
        .transform_filter(alt.FieldOneOfPredicate(field="variant", oneOf=s.marketer_variants))
        .mark_area(opacity=0.18)
        .encode(
            x=alt.X("day:Q"),
            y=alt.Y("budget_min:Q"),
            y2="budget_max:Q",
            color=alt.Color("channel:N", scale=scale),
        )
    )
    lines = (
        alt.Chart(data)
        .mark_line(strokeWidth=2)
        .encode(
            x=alt.X("day:Q", title="day", scale=alt.Scale(domain=[0, days], nice=False)),
            y=alt.Y("budget:Q", title=f"daily budget ({cur})", axis=alt.Axis(format=fmt.AXIS_MONEY)),
            color=alt.Color("channel:N", scale=scale, title="channel"),
            strokeDash=alt.StrokeDash("variant:N", sort=shown, title="variant"),
            tooltip=[
                alt.Tooltip("variant:N"),
                alt.Tooltip("channel:N"),
                alt.Tooltip("day:Q"),
                alt.Tooltip("budget:Q", format=",.2f", title=f"mean budget ({cur})"),
                alt.Tooltip("budget_min:Q", format=",.2f", title="lowest replication"),
                alt.Tooltip("budget_max:Q", format=",.2f", title="highest replication"),
            ],
        )
    )
    n_moves = s.moves.num_rows
    reps = s.study["replications"]
    return Panel(
        "budgets",
        "Marketer's budget moves",
        "How did the marketer agent move the budget between channels over time, against the baseline's plan?",
        _finish(
            alt.layer(band, lines).properties(width=WIDTH - 60, height=HEIGHT),
            "Daily budget of the managed channels",
            f"{', '.join(s.marketer_variants)} (mean over {reps} replications, band: lowest to highest) vs {base_name}'s plan",
        ),
        data,
        [
            f"{n_moves:,} budget moves in all replications; budget_moves.csv lists each with its day, channels, "
            "amount and the marketer's reason."
        ],
        extra={"budget_moves": s.moves},
    )


def crn_gain(s: StudyData) -> Panel:
    rows = []
    skipped = []
    for c in s.contrasts.to_pylist():
        f = c["crn_variance_factor"]
        if f is None or not math.isfinite(f) or f <= 0:
            skipped.append(f"{c['variant']} on {c['kpi']}")
            continue
        rows.append({"variant": c["variant"], "kpi": c["kpi"], "crn_gain": f, "label": f"{f:,.1f}x"})
    data = _table(rows, {"variant": pa.string(), "kpi": pa.string(), "crn_gain": pa.float64(), "label": pa.string()})
    kpis = list(dict.fromkeys(r["kpi"] for r in rows))
    variants = [v for v in s.study["variants"] if v != s.study["baseline"]]
    base = alt.Chart(data).encode(
        y=alt.Y("kpi:N", sort=kpis, title=None),
        yOffset=alt.YOffset("variant:N", sort=variants),
    )
    # a lollipop from 1 (no gain) on a log axis: bars would need a zero that a log scale has not
    values = [r["crn_gain"] for r in rows] or [1.0]
    domain = [min(0.5, min(values) / 1.3), max(2.0, max(values) * 1.3)]
    x = alt.X(
        "crn_gain:Q", scale=alt.Scale(type="log", domain=domain), title="variance of independent / paired differences (log)"
    )
    color = alt.Color("variant:N", sort=variants, scale=alt.Scale(scheme="tableau10"))
    tip = [alt.Tooltip("kpi:N"), alt.Tooltip("variant:N"), alt.Tooltip("label:N", title="CRN gain")]
    stems = base.mark_rule(strokeWidth=2).encode(x=x, x2=alt.X2(datum=1), color=color, tooltip=tip)
    heads = base.mark_point(filled=True, size=50).encode(x="crn_gain:Q", color=color, tooltip=tip)
    one = alt.Chart(data).mark_rule(color="#333333", strokeDash=[3, 3]).encode(x=alt.datum(1))
    notes = [
        "The factor by which pairing replication r of a variant with replication r of the baseline (common random "
        "numbers) shrinks the variance of a difference, against pairing runs that share no random numbers: "
        "independent runs would need that many times more replications for the same confidence interval. "
        "Below 1 (left of the dashed line) pairing hurt."
    ]
    if skipped:
        notes.append(f"No finite factor for {', '.join(skipped)}.")
    if not s.study.get("common_random_numbers", True):
        notes.append("This study did not use common random numbers: the factors compare two ways of pairing independent runs.")
    return Panel(
        "crn_gain",
        "Gain from common random numbers",
        "How many replications did common random numbers save?",
        _finish(
            alt.layer(one, stems, heads).properties(width=WIDTH - 120, height=max(120, 12 * len(rows) + 20 * len(kpis))),
            "CRN gain per KPI",
            "variance of differences without / with common random numbers",
        ),
        data,
        notes,
    )


def study_panels(s: StudyData) -> list[Panel]:
    """Every panel of a study report, in page order."""
    return [study_ranking(s), forest(s), distribution(s), budgets(s), crn_gain(s)]


__all__ = ["FUNNEL", "Panel", "flow_layout", "funnel_rows", "retention_rows", "run_panels", "scorecard", "study_panels"]

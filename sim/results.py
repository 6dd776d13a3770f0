"""From a run's daily aggregates to Arrow tables and KPIs (what dashboards read).

Names, not integer codes, go in every column a person reads (dictionary-encoded).
Money is computed here from integer counts in float64, so the identities
``revenue = units * price`` and ``profit = revenue - cost - spend`` hold exactly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .engine import Engine, History
from .model import PRICING_CODE, Compiled
from .registry import RUN_TABLES, SUMMARY_KEYS, kpi, names
from .stages import LAPSED, OFFER_ENTRY, OFFER_LEAD_MAGNET, PROMOTER, STAGES, SUBSCRIBED

TABLES = names(RUN_TABLES)
KIND_CHANNEL, KIND_OFFER = "channel", "offer"


def _dict(indices, names) -> pa.DictionaryArray:
    names = list(names)
    idx_type = pa.int8() if len(names) < 128 else pa.int16()
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(indices), type=idx_type), pa.array(names, pa.string()))


def money(cm: Compiled, h: History) -> dict[str, np.ndarray]:
    """Daily money by channel and offer: spend[D+1, C]; revenue, cost, units[D+1, O]."""
    units = h.offer_units.sum(axis=1).astype(np.float64)  # [D+1, O]
    return {
        "spend": h.channel_spend,
        "offer_units": units,
        "revenue": units * cm.price[None, :],
        "cost": units * cm.unit_cost[None, :],
        "revenue_by_segment": (h.offer_units * cm.price[None, None, :]).sum(axis=(0, 2)),
    }


def summary(cm: Compiled, h: History, replication: int) -> dict:
    """The KPIs of one run, as one flat row."""
    m = money(cm, h)
    spend_d = m["spend"].sum(axis=1)
    revenue_d = m["revenue"].sum(axis=1)
    cost_d = m["cost"].sum(axis=1)
    profit_d = revenue_d - cost_d - spend_d
    spend, revenue, cost = float(spend_d.sum()), float(revenue_d.sum()), float(cost_d.sum())
    cum = np.cumsum(profit_d[1:])
    hit = np.flatnonzero(cum >= 0)
    conversions_g = h.flows[:, :, SUBSCRIBED, :-1].sum(axis=(0, 2))  # [G]
    conversions = int(conversions_g.sum())
    front = [OFFER_LEAD_MAGNET, OFFER_ENTRY]
    back = [o for o in range(cm.n_offers) if o not in front]
    front_margin = float(m["revenue"][:, front].sum() - m["cost"][:, front].sum())
    back_margin = float(m["revenue"][:, back].sum() - m["cost"][:, back].sum())
    row = {
        "scenario": cm.scenario.name,
        "seed": cm.seed,
        "replication": replication,
        "customers": cm.customers,
        "days": cm.days,
        "spend": spend,
        "revenue": revenue,
        "cost": cost,
        "profit": revenue - cost - spend,
        "conversions": conversions,
        "cac": spend / conversions if conversions else None,
        "roas": revenue / spend if spend > 0 else None,
        "payback_day": int(hit[0]) + 1 if hit.size else None,
        "front_end_profit": front_margin - spend,
        "back_end_profit": back_margin,
    }
    for g, name in enumerate(cm.segment_names):
        row[f"ltv_{name}"] = float(m["revenue_by_segment"][g] / conversions_g[g]) if conversions_g[g] else None
    end = h.stages[-1].sum(axis=0)
    for s, name in enumerate(STAGES):
        row[f"end_{name}"] = int(end[s])
    return row


def summary_table(rows: list[dict]) -> pa.Table:
    """Rows of :func:`summary` as a table, with the column types of the registry."""
    cols = {}
    for key in rows[0]:
        typ = SUMMARY_KEYS.get(key) or kpi(key).type
        cols[key] = pa.array([r[key] for r in rows], type=typ)
    return pa.table(cols)


def daily_stages(cm: Compiled, h: History, replication: int) -> pa.Table:
    D1, G, S = h.stages.shape
    day, seg, stage = np.meshgrid(np.arange(D1), np.arange(G), np.arange(S), indexing="ij")
    return pa.table(
        {
            "replication": pa.array(np.full(D1 * G * S, replication, np.int32)),
            "day": pa.array(day.ravel().astype(np.int32)),
            "segment": _dict(seg.ravel(), cm.segment_names),
            "stage": _dict(stage.ravel(), STAGES),
            "customers": pa.array(h.stages.ravel()),
        }
    )


def transitions(cm: Compiled, h: History, replication: int) -> pa.Table:
    """Moves between stages by day, segment and cause (rows with no customers left out)."""
    f = h.flows  # [D+1, G, 10, K+1]
    K = cm.n_causes
    d, g, s, k = np.nonzero(f)
    lapse = k == K
    to = np.where(lapse, LAPSED, np.where(s == LAPSED, 1, s + 1))
    cause = np.where(lapse, 0, k)  # a lapse is organic decay
    return pa.table(
        {
            "replication": pa.array(np.full(d.size, replication, np.int32)),
            "day": pa.array(d.astype(np.int32)),
            "segment": _dict(g, cm.segment_names),
            "from_stage": _dict(s, STAGES),
            "to_stage": _dict(to, STAGES),
            "cause": _dict(cause, cm.cause_names),
            "customers": pa.array(f[d, g, s, k]),
        }
    )


def finance(cm: Compiled, h: History, replication: int) -> pa.Table:
    """Money by day and item: one row per channel (spend) and per offer (revenue, cost)."""
    m = money(cm, h)
    D1 = h.stages.shape[0]
    C, O = cm.n_channels, cm.n_offers
    days = np.arange(1, D1)
    n = days.size
    item = np.concatenate([np.tile(np.arange(C), n), C + np.tile(np.arange(O), n)])
    day = np.concatenate([np.repeat(days, C), np.repeat(days, O)])
    zeros_c, zeros_o = np.zeros(n * C), np.zeros(n * O)
    return pa.table(
        {
            "replication": pa.array(np.full(day.size, replication, np.int32)),
            "day": pa.array(day.astype(np.int32)),
            "item": _dict(item, [*cm.channel_names, *cm.offer_names]),
            "kind": _dict(np.r_[np.zeros(n * C, np.int8), np.ones(n * O, np.int8)], [KIND_CHANNEL, KIND_OFFER]),
            # no budget for offers, nor for a commission programme (it pays per result)
            "budget": pa.array(
                np.r_[h.channel_budget[1:].ravel(), np.zeros(n * O)],
                mask=np.r_[np.tile(cm.pricing == PRICING_CODE["commission"], n), np.ones(n * O, bool)],
            ),
            "spend": pa.array(np.r_[m["spend"][1:].ravel(), zeros_o]),
            "revenue": pa.array(np.r_[zeros_c, m["revenue"][1:].ravel()]),
            "cost": pa.array(np.r_[zeros_c, m["cost"][1:].ravel()]),
            "units": pa.array(np.r_[h.channel_units[1:].ravel(), m["offer_units"][1:].ravel()]),
        }
    )


def customers(cm: Compiled, e: Engine, replication: int) -> pa.Table:
    """One row per customer: segment, final stage, the day each stage was reached, who
    acquired and who converted the customer, and what the customer paid."""
    N = cm.customers
    cols = {
        "replication": pa.array(np.full(N, replication, np.int32)),
        "customer_id": pa.array(np.arange(N, dtype=np.int64)),
        "segment": _dict(e.segment, cm.segment_names),
        "final_stage": _dict(e.stage, STAGES),
    }
    never = np.uint16(0xFFFF)
    names = [f"day_{s}" for s in STAGES[1 : PROMOTER + 1]] + ["day_lapsed"]
    for j, name in enumerate(names):
        col = e.reached[:, j]
        cols[name] = pa.array(col.astype(np.int32), mask=(col == never))
    causes = list(cm.cause_names)
    for name, arr in (("acquired_by", e.acquired), ("converted_by", e.converted)):
        idx = np.where(arr == 255, 0, arr).astype(np.int16)
        cols[name] = pa.DictionaryArray.from_arrays(
            pa.array(idx, type=pa.int16(), mask=(arr == 255)), pa.array(causes, pa.string())
        )
    cols["revenue"] = pa.array(e.revenue.astype(np.float64))
    return pa.table(cols)


__all__ = ["TABLES", "customers", "daily_stages", "finance", "money", "summary", "summary_table", "transitions"]

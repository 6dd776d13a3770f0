"""From a run's daily aggregates to Arrow tables and KPIs (what dashboards read).

Names, not integer codes, go in every column a person reads (dictionary-encoded).
Money is computed here from integer counts in float64, so the identities
``revenue = units * price`` and ``profit = revenue - cost - spend`` hold exactly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .columns import names_column as _dict
from .engine import FUNNEL, MAX_GAP, ORDER_CLASSES, Engine, History
from .model import PRICING_CODE, Compiled
from .registry import RUN_TABLES, SUMMARY_KEYS, kpi, names
from .stages import (
    ADL_PHASE,
    AIDA_PHASE,
    EXCITED,
    LAPSED,
    OFFER_CORE,
    OFFER_ENTRY,
    OFFER_LEAD_MAGNET,
    PROMOTER,
    REPEAT_STAGES,
    STAGES,
    SUBSCRIBED,
)

TABLES = names(RUN_TABLES)
KIND_CHANNEL, KIND_OFFER = "channel", "offer"


def money(cm: Compiled, h: History) -> dict[str, np.ndarray]:
    """Daily money by channel and offer: spend[D+1, C]; revenue, cost, units[D+1, O]."""
    units = h.offer_units.sum(axis=1).astype(np.float64)  # [D+1, O]
    return {
        "spend": h.channel_spend,
        "offer_units": units,
        "revenue": units * cm.price[None, :],
        "cost": units * cm.unit_cost[None, :],
        "revenue_by_segment": _by_segment(cm, (h.offer_units * cm.price[None, None, :]).sum(axis=(0, 2))),
    }


def _by_segment(cm: Compiled, x: np.ndarray) -> np.ndarray:
    """Fold an array whose first axis is (segment x age band) into segments."""
    return x.reshape(cm.n_segments, cm.n_bands, *x.shape[1:]).sum(axis=1)


def summary(cm: Compiled, h: History, replication: int, network: dict | None = None) -> dict:
    """The KPIs of one run, as one flat row, for the whole market: with a sample
    (``market.sample``), money and counts are the sample's divided by its scale; CAC,
    ROAS, LTV and the payback day are ratios and need no scaling. ``network`` holds the
    word-of-mouth KPIs only the network model has (:func:`cvj.network.network_kpis`)."""
    m = money(cm, h)
    up = 1.0 / cm.scale  # 1.0 without a sample: every figure as simulated
    spend_d = m["spend"].sum(axis=1)
    revenue_d = m["revenue"].sum(axis=1)
    cost_d = m["cost"].sum(axis=1)
    profit_d = revenue_d - cost_d - spend_d
    spend, revenue, cost = float(spend_d.sum()), float(revenue_d.sum()), float(cost_d.sum())
    cum = np.cumsum(profit_d[1:])
    hit = np.flatnonzero(cum >= 0)
    conversions_g = _by_segment(cm, h.flows[:, :, SUBSCRIBED, :-1].sum(axis=(0, 2)))  # [G]
    conversions = int(conversions_g.sum())
    front = [OFFER_LEAD_MAGNET, OFFER_ENTRY]
    back = [o for o in range(cm.n_offers) if o not in front]
    front_margin = float(m["revenue"][:, front].sum() - m["cost"][:, front].sum())
    back_margin = float(m["revenue"][:, back].sum() - m["cost"][:, back].sum())
    row = {
        "scenario": cm.scenario.name,
        "seed": cm.seed,
        "replication": replication,
        "customers": cm.market,
        "simulated": cm.customers,
        "days": cm.days,
        "spend": spend * up,
        "revenue": revenue * up,
        "cost": cost * up,
        "profit": (revenue - cost - spend) * up,
        "conversions": round(conversions * up),
        "cac": spend / conversions if conversions else None,
        "roas": revenue / spend if spend > 0 else None,
        "payback_day": int(hit[0]) + 1 if hit.size else None,
        "front_end_profit": (front_margin - spend) * up,
        "back_end_profit": back_margin * up,
        # entry sales of customers acquired by referral, among all entry sales
        "referral_share": float(h.referred.sum()) / float(h.first_touch.sum()) if h.first_touch.sum() else None,
        "viral_coefficient": (network or {}).get("viral_coefficient"),
        "buyers_who_refer": (network or {}).get("buyers_who_refer"),
    }
    for g, name in enumerate(cm.segment_names):
        row[f"ltv_{name}"] = float(m["revenue_by_segment"][g] / conversions_g[g]) if conversions_g[g] else None
    end = h.stages[-1].sum(axis=0)
    for s, name in enumerate(STAGES):
        row[f"end_{name}"] = round(int(end[s]) * up)
    if cm.billing is not None:
        row.update(subscription_kpis(cm, h))
    return row


def summary_table(rows: list[dict]) -> pa.Table:
    """Rows of :func:`summary` as a table, with the column types of the registry."""
    cols = {}
    for key in rows[0]:
        typ = SUMMARY_KEYS.get(key) or kpi(key).type
        cols[key] = pa.array([r[key] for r in rows], type=typ)
    return pa.table(cols)


def _stage_columns(stage: np.ndarray, prefix: str = "") -> dict:
    """A stage column and the phases it rolls up to (AIDA, the funnel article; ADL, the four-phases article)."""
    return {
        f"{prefix}stage": _dict(stage, STAGES),
        f"{prefix}aida_phase": _dict(np.searchsorted(sorted(set(AIDA_PHASE)), np.array(AIDA_PHASE))[stage],
                                     sorted(set(AIDA_PHASE))),
        f"{prefix}adl_phase": _dict(np.searchsorted(sorted(set(ADL_PHASE)), np.array(ADL_PHASE))[stage],
                                    sorted(set(ADL_PHASE))),
    }


def daily_stages(cm: Compiled, h: History, replication: int) -> pa.Table:
    D1, GB, S = h.stages.shape
    day, fb, stage = np.meshgrid(np.arange(D1), np.arange(GB), np.arange(S), indexing="ij")
    fb, stage = fb.ravel(), stage.ravel()
    return pa.table(
        {
            "replication": pa.array(np.full(D1 * GB * S, replication, np.int32)),
            "day": pa.array(day.ravel().astype(np.int32)),
            "segment": _dict(fb // cm.n_bands, cm.segment_names),
            "age_band": _dict(fb % cm.n_bands, cm.band_names),
            **_stage_columns(stage),
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
            "segment": _dict(g // cm.n_bands, cm.segment_names),
            "age_band": _dict(g % cm.n_bands, cm.band_names),
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
        "age_band": _dict(e.band, cm.band_names),
        "final_stage": _dict(e.stage, STAGES),
        "email_permission": pa.array(e.permission),
        "orders": pa.array(e.orders.astype(np.int32)),
        "last_order_day": pa.array(e.last_order.astype(np.int32), mask=(e.last_order == np.uint16(0xFFFF))),
    }
    never = np.uint16(0xFFFF)
    names = [f"day_{s}" for s in STAGES[1 : PROMOTER + 1]] + ["day_lapsed"]
    for j, name in enumerate(names):
        col = e.reached[:, j]
        cols[name] = pa.array(col.astype(np.int32), mask=(col == never))
    causes = list(cm.cause_names)
    # the touch path: the cause of the first move into each stage
    for j, stage in enumerate(STAGES[1 : PROMOTER + 1]):
        arr = e.reached_by[:, j]
        cols[f"by_{stage}"] = pa.DictionaryArray.from_arrays(
            pa.array(np.where(arr == 255, 0, arr).astype(np.int16), type=pa.int16(), mask=(arr == 255)),
            pa.array(causes, pa.string()),
        )
    for name, arr in (("acquired_by", e.acquired), ("converted_by", e.converted)):
        idx = np.where(arr == 255, 0, arr).astype(np.int16)
        cols[name] = pa.DictionaryArray.from_arrays(
            pa.array(idx, type=pa.int16(), mask=(arr == 255)), pa.array(causes, pa.string())
        )
    cols["revenue"] = pa.array(e.revenue.astype(np.float64))
    return pa.table(cols)


def subscription_days(cm: Compiled, h: History) -> dict[str, np.ndarray]:
    """A subscription's daily figures by (day, segment x age band), as simulated:
    sign-ups, trial starts, payments (every bill paid, the paid sign-ups too), first
    payments, trials ended unpaid, cancellations (paying subscribers who left at a
    bill), and at the end of the day paying subscribers, customers in a trial and MRR."""
    b = cm.billing
    K = cm.n_causes
    signups = h.flows[:, :, EXCITED, :K].sum(axis=-1)
    trials = h.offer_units[:, :, b.trial_offer] if b.trial_days else np.zeros_like(signups)
    paid_trials = h.subs[:, :, K + 2]
    dropouts = h.subs[:, :, K + 1]
    leaving = h.flows[:, :, list(REPEAT_STAGES), K].sum(axis=-1)  # subscribers leave only at a bill
    in_trial = np.cumsum(trials - paid_trials - dropouts, axis=0)
    subscribers = h.stages[:, :, list(REPEAT_STAGES)].sum(axis=-1) - in_trial
    return {
        "signups": signups,
        "trial_starts": trials,
        "payments": h.offer_units[:, :, OFFER_CORE],
        "first_payments": h.first_payments,
        "trials_ended_unpaid": dropouts,
        "cancellations": leaving - dropouts,
        "subscribers": subscribers,
        "in_trial": in_trial,
        "mrr": subscribers * b.monthly,
    }


def subscriptions(cm: Compiled, h: History, replication: int) -> pa.Table:
    """One row per day, segment and age band of a subscription (see :func:`subscription_days`)."""
    f = subscription_days(cm, h)
    D1, GB = f["signups"].shape
    day, fb = np.meshgrid(np.arange(D1), np.arange(GB), indexing="ij")
    fb = fb.ravel()
    cols = {
        "replication": pa.array(np.full(D1 * GB, replication, np.int32)),
        "day": pa.array(day.ravel().astype(np.int32)),
        "segment": _dict(fb // cm.n_bands, cm.segment_names),
        "age_band": _dict(fb % cm.n_bands, cm.band_names),
    }
    for name, x in f.items():
        cols[name] = pa.array(x.ravel().astype(np.float64 if name == "mrr" else np.int64))
    return pa.table(cols)


def subscription_kpis(cm: Compiled, h: History) -> dict:
    """A subscription's KPIs for the whole market: paying subscribers, MRR and ARR at
    the end, first payments and the CAC per first payment, the share of trials that
    pay and the churn per renewal (cancellations / bills due)."""
    f = {k: v.sum(axis=1) for k, v in subscription_days(cm, h).items()}
    up = 1.0 / cm.scale
    spend = float(h.channel_spend.sum())
    first = int(f["first_payments"].sum())
    trial_ends = int(h.subs[:, :, -1].sum() + f["trials_ended_unpaid"].sum())
    renewals_due = int(f["payments"].sum() - first + f["cancellations"].sum())
    return {
        "subscribers_end": round(int(f["subscribers"][-1]) * up),
        "mrr_end": float(f["mrr"][-1]) * up,
        "arr_end": float(f["mrr"][-1]) * 12.0 * up,
        "first_payments": round(first * up),
        "cac_first_payment": spend / first if first else None,
        "trial_conversion": int(h.subs[:, :, -1].sum()) / trial_ends if trial_ends else None,
        "churn_per_renewal": int(f["cancellations"].sum()) / renewals_due if renewals_due else None,
    }


def channels(cm: Compiled, h: History, replication: int) -> pa.Table:
    """One row per channel and day: what a dashboard shows (audience, impressions,
    clicks, sessions, sends, opens, unsubscribes), what it cost, the moves it caused,
    and the day's conversions (entry-offer purchases) each touch model credits it with:
    ``first_touch_customers`` those of customers it made aware (its move unaware ->
    aware), ``last_touch_customers`` those it caused (the move subscribed -> converted)."""
    D1 = h.stages.shape[0]
    C = cm.n_channels
    days = np.arange(1, D1)
    n = days.size
    moves = h.flows[1:, :, :, 2 : 2 + C].sum(axis=(1, 2))  # [D, C] advances caused by each channel
    first = h.first_touch[1:, :, 2 : 2 + C].sum(axis=1)  # [D, C]
    last = h.flows[1:, :, SUBSCRIBED, 2 : 2 + C].sum(axis=1)  # [D, C]
    cols = {
        "replication": pa.array(np.full(n * C, replication, np.int32)),
        "day": pa.array(np.repeat(days, C).astype(np.int32)),
        "channel": _dict(np.tile(np.arange(C), n), cm.channel_names),
        "pricing": _dict(np.tile(cm.pricing, n), list(PRICING_CODE)),
        "spend": pa.array(h.channel_spend[1:].ravel()),
        "units": pa.array(h.channel_units[1:].ravel()),
    }
    for j, name in enumerate(FUNNEL):
        cols[name] = pa.array(h.funnel[1:, :, j].ravel())
    cols["moves"] = pa.array(moves.ravel().astype(np.int64))
    cols["first_touch_customers"] = pa.array(first.ravel().astype(np.int64))
    cols["last_touch_customers"] = pa.array(last.ravel().astype(np.int64))
    return pa.table(cols)


def orders(cm: Compiled, h: History, replication: int) -> pa.Table:
    """Repeat orders by order number and days since the previous order (the whole run)."""
    k, g = np.nonzero(h.gaps)
    return pa.table(
        {
            "replication": pa.array(np.full(k.size, replication, np.int32)),
            "order_number": pa.array((k + 1).astype(np.int32)),  # k earlier orders: this is order k + 1
            "order_number_or_more": pa.array(k == ORDER_CLASSES - 1),
            "days_since_previous": pa.array(g.astype(np.int32)),
            "days_or_more": pa.array(g == MAX_GAP),
            "orders": pa.array(h.gaps[k, g]),
        }
    )


def channel_funnel(channels_table: pa.Table) -> list[dict]:
    """Each channel's totals over a ``channels`` table (one replication, or the mean
    over several) and the rates its dashboard would show: CPM, CTR, CPC, open, click and
    unsubscribe rates per send, moves per session, and the CAC each touch model gives
    it (spend per first-touch and per last-touch customer; ``None`` without any).
    A ``channels`` table of an earlier cvj, without the touch columns, gives ``None``
    for them."""
    t = channels_table
    reps = max(1, len(set(t.column("replication").to_pylist())))
    labels = t.column("channel").cast(pa.string()).to_pylist()
    names = list(dict.fromkeys(labels))  # the channels in the table's order
    where = {name: c for c, name in enumerate(names)}
    idx = np.array([where[x] for x in labels], dtype=np.int64)
    cols = ("spend", "impressions", "clicks", "sessions", "sends", "opens", "unsubscribes", "moves")
    touch = tuple(k for k in ("first_touch_customers", "last_touch_customers") if k in t.column_names)
    tot = {
        k: np.bincount(idx, weights=np.asarray(t.column(k), np.float64), minlength=len(names)) / reps
        for k in cols + touch
    }

    def ratio(a, b, scale=1.0):
        return float(scale * a / b) if b > 0 else None

    out = []
    for c, name in enumerate(names):
        f = {k: float(v[c]) for k, v in tot.items()}
        out.append(
            {
                "channel": name,
                **f,
                "cpm": ratio(f["spend"], f["impressions"], 1000.0),
                "ctr": ratio(f["clicks"], f["impressions"]),
                "cpc": ratio(f["spend"], f["clicks"]),
                "open_rate": ratio(f["opens"], f["sends"]),
                "click_rate": ratio(f["clicks"], f["sends"]),
                "unsubscribe_rate": ratio(f["unsubscribes"], f["sends"]),
                "moves_per_session": ratio(f["moves"], f["sessions"]),
                "first_touch_customers": f.get("first_touch_customers"),
                "last_touch_customers": f.get("last_touch_customers"),
                "cac_first_touch": ratio(f["spend"], f.get("first_touch_customers", 0.0)),
                "cac_last_touch": ratio(f["spend"], f.get("last_touch_customers", 0.0)),
            }
        )
    return out


__all__ = [
    "TABLES",
    "channel_funnel",
    "channels",
    "customers",
    "daily_stages",
    "finance",
    "money",
    "orders",
    "summary",
    "summary_table",
    "transitions",
]

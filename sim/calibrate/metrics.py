"""The metrics a calibration compares: weekly (or daily) counts a shop's dashboards show,
named as cvj's own tables name them, computed from a run's daily aggregates.

A metric is one of

- a column of the ``channels`` table summed over channels (``spend``, ``impressions``,
  ``clicks``, ``sessions``, ``sends``, ``opens``, ``unsubscribes``, ``moves``), or the
  same column of one channel, ``COLUMN.CHANNEL`` (``clicks.paid_social``);
- ``new_subscribers``: moves ``engaged -> subscribed`` (the ``transitions`` table), the
  email service's new sign-ups;
- ``entry_sales`` and ``core_sales``: units of the entry and core offers (the ``finance``
  table's ``units`` of items ``entry`` and ``core``);
- ``repeat_orders``: core-offer units bought by customers who already own it (core
  units minus the ``excited -> ascended`` moves, which are the first core purchases).

Every value is for the whole market: a run of a sample (``market.sample``) is divided
by its scale, as the ``summary`` table does.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from ..engine import FUNNEL, History
from ..model import Compiled
from ..stages import ENGAGED, EXCITED, OFFER_CORE, OFFER_ENTRY

#: columns of the ``channels`` table a metric may name (summed, or of one channel)
CHANNEL_COLUMNS = ("spend", "impressions", "clicks", "sessions", "sends", "opens", "unsubscribes", "moves")
#: metrics that are not per channel, and where each comes from
OTHER_METRICS = {
    "new_subscribers": "transitions engaged -> subscribed",
    "entry_sales": "finance units of the entry offer",
    "core_sales": "finance units of the core offer",
    "repeat_orders": "core-offer units bought again (core units minus first core purchases)",
}
PERIODS = {"day": 1, "week": 7}


def metric_names(channels) -> list[str]:
    """Every metric a scenario with these channels has (in a stable order)."""
    return [*CHANNEL_COLUMNS, *OTHER_METRICS, *(f"{c}.{ch}" for c in CHANNEL_COLUMNS for ch in channels)]


def known_metric(name: str, channels) -> bool:
    if name in CHANNEL_COLUMNS or name in OTHER_METRICS:
        return True
    col, dot, ch = name.partition(".")
    return bool(dot) and col in CHANNEL_COLUMNS and ch in channels


def daily_metrics(cm: Compiled, h: History, metrics: list[str]) -> np.ndarray:
    """float64[D, M]: each metric on days 1..D, for the whole market."""
    C = cm.n_channels
    moves = h.flows[1:, :, :, 2 : 2 + C].sum(axis=(1, 2)).astype(np.float64)  # [D, C]

    def per_channel(col: str) -> np.ndarray:  # [D, C]
        if col == "spend":
            return h.channel_spend[1:]
        if col == "moves":
            return moves
        return h.funnel[1:, :, FUNNEL.index(col)]

    names = list(cm.channel_names)
    out = np.empty((cm.days, len(metrics)))
    for j, m in enumerate(metrics):
        if m in CHANNEL_COLUMNS:
            out[:, j] = per_channel(m).sum(axis=1)
        elif m == "new_subscribers":
            out[:, j] = h.flows[1:, :, ENGAGED, :-1].sum(axis=(1, 2))
        elif m == "entry_sales":
            out[:, j] = h.offer_units[1:, :, OFFER_ENTRY].sum(axis=1)
        elif m == "core_sales":
            out[:, j] = h.offer_units[1:, :, OFFER_CORE].sum(axis=1)
        elif m == "repeat_orders":
            out[:, j] = h.offer_units[1:, :, OFFER_CORE].sum(axis=1) - h.flows[1:, :, EXCITED, :-1].sum(axis=(1, 2))
        else:
            col, _, ch = m.partition(".")
            out[:, j] = per_channel(col)[:, names.index(ch)]
    return out / cm.scale


def n_periods(days: int, period: str) -> int:
    """Complete periods in a horizon of ``days`` days (a partial last week is left out)."""
    return days // PERIODS[period]


def by_period(daily: np.ndarray, period: str) -> np.ndarray:
    """float64[P, M]: daily values summed over each complete period."""
    k = PERIODS[period]
    P = daily.shape[0] // k
    return daily[: P * k].reshape(P, k, -1).sum(axis=1)


def period_starts(start: date, days: int, period: str) -> list[date]:
    """The first date of every complete period (day 1 is ``start``)."""
    k = PERIODS[period]
    return [start + timedelta(days=k * i) for i in range(n_periods(days, period))]


__all__ = [
    "CHANNEL_COLUMNS", "OTHER_METRICS", "PERIODS", "by_period", "daily_metrics", "known_metric", "metric_names",
    "n_periods", "period_starts",
]

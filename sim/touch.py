"""Touch paths and what the usual attribution models claim from them.

A customer's *touch path* is the sequence of causes (a channel, ``organic`` or
``referral``) of its first moves into ``aware``, ``engaged``, ``subscribed`` and
``converted`` (the customers table's ``by_<stage>`` columns, recorded by the kernel):
the touches an attribution tool would see before a conversion, the purchase of the
entry offer. A customer who started past ``unaware`` has no touch for the stages it
was already in; one who never moved has no path at all (no tool sees it).

The models, from the same paths (what an attribution tool claims from one world):

- **first touch**: each conversion to the first touch on its path;
- **last touch**: each conversion to the touch that caused it (``by_converted``);
- **linear**: each conversion shared equally among the touches on its path;
- **Markov chain removal effect** (first order, as ChannelAttribution and Anderl et al.
  2016 compute it): the paths are a Markov chain ``start -> touches -> conversion |
  null``; removing a cause sends every transition into it to ``null``; its removal
  effect is ``1 - P(conversion without it) / P(conversion)``, and the conversions are
  shared in proportion to the removal effects.

Revenue (what the converting customers paid over the horizon) is shared the same way.
Everything here is a pure function of tables or path counts: no simulation runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .stages import STAGES

#: the stages whose first move is a touch on the way to a conversion, in order
PATH_STAGES = ("aware", "engaged", "subscribed", "converted")
#: the attribution models, in the order tables show them
MODELS = ("first_touch", "last_touch", "linear", "markov")
#: the stages of the customers table's ``by_<stage>`` columns (aware .. promoter)
TOUCH_STAGES = STAGES[1:9]


@dataclass(frozen=True)
class Paths:
    """Distinct touch paths with what became of the customers who followed them.

    Attributes
    ----------
    touches : tuple of tuple of str
        Each distinct path: the causes of its touches in order (a cause may repeat).
    conversions : numpy.ndarray
        Customers on each path who converted (float: a sum over replications may be
        divided by their number).
    nulls : numpy.ndarray
        Customers on each path who did not.
    revenue : numpy.ndarray
        What the converting customers on each path paid over the horizon (ignored on
        a path without conversions).
    """

    touches: tuple[tuple[str, ...], ...]
    conversions: np.ndarray
    nulls: np.ndarray
    revenue: np.ndarray

    @property
    def causes(self) -> tuple[str, ...]:
        """Every cause on some path, in order of first appearance."""
        return tuple(dict.fromkeys(c for path in self.touches for c in path))

    @property
    def total_conversions(self) -> float:
        return float(self.conversions.sum())

    @property
    def total_revenue(self) -> float:
        """Revenue of the paths with conversions (what the models share out)."""
        return float(self.revenue[self.conversions > 0].sum())


def from_counts(rows: Iterable[tuple]) -> Paths:
    """Paths from ``(touches, conversions, nulls[, revenue])`` rows, the way
    ChannelAttribution takes them (``touches``: a sequence of causes, or a string
    ``"a > b > c"``). Equal paths are added together; a path without touches is left
    out (no tool sees it)."""
    acc: dict[tuple[str, ...], list[float]] = {}
    for row in rows:
        touches, conv, null, *rest = row
        if isinstance(touches, str):
            touches = tuple(t.strip() for t in touches.split(">") if t.strip())
        touches = tuple(touches)
        if not touches:
            continue
        a = acc.setdefault(touches, [0.0, 0.0, 0.0])
        a[0] += float(conv)
        a[1] += float(null)
        a[2] += float(rest[0]) if rest else 0.0
    keys = tuple(acc)
    vals = np.array([acc[k] for k in keys], dtype=np.float64).reshape(-1, 3)
    return Paths(keys, vals[:, 0], vals[:, 1], vals[:, 2])


def path_counts(customers: pa.Table) -> pa.Table:
    """The customers table reduced to distinct touch paths (one replication or many).

    Returns
    -------
    pyarrow.Table
        ``by_aware``, ``by_engaged``, ``by_subscribed``, ``by_converted`` (the causes,
        null: no touch), ``customers`` and ``revenue`` (summed), for every path with at
        least one touch. Small (hundreds of rows), so a study's worker sends it back
        instead of the customers table.
    """
    keys = [f"by_{s}" for s in PATH_STAGES]
    cols = {k: customers.column(k).cast(pa.string()) for k in keys}
    touched = None
    for k in keys:
        valid = pc.is_valid(cols[k])
        touched = valid if touched is None else pc.or_(touched, valid)
    t = pa.table({**cols, "revenue": customers.column("revenue")}).filter(touched)
    g = t.group_by(keys).aggregate([("revenue", "count"), ("revenue", "sum")])
    g = pa.table({**{k: g.column(k) for k in keys}, "customers": g.column("revenue_count"), "revenue": g.column("revenue_sum")})
    return g.sort_by([(k, "ascending") for k in keys])


def paths_of(counts: pa.Table, scale: float = 1.0) -> Paths:
    """:class:`Paths` from :func:`path_counts` tables (several replications
    concatenated are added together), every count and revenue times ``scale`` (``1 /
    replications`` gives the mean per replication)."""
    d = counts.to_pydict()
    keys = [f"by_{s}" for s in PATH_STAGES]
    rows = []
    for i in range(counts.num_rows):
        touches = tuple(d[k][i] for k in keys if d[k][i] is not None)
        converted = d["by_converted"][i] is not None
        n = d["customers"][i] * scale
        rows.append((touches, n if converted else 0.0, 0.0 if converted else n, d["revenue"][i] * scale if converted else 0.0))
    return from_counts(rows)


# --------------------------------------------------------------------------- models


def _credit(paths: Paths, weights) -> dict[str, tuple[float, float]]:
    """Conversions and revenue per cause, each converting path shared by ``weights(path)``
    (a dict cause -> share summing to 1)."""
    out = {c: [0.0, 0.0] for c in paths.causes}
    for path, conv, rev in zip(paths.touches, paths.conversions, paths.revenue):
        if conv <= 0:
            continue
        for c, w in weights(path).items():
            out[c][0] += w * conv
            out[c][1] += w * rev
    return {c: (v[0], v[1]) for c, v in out.items()}


def first_touch(paths: Paths) -> dict[str, tuple[float, float]]:
    """Conversions and revenue per cause under first touch."""
    return _credit(paths, lambda p: {p[0]: 1.0})


def last_touch(paths: Paths) -> dict[str, tuple[float, float]]:
    """Conversions and revenue per cause under last touch."""
    return _credit(paths, lambda p: {p[-1]: 1.0})


def linear(paths: Paths) -> dict[str, tuple[float, float]]:
    """Conversions and revenue per cause under linear attribution (a cause touching
    twice gets two shares)."""

    def shares(p):
        w: dict[str, float] = {}
        for c in p:
            w[c] = w.get(c, 0.0) + 1.0 / len(p)
        return w

    return _credit(paths, shares)


def conversion_probability(paths: Paths, removed: str | None = None) -> float:
    """P(conversion) of the first-order Markov chain of ``paths`` (``start -> touches
    -> conversion | null``), with transitions into ``removed`` sent to ``null``."""
    causes = paths.causes
    idx = {c: i + 1 for i, c in enumerate(causes)}  # 0: start
    n = len(causes) + 1
    Q = np.zeros((n, n))  # transient -> transient
    R = np.zeros((n, 2))  # transient -> (conversion, null)
    for path, conv, null in zip(paths.touches, paths.conversions, paths.nulls):
        w = conv + null
        if w <= 0:
            continue
        states = [0, *(idx[c] for c in path)]
        for a, b in itertools.pairwise(states):
            Q[a, b] += w
        R[states[-1], 0] += conv
        R[states[-1], 1] += null
    if removed is not None and removed in idx:
        j = idx[removed]
        R[:, 1] += Q[:, j]
        Q[:, j] = 0.0
    out = Q.sum(axis=1) + R.sum(axis=1)
    live = out > 0
    if not live[0]:
        return 0.0
    # rows with no way out (a removed cause, never entered now) absorb into null
    Q[live] /= out[live, None]
    R[live] /= out[live, None]
    R[~live, 1] = 1.0
    absorb = np.linalg.solve(np.eye(n) - Q, R)
    return float(absorb[0, 0])


def removal_effects(paths: Paths) -> dict[str, float]:
    """Each cause's removal effect, ``1 - P(conversion without it) / P(conversion)``."""
    base = conversion_probability(paths)
    if base <= 0:
        return {c: 0.0 for c in paths.causes}
    return {c: 1.0 - conversion_probability(paths, c) / base for c in paths.causes}


def markov(paths: Paths) -> dict[str, tuple[float, float]]:
    """Conversions and revenue per cause shared in proportion to the removal effects."""
    re = removal_effects(paths)
    total = sum(re.values())
    if total <= 0:
        return {c: (0.0, 0.0) for c in re}
    return {c: (paths.total_conversions * v / total, paths.total_revenue * v / total) for c, v in re.items()}


def claims(paths: Paths) -> dict[str, dict[str, tuple[float, float]]]:
    """What every model of :data:`MODELS` claims: ``{model: {cause: (conversions,
    revenue)}}``."""
    return {"first_touch": first_touch(paths), "last_touch": last_touch(paths), "linear": linear(paths),
            "markov": markov(paths)}


# --------------------------------------------------------------------------- export


def touch_rows(customers: pa.Table) -> pa.Table:
    """One row per customer-touch, for attribution tools: every first move into a
    stage aware .. promoter with its day and cause, in the customer's order.

    Returns
    -------
    pyarrow.Table
        ``replication``, ``customer_id``, ``touch`` (1, 2, ... along the customer's
        path), ``day``, ``stage`` (the stage moved into), ``cause``, and for the
        customer: ``converted`` (bought the entry offer during the run), ``revenue``.
    """
    n = customers.num_rows
    S = len(TOUCH_STAGES)
    days = np.full((n, S), -1, np.int64)
    causes = np.full((n, S), -1, np.int64)
    dictionary = None
    for j, s in enumerate(TOUCH_STAGES):
        col = customers.column(f"by_{s}").combine_chunks()
        if dictionary is None:
            dictionary = col.dictionary
        idx = col.indices.to_numpy(zero_copy_only=False)
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        day = customers.column(f"day_{s}").to_numpy(zero_copy_only=False)
        causes[:, j] = np.where(valid, idx, -1)
        # a stage held at the start (day 0) has no cause: not a touch
        days[:, j] = np.where(valid, np.nan_to_num(day.astype(np.float64), nan=-1), -1).astype(np.int64)
    row, stage = np.nonzero(causes >= 0)
    d = days[row, stage]
    order = np.lexsort((stage, d, row))  # by customer, then day, then stage
    row, stage, d = row[order], stage[order], d[order]
    touch = np.ones(row.size, np.int32)
    if row.size:
        same = np.r_[False, row[1:] == row[:-1]]
        run_start = np.flatnonzero(~same)
        counts = np.diff(np.r_[run_start, row.size])
        touch = (np.arange(row.size) - np.repeat(run_start, counts) + 1).astype(np.int32)
    conv = customers.column("by_converted").is_valid().to_numpy(zero_copy_only=False)
    take = pa.array(row)
    return pa.table(
        {
            "replication": customers.column("replication").take(take),
            "customer_id": customers.column("customer_id").take(take),
            "touch": pa.array(touch),
            "day": pa.array(d.astype(np.int32)),
            "stage": pa.DictionaryArray.from_arrays(pa.array(stage.astype(np.int8)), pa.array(list(TOUCH_STAGES))),
            "cause": pa.DictionaryArray.from_arrays(
                pa.array(causes[row, stage].astype(np.int16)), dictionary if dictionary is not None else pa.array([], pa.string())
            ),
            "converted": pa.array(conv[row]),
            "revenue": customers.column("revenue").take(take),
        }
    )


__all__ = [
    "MODELS",
    "PATH_STAGES",
    "Paths",
    "claims",
    "conversion_probability",
    "first_touch",
    "from_counts",
    "last_touch",
    "linear",
    "markov",
    "path_counts",
    "paths_of",
    "removal_effects",
    "touch_rows",
]

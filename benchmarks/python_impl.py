"""The journey model as a plain Python loop over customers: the "no tools" baseline.

What a careful Python programmer would write without NumPy or Numba: per-customer
state in ``bytearray`` and ``array.array`` (the kernel's 15 bytes a customer; revenue
in a list of floats), the day's tables as nested lists, one ``random.random()`` per
customer-day for "does anything happen" (the standard library's Mersenne Twister, the
fastest generator plain Python has), and the choice of outcome, cause and product only
for the few customers something happens to. The per-customer step itself is
:func:`customer_day`, shared with the Mesa version (:mod:`benchmarks.mesa_impl`), whose
agents call it on themselves.

The per-day tables come from :func:`cvj.model.channel_reach` and
:func:`cvj.model.day_tables`, and the dashboard figures from
:func:`cvj.engine.realised_funnel`, as in the engine and in :mod:`benchmarks.numpy_impl`;
the per-customer work, which is what is being compared, is written here from the
kernel's documented model without calling it. ``tests/test_benchmark_models.py``
checks it is the same model in distribution.
"""

from __future__ import annotations

import random
from array import array

import numpy as np

from cvj.engine import FUNNEL, MAX_GAP, ORDER_CLASSES, History, apply_flows, realised_funnel
from cvj.model import MAX_DWELL, Compiled, channel_reach, day_tables
from cvj.scenario import RESPONSIVENESS_LEVELS
from cvj.stages import (
    AWARE,
    CAUSE_REFERRAL,
    ENGAGED,
    EXCITED,
    LAPSED,
    N_STAGES,
    OFFER_CORE,
    OFFER_ENTRY,
    OFFER_LEAD_MAGNET,
    SUBSCRIBED,
    UNAWARE,
)

NONE = 255
NEVER = 0xFFFF
MAX_ORDERS = 255
#: what advancing from a stage buys (the lead magnet is not an order)
BOUGHT_ON_ADVANCE = {ENGAGED: OFFER_LEAD_MAGNET, SUBSCRIBED: OFFER_ENTRY, EXCITED: OFFER_CORE}


class Day:
    """One day's tables as nested lists, and the day's counts (what a customer's step
    reads and adds to)."""

    __slots__ = (
        "buy_cum",
        "buys",
        "cause_cum",
        "cells",
        "col_of",
        "crow_of",
        "cut_adv",
        "cut_lapse",
        "cut_unsub",
        "day",
        "fb_of",
        "first_touch",
        "flows",
        "gaps",
        "n_causes",
        "n_offers",
        "p_event",
        "price",
        "ref_block",
        "sx_of",
    )

    def __init__(self, cm: Compiled, tables, day: int, col_of, sx_of, crow_of, fb_of, count_cells: bool):
        GB = cm.n_segments * cm.n_bands
        K, O = cm.n_causes, cm.n_offers
        self.day = day
        self.p_event = (tables.thr / 2.0**32).tolist()  # [row][col]
        self.cut_adv = tables.cut_adv.tolist()
        self.cut_lapse = tables.cut_lapse.tolist()
        self.cut_unsub = tables.cut_unsub.tolist()
        self.cause_cum = tables.cause_cum.tolist()  # [segment x flag cell][col][cause]
        self.buy_cum = tables.buy_cum.tolist()  # [col][offer]
        self.price = cm.price.tolist()
        self.ref_block = cm.ref_block  # a customer acquired by referral moves to its own rows
        self.col_of, self.sx_of, self.crow_of, self.fb_of = col_of, sx_of, crow_of, fb_of
        self.n_causes, self.n_offers = K, O
        self.flows = [[[0] * (K + 2) for _ in range(N_STAGES)] for _ in range(GB)]  # causes, lapse, unsubscribe
        self.buys = [[0] * O for _ in range(GB)]
        self.first_touch = [[0] * (K + 1) for _ in range(GB)]  # conversions by acquiring cause
        self.gaps = [[0] * (MAX_GAP + 1) for _ in range(ORDER_CLASSES)]
        self.cells = [[0] * len(tables.buy_cum) for _ in range(cm.n_segments * cm.width)] if count_cells else None


def customer_day(c, t: Day, rnd) -> None:
    """One customer's day: nothing, an advance, a lapse, an unsubscribe or a repeat
    purchase, from the day's tables ``t``, with uniforms from ``rnd()``. ``c`` has the
    kernel's state as attributes (``stage``, ``row``, ``sx``, ``orders``, ``clock``,
    ``last_order``, ``acquired``, ``converted``, ``revenue``); if ``t.cells`` is a
    table, the customer is counted in its cell of tomorrow."""
    d = t.day
    row = c.row
    dw = d - c.clock
    col = t.col_of[c.sx][dw if dw < MAX_DWELL else MAX_DWELL]
    if rnd() < t.p_event[row][col]:
        _event(c, t, rnd(), row, col)
    if t.cells is not None:
        dw = d + 1 - c.clock
        t.cells[t.crow_of[c.row]][t.col_of[c.sx][dw if dw < MAX_DWELL else MAX_DWELL]] += 1


def _event(c, t: Day, u: float, row: int, col: int) -> None:
    d = t.day
    s = c.stage
    fb = t.fb_of[row]
    pa = t.cut_adv[row][col]
    if u < pa:
        v = u / pa
        cum = t.cause_cum[t.crow_of[row]][col]
        k = 0
        last = t.n_causes - 1
        while k < last and v >= cum[k]:
            k += 1
        t.flows[fb][s][k] += 1
        new = AWARE if s == LAPSED else s + 1
        c.stage = new
        c.clock = d
        if s == UNAWARE:
            c.acquired = k
            if k == 1 and t.ref_block:  # cause 1: referral
                c.row = row + t.ref_block
        elif s == ENGAGED:
            c.row = row | 1  # the lead magnet grants the email permission
        elif s == SUBSCRIBED:
            c.converted = k
            a = c.acquired
            t.first_touch[fb][a if a != NONE else t.n_causes] += 1
        o = BOUGHT_ON_ADVANCE.get(s)
        if o is not None:
            t.buys[fb][o] += 1
            c.revenue += t.price[o]
            if o != OFFER_LEAD_MAGNET:
                _order(c, t)
        c.sx = t.sx_of[new][c.orders]
        return
    if u < t.cut_lapse[row][col]:
        t.flows[fb][s][t.n_causes] += 1
        c.stage = LAPSED
        c.clock = d
        c.sx = t.sx_of[LAPSED][c.orders]
        return
    pu = t.cut_unsub[row][col]
    if u < pu:
        t.flows[fb][s][t.n_causes + 1] += 1
        c.row = row & ~1
        return
    v = (u - pu) / (1.0 - pu)
    cum = t.buy_cum[col]
    o = 0
    last = t.n_offers - 1
    while o < last and v >= cum[o]:
        o += 1
    t.buys[fb][o] += 1
    c.revenue += t.price[o]
    c.clock = d
    _order(c, t)
    c.sx = t.sx_of[s][c.orders]


def _order(c, t: Day) -> None:
    """Count an order: the gap since the previous one (if any), then the new memory."""
    if c.last_order != NEVER:
        gap = t.day - c.last_order
        t.gaps[min(c.orders, ORDER_CLASSES - 1)][gap if gap < MAX_GAP else MAX_GAP] += 1
    c.orders = min(c.orders + 1, MAX_ORDERS)
    c.last_order = t.day


def new_history(cm: Compiled) -> History:
    """An empty :class:`cvj.engine.History` of the scenario's shape."""
    D, C, O, K = cm.days, cm.n_channels, cm.n_offers, cm.n_causes
    GB = cm.n_segments * cm.n_bands
    return History(
        stages=np.zeros((D + 1, GB, N_STAGES), np.int64),
        flows=np.zeros((D + 1, GB, N_STAGES, K + 1), np.int64),
        channel_units=np.zeros((D + 1, C)),
        channel_spend=np.zeros((D + 1, C)),
        channel_budget=np.zeros((D + 1, C)),
        offer_units=np.zeros((D + 1, GB, O), np.int64),
        first_touch=np.zeros((D + 1, GB, K + 1), np.int64),
        unsubscribes=np.zeros((D + 1, GB, N_STAGES), np.int64),
        funnel=np.zeros((D + 1, C, len(FUNNEL))),
        gaps=np.zeros((ORDER_CLASSES, MAX_GAP + 1), np.int64),
        subs=np.zeros((D + 1, GB, K + 3), np.int64),  # subscriptions: not modelled here
    )


def finish_day(h: History, cm: Compiled, t: Day, reach, tables, budgets, counts, key, cells=None):
    """Record day ``t.day``'s counts in ``h`` (as the engine does after its kernel) and
    return the stage counts and audience cells the next day starts from."""
    d = t.day
    all_flows = np.array(t.flows, np.int64)
    flows = all_flows[..., :-1]
    h.flows[d] = flows
    h.unsubscribes[d] = all_flows[..., -1]
    h.offer_units[d] = t.buys
    h.first_touch[d] = t.first_touch
    h.gaps += np.array(t.gaps, np.int64)
    spend, units = reach.spend, reach.units
    if cm.commission_channel >= 0:
        c = cm.commission_channel
        units[c] = float(sum(row[CAUSE_REFERRAL] for row in t.first_touch))  # paid per referred sale
        spend[c] = units[c] * cm.per_unit[c]
    h.channel_units[d] = units
    h.channel_spend[d] = spend
    h.channel_budget[d] = budgets
    h.funnel[d] = realised_funnel(cm, reach, tables, int(h.unsubscribes[d].sum()), key, d, cells)
    counts = apply_flows(counts, flows)
    h.stages[d] = counts
    return counts, None if t.cells is None else np.array(t.cells, np.int64)


class _Customer:
    __slots__ = ("acquired", "clock", "converted", "last_order", "orders", "revenue", "row", "stage", "sx")


class PythonEngine:
    """The customers of one (scenario, replication), advanced one day per :meth:`step`.

    Same interface as :class:`cvj.engine.Engine` where the benchmarks need it.
    """

    STATE = ("stage", "row", "sx", "orders", "clock", "last_order", "acquired", "converted", "revenue")

    def __init__(self, compiled: Compiled, replication: int = 0):
        cm = compiled
        self.cm = cm
        self.replication = int(replication)
        N, G, C = cm.customers, cm.n_segments, cm.n_channels
        GB = G * cm.n_bands
        W, B = cm.width, cm.n_bands
        self.random = random.Random(f"{cm.seed}/{self.replication}")
        self.key = self.random.getrandbits(64)  # for realised_funnel's generator
        rnd = self.random.random
        seg_end = [int(x) for x in cm.seg_end]
        stage_cum = [float(x) for x in cm.stage_cum]
        band_cum = cm.band_cum.tolist()
        permitted = cm.permitted.tolist()
        sx_of = cm.layout.sx_of.tolist()
        self.stage = bytearray(N)
        self.row = array("H", bytes(2 * N))
        self.sx = bytearray(N)
        self.orders = bytearray(N)
        self.clock = array("H", bytes(2 * N))
        self.last_order = array("H", [NEVER]) * N
        self.acquired = bytearray([NONE]) * N
        self.converted = bytearray([NONE]) * N
        self.revenue = [0.0] * N
        g = 0
        for i in range(N):
            while seg_end[g] <= i:
                g += 1
            u = rnd()
            s = 0
            while s < N_STAGES - 1 and u >= stage_cum[s]:
                s += 1
            level = self.random.randrange(RESPONSIVENESS_LEVELS)
            b = 0
            if B > 1:
                ub = rnd()
                while b < B - 1 and ub >= band_cum[g][b]:
                    b += 1
            self.stage[i] = s
            self.row[i] = (g * RESPONSIVENESS_LEVELS + level) * W + b * 2 + permitted[s]
            self.orders[i] = int(cm.start_orders[s])
            self.sx[i] = sx_of[s][self.orders[i]]
        lay = cm.layout
        self._col_of = lay.colf.reshape(-1, MAX_DWELL + 1).tolist()  # [slot][days]
        self._sx_of = sx_of
        self._crow_of = cm.crow_of.tolist()
        self._fb_of = cm.fb_of.tolist()
        self.history = new_history(cm)
        counts = [[0] * N_STAGES for _ in range(GB)]
        for r, s in zip(self.row, self.stage):
            counts[self._fb_of[r]][s] += 1
        self.history.stages[0] = np.array(counts, np.int64)
        self.counts = self.history.stages[0].copy()
        self.cells = self._count_cells(1) if cm.count_cells else None
        self.stock = np.zeros(C)
        self.day = 0

    @property
    def done(self) -> bool:
        return self.day >= self.cm.days

    def _count_cells(self, day: int) -> np.ndarray:
        cm = self.cm
        cells = [[0] * cm.layout.n_cols for _ in range(cm.n_segments * cm.width)]
        col_of, crow_of = self._col_of, self._crow_of
        for r, x, c in zip(self.row, self.sx, self.clock):
            dw = day - c
            cells[crow_of[r]][col_of[x][dw if dw < MAX_DWELL else MAX_DWELL]] += 1
        return np.array(cells, np.int64)

    def step(self, budgets: np.ndarray | None = None) -> None:
        """Advance one day. ``budgets`` (per channel) replaces the scenario's plan."""
        if self.done:
            raise RuntimeError(f"the run is over: all {self.cm.days} days were simulated")
        cm = self.cm
        d = self.day + 1
        b = cm.budget[d].copy() if budgets is None else np.asarray(budgets, dtype=np.float64)
        reach = channel_reach(cm, self.counts, self.stock, b, self.cells)
        tables = day_tables(cm, self.counts, reach, d)
        t = Day(cm, tables, d, self._col_of, self._sx_of, self._crow_of, self._fb_of, self.cells is not None)
        self._day(t)
        self.counts, self.cells = finish_day(self.history, cm, t, reach, tables, b, self.counts, self.key, self.cells)
        self.stock = reach.stock
        self.day = d

    def _day(self, t: Day) -> None:
        """Every customer's day: the fast path ("nothing happens") inline over the
        arrays; an event goes through :func:`_event` on a customer object, whose state
        is written back to the arrays."""
        d = t.day
        rnd = self.random.random
        p_event, col_of = t.p_event, t.col_of
        cells, crow_of = t.cells, t.crow_of
        row_a, sx_a, clock_a = self.row, self.sx, self.clock
        c = _Customer()
        for i, (r, x, k) in enumerate(zip(row_a, sx_a, clock_a)):
            dw = d - k
            col = col_of[x][dw if dw < MAX_DWELL else MAX_DWELL]
            if rnd() < p_event[r][col]:
                self._load(c, i)
                _event(c, t, rnd(), r, col)
                self._store(c, i)
                r, x, k = c.row, c.sx, c.clock
            if cells is not None:
                dw = d + 1 - k
                cells[crow_of[r]][col_of[x][dw if dw < MAX_DWELL else MAX_DWELL]] += 1

    def _load(self, c: _Customer, i: int) -> None:
        for name in self.STATE:
            setattr(c, name, getattr(self, name)[i])

    def _store(self, c: _Customer, i: int) -> None:
        for name in self.STATE:
            getattr(self, name)[i] = getattr(c, name)


def simulate(compiled: Compiled, replication: int = 0) -> PythonEngine:
    """Run one replication to the horizon; the engine holds the history."""
    e = PythonEngine(compiled, replication)
    while not e.done:
        e.step()
    return e

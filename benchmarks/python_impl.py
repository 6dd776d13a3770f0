"""The journey model as a plain Python loop over customers: the "no tools" baseline.

What a careful Python programmer would write without NumPy or Numba: per-customer
state in ``bytearray`` and ``list``, the day's tables as nested lists, one
``random.random()`` per customer-day for "does anything happen" (the standard
library's Mersenne Twister, the fastest generator plain Python has), and the choice
of outcome, cause and product only for the few customers something happens to.

The per-day tables come from :func:`cvj.model.channel_reach` and
:func:`cvj.model.day_tables`, as in the engine and in :mod:`benchmarks.numpy_impl`;
the per-customer work, which is what is being compared, is written here from
``docs/model.md``. ``tests/test_benchmark_models.py`` checks it is the same model in
distribution.
"""

from __future__ import annotations

import random

import numpy as np

from cvj.engine import History, apply_flows
from cvj.model import Compiled, channel_reach, day_tables
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


class PythonEngine:
    """The customers of one (scenario, replication), advanced one day per :meth:`step`.

    Same interface as :class:`cvj.engine.Engine` where the benchmarks need it.
    """

    def __init__(self, compiled: Compiled, replication: int = 0):
        cm = compiled
        self.cm = cm
        self.replication = int(replication)
        N, D, G, C, O, K = cm.customers, cm.days, cm.n_segments, cm.n_channels, cm.n_offers, cm.n_causes
        self.random = random.Random(f"{cm.seed}/{self.replication}")
        rnd = self.random.random
        seg_end = [int(x) for x in cm.seg_end]
        stage_cum = [float(x) for x in cm.stage_cum]
        self.stage = bytearray(N)
        self.profile = bytearray(N)
        self.acquired = bytearray([NONE]) * N
        self.converted = bytearray([NONE]) * N
        self.revenue = [0.0] * N
        counts = [[0] * N_STAGES for _ in range(G)]
        g = 0
        for i in range(N):
            while seg_end[g] <= i:
                g += 1
            u = rnd()
            s = 0
            while s < N_STAGES - 1 and u >= stage_cum[s]:
                s += 1
            self.stage[i] = s
            self.profile[i] = g * RESPONSIVENESS_LEVELS + self.random.randrange(RESPONSIVENESS_LEVELS)
            counts[g][s] += 1
        self.history = History(
            stages=np.zeros((D + 1, G, N_STAGES), np.int64),
            flows=np.zeros((D + 1, G, N_STAGES, K + 1), np.int64),
            channel_units=np.zeros((D + 1, C)),
            channel_spend=np.zeros((D + 1, C)),
            channel_budget=np.zeros((D + 1, C)),
            offer_units=np.zeros((D + 1, G, O), np.int64),
            referred=np.zeros((D + 1, G), np.int64),
        )
        self.history.stages[0] = np.array(counts, dtype=np.int64)
        self.counts = self.history.stages[0].copy()
        self.stock = np.zeros(C)
        self.day = 0

    @property
    def done(self) -> bool:
        return self.day >= self.cm.days

    def step(self, budgets: np.ndarray | None = None) -> None:
        """Advance one day. ``budgets`` (per channel) replaces the scenario's plan."""
        if self.done:
            raise RuntimeError(f"the run is over: all {self.cm.days} days were simulated")
        cm = self.cm
        d = self.day + 1
        b = cm.budget[d].copy() if budgets is None else np.asarray(budgets, dtype=np.float64)
        reach = channel_reach(cm, self.counts, self.stock, b)
        tables = day_tables(cm, self.counts, reach)
        flows, buys, referred = self._day(tables)
        h = self.history
        h.flows[d] = flows
        h.offer_units[d] = buys
        h.referred[d] = referred
        spend, units = reach.spend, reach.units
        if cm.commission_channel >= 0:
            c = cm.commission_channel
            units[c] = float(sum(referred))
            spend[c] = units[c] * cm.per_unit[c]
        h.channel_units[d] = units
        h.channel_spend[d] = spend
        h.channel_budget[d] = b
        self.counts = apply_flows(self.counts, h.flows[d])
        h.stages[d] = self.counts
        self.stock = reach.stock
        self.day = d

    def _day(self, tables):
        cm = self.cm
        G, O, K = cm.n_segments, cm.n_offers, cm.n_causes
        p_event = (tables.thr / 2.0**32).tolist()  # [profile][stage]
        cut_adv = tables.cut_adv.tolist()
        cut_lapse = tables.cut_lapse.tolist()
        cause_cum = tables.cause_cum.tolist()  # [segment][stage][cause]
        buy_cum = cm.buy_cum.tolist()
        price = cm.price.tolist()
        flows = [[[0] * (K + 1) for _ in range(N_STAGES)] for _ in range(G)]
        buys = [[0] * O for _ in range(G)]
        referred = [0] * G
        stage, acquired, converted, revenue = self.stage, self.acquired, self.converted, self.revenue
        rnd = self.random.random
        for i, (s, p) in enumerate(zip(stage, self.profile)):
            q = p_event[p][s]
            if q == 0.0 or rnd() >= q:
                continue
            g = p // RESPONSIVENESS_LEVELS
            u = rnd()
            pa = cut_adv[p][s]
            pl = cut_lapse[p][s]
            if u < pa:
                v = u / pa
                cum = cause_cum[g][s]
                k = 0
                while k < K - 1 and v >= cum[k]:
                    k += 1
                flows[g][s][k] += 1
                stage[i] = AWARE if s == LAPSED else s + 1
                if s == UNAWARE:
                    acquired[i] = k
                elif s == ENGAGED:
                    buys[g][OFFER_LEAD_MAGNET] += 1
                    revenue[i] += price[OFFER_LEAD_MAGNET]
                elif s == SUBSCRIBED:
                    converted[i] = k
                    buys[g][OFFER_ENTRY] += 1
                    revenue[i] += price[OFFER_ENTRY]
                    if acquired[i] == CAUSE_REFERRAL:
                        referred[g] += 1
                elif s == EXCITED:
                    buys[g][OFFER_CORE] += 1
                    revenue[i] += price[OFFER_CORE]
            elif u < pl:
                flows[g][s][K] += 1
                stage[i] = LAPSED
            else:
                v = (u - pl) / (1.0 - pl)
                o = 0
                while o < O - 1 and v >= buy_cum[o]:
                    o += 1
                buys[g][o] += 1
                revenue[i] += price[o]
        return np.array(flows, np.int64), np.array(buys, np.int64), np.array(referred, np.int64)


def simulate(compiled: Compiled, replication: int = 0) -> PythonEngine:
    """Run one replication to the horizon; the engine holds the history."""
    e = PythonEngine(compiled, replication)
    while not e.done:
        e.step()
    return e

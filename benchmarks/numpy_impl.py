"""The journey model vectorised with NumPy: the baseline the Numba kernel is measured against.

Written for speed in good faith, so that the kernel's advantage is a number rather
than a straw man:

- the day loop runs over fixed blocks of ``BLOCK`` customers (they stay in cache),
  with preallocated buffers and ``out=`` arguments; no Python loop over customers;
- segment, responsiveness level and stage are packed into one ``uint16`` *cell* per
  customer (``(segment * 16 + level) * 10 + stage``), so the day's event probability
  is a single gather from a table of 32-bit thresholds;
- the event test compares raw 32-bit random integers (two per ``random_raw`` word of
  a ``SFC64`` generator, the fastest bit generator NumPy has) with those thresholds,
  which is the kernel's own test ``(bits >> 32) < floor(P * 2**32)``;
- only the few customers something happens to (a few per thousand a day) go through
  the choice of outcome, cause and product, once per day for all blocks together.

The per-day tables (saturating reach, referrals, take rates: everything that couples
customers) come from :func:`cvj.model.channel_reach` and :func:`cvj.model.day_tables`,
exactly as the engine computes them; the per-customer work, which is what is being
compared, is written here from ``docs/model.md``. The random numbers are NumPy's, not
the kernel's counter-based ones, so the two agree in distribution, not draw by draw
(``tests/test_benchmark_models.py`` checks that).

Per-customer state is 8 bytes, as in the kernel: ``cell`` (uint16), ``acquired`` and
``converted`` (uint8 cause ids, 255 for none) and ``revenue`` (float32).
"""

from __future__ import annotations

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

#: customers per block of the day loop (64 Ki: the block's buffers fit in L2 cache)
BLOCK = 1 << 16
NONE = 255
_U32_MAX = np.uint64(0xFFFFFFFF)


class NumpyEngine:
    """The customers of one (scenario, replication), advanced one day per :meth:`step`.

    Same interface as :class:`cvj.engine.Engine` where the benchmarks need it
    (``step``, ``done``, ``day``, ``history``, ``counts``).

    Parameters
    ----------
    compiled : Compiled
    replication : int
        With the scenario's seed, seeds NumPy's generator (``SeedSequence([seed, r])``).
    block : int
        Customers per block of the day loop.
    """

    def __init__(self, compiled: Compiled, replication: int = 0, block: int = BLOCK):
        cm = compiled
        self.cm = cm
        self.replication = int(replication)
        self.block = int(block)
        N, D, G, C, O, K = cm.customers, cm.days, cm.n_segments, cm.n_channels, cm.n_offers, cm.n_causes
        self.rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence([cm.seed, self.replication])))
        self.cell = np.empty(N, np.uint16)
        self.acquired = np.full(N, NONE, np.uint8)
        self.converted = np.full(N, NONE, np.uint8)
        self.revenue = np.zeros(N, np.float32)
        start = self._init_cells()
        b = min(self.block, N)
        self._thr = np.empty(b, np.uint32)
        self._hit = np.empty(b, np.bool_)
        self.history = History(
            stages=np.zeros((D + 1, G, N_STAGES), np.int64),
            flows=np.zeros((D + 1, G, N_STAGES, K + 1), np.int64),
            channel_units=np.zeros((D + 1, C)),
            channel_spend=np.zeros((D + 1, C)),
            channel_budget=np.zeros((D + 1, C)),
            offer_units=np.zeros((D + 1, G, O), np.int64),
            referred=np.zeros((D + 1, G), np.int64),
        )
        self.history.stages[0] = start
        self.counts = self.history.stages[0].copy()
        self.stock = np.zeros(C)
        self.day = 0

    @property
    def state_nbytes(self) -> int:
        """Bytes of per-customer state."""
        return self.cell.nbytes + self.acquired.nbytes + self.converted.nbytes + self.revenue.nbytes

    @property
    def done(self) -> bool:
        return self.day >= self.cm.days

    def _init_cells(self) -> np.ndarray:
        """Draw starting stages and responsiveness levels; return customers by (segment, stage)."""
        cm = self.cm
        G = cm.n_segments
        cut = cm.stage_cum[: N_STAGES - 1]
        counts = np.zeros(G * N_STAGES, np.int64)
        for lo in range(0, cm.customers, self.block):
            hi = min(cm.customers, lo + self.block)
            seg = np.searchsorted(cm.seg_end, np.arange(lo, hi), side="right")
            stage = np.searchsorted(cut, self.rng.random(hi - lo), side="right")
            level = self.rng.integers(0, RESPONSIVENESS_LEVELS, hi - lo)
            self.cell[lo:hi] = (seg * RESPONSIVENESS_LEVELS + level) * N_STAGES + stage
            counts += np.bincount(seg * N_STAGES + stage, minlength=G * N_STAGES)
        return counts.reshape(G, N_STAGES)

    def step(self, budgets: np.ndarray | None = None) -> None:
        """Advance one day. ``budgets`` (per channel) replaces the scenario's plan."""
        if self.done:
            raise RuntimeError(f"the run is over: all {self.cm.days} days were simulated")
        cm = self.cm
        d = self.day + 1
        b = cm.budget[d].copy() if budgets is None else np.asarray(budgets, dtype=np.float64)
        reach = channel_reach(cm, self.counts, self.stock, b)
        tables = day_tables(cm, self.counts, reach)
        # thresholds indexed by cell; P(event) < 1 so they fit in 32 bits (clip the 2**32 edge)
        thr = np.minimum(tables.thr.reshape(-1), _U32_MAX).astype(np.uint32)
        hits = self._events(thr)
        flows, buys, referred = self._outcomes(hits, tables)
        h = self.history
        h.flows[d] = flows
        h.offer_units[d] = buys
        h.referred[d] = referred
        spend, units = reach.spend, reach.units
        if cm.commission_channel >= 0:
            c = cm.commission_channel
            units[c] = float(referred.sum())
            spend[c] = units[c] * cm.per_unit[c]
        h.channel_units[d] = units
        h.channel_spend[d] = spend
        h.channel_budget[d] = b
        self.counts = apply_flows(self.counts, flows)
        h.stages[d] = self.counts
        self.stock = reach.stock
        self.day = d

    def _events(self, thr: np.ndarray) -> np.ndarray:
        """Ids of the customers something happens to today (the hot loop)."""
        n = self.cell.shape[0]
        raw = self.rng.bit_generator.random_raw
        found = []
        for lo in range(0, n, self.block):
            hi = min(n, lo + self.block)
            m = hi - lo
            t = self._thr[:m]
            np.take(thr, self.cell[lo:hi], out=t, mode="clip")
            bits = raw((m + 1) >> 1).view(np.uint32)[:m]
            hit = self._hit[:m]
            np.less(bits, t, out=hit)
            idx = np.flatnonzero(hit)
            if idx.size:
                found.append(idx + lo)
        return np.concatenate(found) if found else np.empty(0, np.intp)

    def _outcomes(self, i: np.ndarray, tables):
        """Outcome, cause and product of today's events, and the state changes they make."""
        cm = self.cm
        G, O, K = cm.n_segments, cm.n_offers, cm.n_causes
        flows = np.zeros(G * N_STAGES * (K + 1), np.int64)
        buys = np.zeros(G * O, np.int64)
        referred = np.zeros(G, np.int64)
        if i.size == 0:
            return flows.reshape(G, N_STAGES, K + 1), buys.reshape(G, O), referred
        cell = self.cell[i].astype(np.intp)
        s = cell % N_STAGES
        p = cell // N_STAGES
        g = p // RESPONSIVENESS_LEVELS
        u = self.rng.random(i.size)
        pa = tables.cut_adv.reshape(-1)[cell]
        pl = tables.cut_lapse.reshape(-1)[cell]
        adv = u < pa
        lapse = ~adv & (u < pl)
        repeat = ~(adv | lapse)

        # advances: the cause walks the cumulative shares with u / pa
        ia, sa, ga = i[adv], s[adv], g[adv]
        cum = tables.cause_cum[ga, sa, : K - 1]
        k = ((u[adv] / pa[adv])[:, None] >= cum).sum(axis=1)
        flows += np.bincount((ga * N_STAGES + sa) * (K + 1) + k, minlength=flows.size)
        self.cell[ia] = p[adv] * N_STAGES + np.where(sa == LAPSED, AWARE, sa + 1)
        first = sa == UNAWARE
        self.acquired[ia[first]] = k[first]
        lead = sa == ENGAGED
        entry = sa == SUBSCRIBED
        core = sa == EXCITED
        self.converted[ia[entry]] = k[entry]
        referral = entry & (self.acquired[ia] == CAUSE_REFERRAL)
        referred += np.bincount(ga[referral], minlength=G)
        for mask, offer in ((lead, OFFER_LEAD_MAGNET), (entry, OFFER_ENTRY), (core, OFFER_CORE)):
            buys += np.bincount(ga[mask] * O + offer, minlength=buys.size)
            self.revenue[ia[mask]] += np.float32(cm.price[offer])

        # lapses
        il, sl, gl = i[lapse], s[lapse], g[lapse]
        flows += np.bincount((gl * N_STAGES + sl) * (K + 1) + K, minlength=flows.size)
        self.cell[il] = p[lapse] * N_STAGES + LAPSED

        # repeat purchases: the product walks the cumulative shares with (u - pl) / (1 - pl)
        ir, gr = i[repeat], g[repeat]
        v = (u[repeat] - pl[repeat]) / (1.0 - pl[repeat])
        o = (v[:, None] >= cm.buy_cum[None, : O - 1]).sum(axis=1)
        buys += np.bincount(gr * O + o, minlength=buys.size)
        self.revenue[ir] += cm.price[o].astype(np.float32)
        return flows.reshape(G, N_STAGES, K + 1), buys.reshape(G, O), referred


def simulate(compiled: Compiled, replication: int = 0) -> NumpyEngine:
    """Run one replication to the horizon; the engine holds the history."""
    e = NumpyEngine(compiled, replication)
    while not e.done:
        e.step()
    return e

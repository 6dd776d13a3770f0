"""The journey model vectorised with NumPy: the baseline the Numba kernel is measured against.

Written for speed in good faith, so that the kernel's advantage is a number rather
than a straw man:

- the day loop runs over fixed blocks of ``BLOCK`` customers (they stay in cache),
  with preallocated buffers and ``out=`` arguments; no Python loop over customers;
- a customer's table cell is one flat index ``row * cols + col``, with the column
  looked up from its (stage, order class) slot and its days since the last activity
  (``colf[slot * 512 + min(day - clock, 511)]``), so the day's event probability is
  one gather from a table of 32-bit thresholds;
- the event test compares raw 32-bit random integers (two per ``random_raw`` word of
  a ``SFC64`` generator, the fastest bit generator NumPy has) with those thresholds,
  which is the kernel's own test ``(bits >> 32) < floor(P * 2**32)``;
- only the few customers something happens to (a few per thousand a day) go through
  the choice of outcome, cause and product, once per day for all blocks together;
- the audience cells the next day's channels need (customers by segment, flag cell
  and column as of tomorrow) are one more blocked pass of gathers and a ``bincount``,
  only when the scenario has audiences (``Compiled.count_cells``).

The per-day tables (saturating reach, referrals, take rates, audiences: everything
that couples customers) come from :func:`cvj.model.channel_reach` and
:func:`cvj.model.day_tables`, and the day's dashboard figures from
:func:`cvj.engine.realised_funnel`, exactly as the engine computes them; the
per-customer work, which is what is being compared, is written here from the
kernel's documented model (``kernels/journey.py``'s docstring and ``docs/model.md``)
without calling it. The random numbers are NumPy's, not the kernel's counter-based
ones, so the two agree in distribution, not draw by draw
(``tests/test_benchmark_models.py`` checks that).

Per-customer state is the kernel's 15 bytes (without its bitmap of who is past unaware:
this version looks at everyone every day): ``stage``, ``sx`` (slot), ``orders``,
``acquired``, ``converted`` (uint8), ``row``, ``clock``, ``last_order`` (uint16) and
``revenue`` (float32).
"""

from __future__ import annotations

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

#: customers per block of the day loop (64 Ki: the block's buffers fit in L2 cache)
BLOCK = 1 << 16
NONE = 255
NEVER = 0xFFFF
MAX_ORDERS = 255  # orders are a uint8 that saturates
_U32_MAX = np.uint64(0xFFFFFFFF)
_L = MAX_DWELL + 1  # days per slot in the flat column table


def funnel_key(seed: int, replication: int) -> int:
    """A 64-bit key for :func:`cvj.engine.realised_funnel`'s generator (NumPy's, not the kernel's)."""
    return int(np.random.SeedSequence([seed, replication, 0xF0]).generate_state(1, np.uint64)[0])


class NumpyEngine:
    """The customers of one (scenario, replication), advanced one day per :meth:`step`.

    Same interface as :class:`cvj.engine.Engine` where the benchmarks need it
    (``step``, ``done``, ``day``, ``history``, ``counts``, ``cells``).

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
        if cm.billing is not None or cm.scenario.referrals.model == "network":
            raise ValueError("the NumPy version models the default shop: no subscription, no referral network")
        self.cm = cm
        self.replication = int(replication)
        self.block = int(block)
        N, D, G, C, O, K = cm.customers, cm.days, cm.n_segments, cm.n_channels, cm.n_offers, cm.n_causes
        GB = G * cm.n_bands
        self.rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence([cm.seed, self.replication])))
        self.key = funnel_key(cm.seed, self.replication)
        lay = cm.layout
        self.n_cols = lay.n_cols
        self._colf = np.ascontiguousarray(lay.colf, dtype=np.intp)
        self._sx_of = lay.sx_of
        self._fb_of = cm.fb_of.astype(np.intp)
        self._crow_of = cm.crow_of.astype(np.intp)
        self._crow_base = self._crow_of * self.n_cols  # first flat cell of each row's (segment, flag cell)
        self.stage = np.empty(N, np.uint8)
        self.row = np.empty(N, np.uint16)
        self.sx = np.empty(N, np.uint8)
        self.orders = np.zeros(N, np.uint8)
        self.clock = np.zeros(N, np.uint16)
        self.last_order = np.full(N, NEVER, np.uint16)
        self.acquired = np.full(N, NONE, np.uint8)
        self.converted = np.full(N, NONE, np.uint8)
        self.revenue = np.zeros(N, np.float32)
        b = min(self.block, N)
        self._a = np.empty(b, np.intp)
        self._b = np.empty(b, np.intp)
        self._thr = np.empty(b, np.uint32)
        self._hit = np.empty(b, np.bool_)
        self._init_customers()
        self.history = History(
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
        self.history.stages[0] = self._count_stages()
        self.counts = self.history.stages[0].copy()
        self.cells = self._count_cells(1) if cm.count_cells else None
        self.stock = np.zeros(C)
        self.day = 0

    # ------------------------------------------------------------------ state

    STATE = ("stage", "row", "sx", "orders", "clock", "last_order", "acquired", "converted", "revenue")

    @property
    def state_nbytes(self) -> int:
        """Bytes of per-customer state."""
        return sum(getattr(self, name).nbytes for name in self.STATE)

    @property
    def done(self) -> bool:
        return self.day >= self.cm.days

    def _init_customers(self) -> None:
        """Draw starting stages, responsiveness levels and age bands; segments are
        contiguous blocks; email permission comes with the starting stage."""
        cm = self.cm
        W, B = cm.width, cm.n_bands
        stage_cut = cm.stage_cum[: N_STAGES - 1]
        band_cut = cm.band_cum[:, : B - 1]
        for lo in range(0, cm.customers, self.block):
            hi = min(cm.customers, lo + self.block)
            m = hi - lo
            seg = np.searchsorted(cm.seg_end, np.arange(lo, hi), side="right")
            stage = np.searchsorted(stage_cut, self.rng.random(m), side="right")
            level = self.rng.integers(0, RESPONSIVENESS_LEVELS, m)
            band = (self.rng.random(m)[:, None] >= band_cut[seg]).sum(axis=1) if B > 1 else 0
            self.stage[lo:hi] = stage
            self.row[lo:hi] = (seg * RESPONSIVENESS_LEVELS + level) * W + band * 2 + cm.permitted[stage]
            self.orders[lo:hi] = cm.start_orders[stage]
            self.sx[lo:hi] = self._sx_of[stage, cm.start_orders[stage]]

    def _count_stages(self) -> np.ndarray:
        """Customers by (segment x band, stage)."""
        GB = self.cm.n_segments * self.cm.n_bands
        out = np.zeros(GB * N_STAGES, np.int64)
        for lo in range(0, self.stage.shape[0], self.block):
            hi = lo + self.block
            out += np.bincount(self._fb_of[self.row[lo:hi]] * N_STAGES + self.stage[lo:hi], minlength=out.size)
        return out.reshape(GB, N_STAGES)

    def _columns(self, lo: int, hi: int, day: int, out: np.ndarray) -> np.ndarray:
        """Table column of customers ``lo:hi`` on ``day`` (into ``out``; uses ``self._b``)."""
        m = hi - lo
        dw = self._b[:m]
        np.subtract(np.intp(day), self.clock[lo:hi], out=dw)
        np.minimum(dw, MAX_DWELL, out=dw)
        col = out[:m]
        np.multiply(self.sx[lo:hi], np.intp(_L), out=col)
        np.add(col, dw, out=dw)
        np.take(self._colf, dw, out=col, mode="clip")
        return col

    def _count_cells(self, day: int) -> np.ndarray:
        """Customers by (segment x flag cell, column) as of ``day``: what tomorrow's
        audiences count (the kernel counts them at the end of each day)."""
        cm = self.cm
        n = cm.n_segments * cm.width * self.n_cols
        out = np.zeros(n, np.int64)
        for lo in range(0, cm.customers, self.block):
            hi = min(cm.customers, lo + self.block)
            col = self._columns(lo, hi, day, self._a)
            idx = self._b[: hi - lo]
            np.take(self._crow_base, self.row[lo:hi], out=idx, mode="clip")
            np.add(idx, col, out=idx)
            out += np.bincount(idx, minlength=n)
        return out.reshape(cm.n_segments * cm.width, self.n_cols)

    # ------------------------------------------------------------------ the day

    def step(self, budgets: np.ndarray | None = None) -> None:
        """Advance one day. ``budgets`` (per channel) replaces the scenario's plan."""
        if self.done:
            raise RuntimeError(f"the run is over: all {self.cm.days} days were simulated")
        cm = self.cm
        d = self.day + 1
        b = cm.budget[d].copy() if budgets is None else np.asarray(budgets, dtype=np.float64)
        cells_today = self.cells  # today's audiences (tomorrow's are counted below)
        reach = channel_reach(cm, self.counts, self.stock, b, cells_today)
        tables = day_tables(cm, self.counts, reach, d)
        # thresholds by flat (row, column); P(event) < 1 so they fit in 32 bits (clip the 2**32 edge)
        thr = np.minimum(tables.thr.reshape(-1), _U32_MAX).astype(np.uint32)
        hits, flat = self._events(thr, d)
        flows, buys, first_touch, unsubs = self._outcomes(hits, flat, tables, d)
        if self.cells is not None:
            self.cells = self._count_cells(d + 1)
        h = self.history
        h.flows[d] = flows
        h.unsubscribes[d] = unsubs
        h.offer_units[d] = buys
        h.first_touch[d] = first_touch
        spend, units = reach.spend, reach.units
        if cm.commission_channel >= 0:
            c = cm.commission_channel
            units[c] = float(first_touch[:, CAUSE_REFERRAL].sum())  # the programme pays per referred sale
            spend[c] = units[c] * cm.per_unit[c]
        h.channel_units[d] = units
        h.channel_spend[d] = spend
        h.channel_budget[d] = b
        h.funnel[d] = realised_funnel(cm, reach, tables, int(unsubs.sum()), self.key, d, cells_today)
        self.counts = apply_flows(self.counts, flows)
        h.stages[d] = self.counts
        self.stock = reach.stock
        self.day = d

    def _events(self, thr: np.ndarray, day: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids of the customers something happens to today and their flat table cells
        (the hot loop)."""
        n = self.stage.shape[0]
        raw = self.rng.bit_generator.random_raw
        nc = np.intp(self.n_cols)
        found, cells = [], []
        for lo in range(0, n, self.block):
            hi = min(n, lo + self.block)
            m = hi - lo
            col = self._columns(lo, hi, day, self._a)
            flat = self._b[:m]
            np.multiply(self.row[lo:hi], nc, out=flat)
            np.add(flat, col, out=flat)
            t = self._thr[:m]
            np.take(thr, flat, out=t, mode="clip")
            bits = raw((m + 1) >> 1).view(np.uint32)[:m]
            hit = self._hit[:m]
            np.less(bits, t, out=hit)
            idx = np.flatnonzero(hit)
            if idx.size:
                found.append(idx + lo)
                cells.append(flat[idx])
        if not found:
            return np.empty(0, np.intp), np.empty(0, np.intp)
        return np.concatenate(found), np.concatenate(cells)

    def _outcomes(self, i: np.ndarray, flat: np.ndarray, tables, day: int):
        """Outcome, cause and product of today's events, and the state changes they make."""
        cm = self.cm
        G, O, K = cm.n_segments, cm.n_offers, cm.n_causes
        GB = G * cm.n_bands
        flows = np.zeros(GB * N_STAGES * (K + 1), np.int64)
        unsubs = np.zeros(GB * N_STAGES, np.int64)
        buys = np.zeros(GB * O, np.int64)
        first_touch = np.zeros(GB * (K + 1), np.int64)
        shape = (GB, N_STAGES, K + 1), (GB, N_STAGES), (GB, O), (GB, K + 1)
        if i.size == 0:
            return flows.reshape(shape[0]), buys.reshape(shape[2]), first_touch.reshape(shape[3]), unsubs.reshape(shape[1])
        nc = self.n_cols
        row = flat // nc
        col = flat % nc
        s = self.stage[i].astype(np.intp)
        fb = self._fb_of[row]
        u = self.rng.random(i.size)
        pa = tables.cut_adv.reshape(-1)[flat]
        pl = tables.cut_lapse.reshape(-1)[flat]
        pu = tables.cut_unsub.reshape(-1)[flat]
        adv = u < pa
        lapse = ~adv & (u < pl)
        unsub = ~adv & ~lapse & (u < pu)
        repeat = ~(adv | lapse | unsub)
        gaps = self.history.gaps

        # advances: the cause walks the cumulative shares with u / pa
        ia, sa, fa, ra, ca = i[adv], s[adv], fb[adv], row[adv], col[adv]
        cum = tables.cause_cum[self._crow_of[ra], ca, : K - 1]
        k = ((u[adv] / pa[adv])[:, None] >= cum).sum(axis=1)
        flows += np.bincount((fa * N_STAGES + sa) * (K + 1) + k, minlength=flows.size)
        new = np.where(sa == LAPSED, AWARE, sa + 1)
        self.stage[ia] = new
        self.clock[ia] = day
        first = sa == UNAWARE
        self.acquired[ia[first]] = k[first]
        if self.cm.ref_block:  # a customer acquired by referral (cause 1) moves to its own rows
            self.row[ia[first & (k == 1)]] += np.uint16(self.cm.ref_block)
        lead = sa == ENGAGED
        self.row[ia[lead]] |= 1  # the lead magnet grants the email permission
        entry = sa == SUBSCRIBED
        core = sa == EXCITED
        self.converted[ia[entry]] = k[entry]
        # conversions by the cause that acquired the customer (K: past unaware at the start)
        a = self.acquired[ia[entry]].astype(np.intp)
        first_touch += np.bincount(fa[entry] * (K + 1) + np.where(a == NONE, K, a), minlength=first_touch.size)
        for mask, offer in ((lead, OFFER_LEAD_MAGNET), (entry, OFFER_ENTRY), (core, OFFER_CORE)):
            buys += np.bincount(fa[mask] * O + offer, minlength=buys.size)
            self.revenue[ia[mask]] += np.float32(cm.price[offer])
        self._order(ia[entry | core], day, gaps)
        self.sx[ia] = self._sx_of[new, self.orders[ia]]

        # lapses
        il = i[lapse]
        flows += np.bincount((fb[lapse] * N_STAGES + s[lapse]) * (K + 1) + K, minlength=flows.size)
        self.stage[il] = LAPSED
        self.clock[il] = day
        self.sx[il] = self._sx_of[LAPSED, self.orders[il]]

        # unsubscribes: the permission goes, the customer stays where it is
        iu = i[unsub]
        unsubs += np.bincount(fb[unsub] * N_STAGES + s[unsub], minlength=unsubs.size)
        self.row[iu] &= np.uint16(0xFFFE)

        # repeat purchases: the product walks the cumulative shares with (u - pu) / (1 - pu)
        ir = i[repeat]
        v = (u[repeat] - pu[repeat]) / (1.0 - pu[repeat])
        o = (v[:, None] >= tables.buy_cum[col[repeat], : O - 1]).sum(axis=1)
        buys += np.bincount(fb[repeat] * O + o, minlength=buys.size)
        self.revenue[ir] += cm.price[o].astype(np.float32)
        self.clock[ir] = day
        self._order(ir, day, gaps)
        self.sx[ir] = self._sx_of[s[repeat], self.orders[ir]]
        return flows.reshape(shape[0]), buys.reshape(shape[2]), first_touch.reshape(shape[3]), unsubs.reshape(shape[1])

    def _order(self, i: np.ndarray, day: int, gaps: np.ndarray) -> None:
        """Count orders of customers ``i``: the gap since each one's previous order (by the
        number of earlier orders, capped), then the new order count and day."""
        orders = self.orders[i]
        last = self.last_order[i]
        again = last != NEVER
        cls = np.minimum(orders[again], ORDER_CLASSES - 1).astype(np.intp)
        gap = np.minimum(day - last[again].astype(np.intp), MAX_GAP)
        np.add.at(gaps, (cls, gap), 1)
        self.orders[i] = np.minimum(orders.astype(np.intp) + 1, MAX_ORDERS)
        self.last_order[i] = day


def simulate(compiled: Compiled, replication: int = 0) -> NumpyEngine:
    """Run one replication to the horizon; the engine holds the history."""
    e = NumpyEngine(compiled, replication)
    while not e.done:
        e.step()
    return e

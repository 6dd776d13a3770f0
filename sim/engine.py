"""Orchestration of one simulated run: state arrays, the day loop, the daily aggregates.

:class:`Engine` owns the customers' arrays of one (scenario, replication) and advances
them one day per :meth:`Engine.step`; the Mesa model and the plain run both drive it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from .errors import ResourceError
from .interrupts import held
from .model import MAX_DWELL, PRICING_CODE, Compiled, channel_reach, day_tables
from .network import WordOfMouth, compile_network
from .stages import CAUSE_REFERRAL, LAPSED, N_STAGES, PROMOTER

#: repeat orders are counted by earlier orders (1 .. ORDER_CLASSES - 1, the last class
#: "that many or more") and days since the previous order (capped at MAX_GAP)
ORDER_CLASSES = 8
MAX_GAP = 400
#: a channel's daily dashboard figures: what it bought and what that turned into
FUNNEL = ("audience", "impressions", "clicks", "sessions", "sends", "opens", "unsubscribes")

#: bytes of kernel state per customer: stage, slot, orders, acquired, converted (1 each),
#: row, clock and last order (2 each), revenue (4), one bit of the active bitmap (rounded
#: up to a byte here, for the memory check)
STATE_BYTES = 16
#: extra bytes per customer and replication for the customers table: 9 uint16 days (18)
#: and 8 uint8 causes (8) + the Arrow columns built from them and the state (96); the
#: memory check, ``cvj run --help`` and :func:`cvj.run` all use this one figure
CUSTOMERS_TABLE_BYTES = 18 + 8 + 96


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_needed(customers: int, customers_table: bool = False, replications: int = 1) -> int:
    """Bytes a run needs: one replication's state at a time, plus every replication's
    customers table (kept until written)."""
    table = CUSTOMERS_TABLE_BYTES * replications if customers_table else 0
    return customers * (STATE_BYTES + table)


def check_memory(
    customers: int, customers_table: bool = False, budget: int | None = None, replications: int = 1
) -> None:
    """Refuse up front a population that would not fit in this machine's memory."""
    need = memory_needed(customers, customers_table, replications)
    have = int(0.8 * (available_memory() if budget is None else budget))
    if need > have:
        what = " with a customers table" if customers_table else ""
        raise ResourceError(
            f"needs about {need / 2**30:.1f} GiB{what}, but only {have / 2**30:.1f} GiB "
            "is available on this machine; lower market.customers",
            "market.customers",
            customers,
        )


@contextlib.contextmanager
def use_threads(n: int | None):
    """Run parallel kernels on ``n`` threads inside the block (None: all cores)."""
    if n is None:
        yield
        return
    from . import kernels

    top = kernels.max_threads()
    if not 1 <= n <= top:
        raise ResourceError(f"must be between 1 and {top} on this machine", "threads", n)
    before = kernels.get_threads()
    kernels.set_threads(n)
    try:
        yield
    finally:
        kernels.set_threads(before)


@dataclass
class History:
    """Daily aggregates of one run; row ``d`` is day ``d`` (row 0: the starting state)."""

    stages: np.ndarray  # int64[D+1, G, 10] customers by segment and stage at the end of the day
    flows: np.ndarray  # int64[D+1, G*B, 10, K+1] moves out of each stage by cause (last: lapse)
    channel_units: np.ndarray  # float64[D+1, C]
    channel_spend: np.ndarray  # float64[D+1, C]
    channel_budget: np.ndarray  # float64[D+1, C] the budget in force that day
    offer_units: np.ndarray  # int64[D+1, G, O]
    first_touch: np.ndarray  # int64[D+1, G*B, K+1] conversions by the cause that acquired the customer (last: before day 1)
    unsubscribes: np.ndarray  # int64[D+1, G*B, 10] email permissions lost, by stage
    funnel: np.ndarray  # float64[D+1, C, len(FUNNEL)] each channel's dashboard figures (see FUNNEL)
    gaps: np.ndarray  # int64[order classes, MAX_GAP + 1] repeat orders by earlier orders and days since the previous one
    #: int64[D+1, G*B, K+3] first payments of a subscription by acquiring cause (K: before
    #: day 1); K+1, K+2: trials ended unpaid, paid
    subs: np.ndarray

    @property
    def referred(self) -> np.ndarray:
        """int64[D+1, G*B] conversions of customers acquired by referral (the referral
        programme's sales): the referral column of :attr:`first_touch`."""
        return self.first_touch[:, :, CAUSE_REFERRAL]

    @property
    def first_payments(self) -> np.ndarray:
        """int64[D+1, G*B] subscribers' first payments."""
        return self.subs[:, :, :-2].sum(axis=-1)


class Engine:
    """The customers of one (scenario, replication), advanced one day per :meth:`step`.

    Parameters
    ----------
    compiled : Compiled
    replication : int
        Selects the random stream with the seed: replication ``r`` of a run equals a
        run asked for replication ``r`` alone.
    track_customers : bool
        Keep the day each stage was reached (9 more uint16 per customer) for the
        customers table.
    """

    def __init__(self, compiled: Compiled, replication: int = 0, track_customers: bool = False):
        # the kernels compile on their first call: an interrupt waits for the set-up's
        # end rather than land inside Numba's compiler (cvj.interrupts)
        with held():
            self._setup(compiled, replication, track_customers)

    def _setup(self, compiled: Compiled, replication: int, track_customers: bool) -> None:
        from . import kernels  # numba loads on first use, so validating a scenario starts fast

        self._k = kernels
        cm = compiled
        self.cm = cm
        self.replication = int(replication)
        self.track = bool(track_customers)
        N, D, G, C, O, K = cm.customers, cm.days, cm.n_segments, cm.n_channels, cm.n_offers, cm.n_causes
        self.key = np.uint64(kernels.stream_key(np.uint64(cm.seed), np.uint64(self.replication)))
        GB = G * cm.n_bands
        self.stage = np.empty(N, np.uint8)
        self.row = np.empty(N, np.uint16)
        self.sx = np.empty(N, np.uint8)
        self.orders = np.empty(N, np.uint8)
        self.clock = np.empty(N, np.uint16)
        self.last_order = np.empty(N, np.uint16)
        self.acquired = np.empty(N, np.uint8)
        self.converted = np.empty(N, np.uint8)
        self.revenue = np.empty(N, np.float32)
        self.reached = np.empty((N if self.track else 0, 9), np.uint16)
        self.reached_by = np.full((N if self.track else 0, 8), 255, np.uint8)
        # bit i % 64 of word i // 64: customer i is past unaware (or every customer, when
        # the unaware are not thinned); see thinning_level
        self.active = np.empty((N + 63) // 64, np.uint64)
        self.unaware_column = unaware_column(cm)
        kernels.init_customers(
            self.stage,
            self.row,
            self.sx,
            self.orders,
            self.clock,
            self.last_order,
            self.acquired,
            self.converted,
            self.revenue,
            self.reached,
            self.track,
            self.key,
            cm.seg_end,
            cm.stage_cum,
            cm.band_cum,
            cm.permitted,
            cm.start_orders,
            cm.width,
            cm.layout.sx_of,
            cm.phase,
            self.active,
            self.unaware_column >= 0,
        )
        self._crow_of = cm.crow_of
        self._fb_of = cm.fb_of
        nc = kernels.max_threads()  # the kernel's counts: one row per thread, summed exactly
        self._flows = np.zeros((nc, GB, N_STAGES, K + 2), np.int64)
        self._buys = np.zeros((nc, GB, O), np.int64)
        self._first_touch = np.zeros((nc, GB, K + 1), np.int64)
        self._cells = np.zeros((nc, G * cm.width if cm.count_cells else 0, cm.layout.n_cols), np.int32)
        self._gaps = np.zeros((nc, ORDER_CLASSES, MAX_GAP + 1), np.int64)
        self._subs = np.zeros((nc, GB, K + 3), np.int64)
        self.cells = None  # customers by (segment x flag cell, column) for tomorrow, when counted
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
            subs=np.zeros((D + 1, GB, K + 3), np.int64),
        )
        # one pass over the customers counts both (the audiences as of day 1)
        stages, cells = self._count(1, cells=cm.count_cells)
        self.history.stages[0] = stages
        self.counts = stages.copy()
        if cm.count_cells:
            self.cells = cells
        self.stock = np.zeros(C)
        self.day = 0
        # word of mouth on a social network: events found before each day, applied after it
        net = compile_network(cm)
        self.referrals = WordOfMouth(self, net) if net is not None else None

    def _count(self, day: int, cells: bool) -> tuple[np.ndarray, np.ndarray]:
        cm = self.cm
        nc = self._k.max_threads()
        stages = np.empty((nc, cm.n_segments * cm.n_bands, N_STAGES), np.int64)
        out = np.empty((nc, cm.n_segments * cm.width, cm.layout.n_cols if cells else 0), np.int64)
        self._k.count_customers(
            self.stage, self.row, self.sx, self.clock, self._fb_of, self._crow_of, cm.layout.colf, day, stages, out
        )
        return stages.sum(axis=0), out.sum(axis=0)

    def _count_stages(self) -> np.ndarray:
        """Customers by (segment x band, stage), counted (not carried from the flows)."""
        return self._count(0, cells=False)[0]

    @property
    def profile(self) -> np.ndarray:
        """Each customer's segment * 16 + responsiveness level."""
        # modulo: a referred customer's row lies in the block after everyone's (ref_block)
        return ((self.row // self.cm.width) % (self.cm.n_segments * 16)).astype(np.uint8)

    def _count_cells(self, day: int) -> np.ndarray:
        """Customers by (segment x flag cell, column) as of ``day``: the start of the
        audience counts (the kernel then reports each day's changes to them)."""
        return self._count(day, cells=True)[1]

    @property
    def segment(self) -> np.ndarray:
        """Each customer's segment id."""
        return ((self.row // (16 * self.cm.width)) % self.cm.n_segments).astype(np.uint8)

    @property
    def band(self) -> np.ndarray:
        """Each customer's age band id."""
        return ((self.row % self.cm.width) >> 1).astype(np.uint8)

    @property
    def permission(self) -> np.ndarray:
        """Whether each customer may be emailed."""
        return (self.row & 1).astype(bool)

    @property
    def done(self) -> bool:
        return self.day >= self.cm.days

    def planned_budgets(self, day: int | None = None) -> np.ndarray:
        """The scenario's budget per channel for ``day`` (default: the next day)."""
        d = self.day + 1 if day is None else day
        return self.cm.budget[d].copy()

    def step(self, budgets: np.ndarray | None = None) -> None:
        """Advance one day. ``budgets`` (per channel) replaces the scenario's plan.
        Ctrl-C or SIGTERM during the day (and the first day's compilation) takes effect
        when the day is over (cvj.interrupts)."""
        with held():
            self._step(budgets)

    def _step(self, budgets: np.ndarray | None) -> None:
        if self.done:
            raise RuntimeError(f"the run is over: all {self.cm.days} days were simulated")
        cm = self.cm
        d = self.day + 1
        b = self.planned_budgets(d) if budgets is None else np.asarray(budgets, dtype=np.float64)
        cells_today = self.cells  # today's audiences (the kernel counts tomorrow's)
        reach = channel_reach(cm, self.counts, self.stock, b, cells_today)
        tables = day_tables(cm, self.counts, reach, d)
        lay = cm.layout
        if self.referrals is not None:
            self.referrals.before_day(d)
        self._k.advance_day(
            self.stage,
            self.row,
            self.sx,
            self.orders,
            self.clock,
            self.last_order,
            self.acquired,
            self.converted,
            self.revenue,
            self.reached,
            self.reached_by,
            self.track,
            self.key,
            d,
            lay.colf,
            lay.sx_of,
            self._crow_of,
            self._fb_of,
            tables.thr,
            tables.cut_adv,
            tables.cut_lapse,
            tables.cut_unsub,
            tables.cause_cum,
            tables.buy_cum,
            cm.price,
            cm.memo,
            cm.start_offer,
            cm.first_pay_at,
            cm.ref_block,
            self._flows,
            self._buys,
            self._first_touch,
            self._cells,
            self._gaps,
            self._subs,
            self.active,
            thinning_level(tables.thr, self.unaware_column),
        )
        all_flows = self._flows.sum(axis=0)
        if self._cells.shape[1]:
            # the kernel counts only what changes (customers who move cell): tomorrow's
            # audiences are today's plus the changes (a new array: today's stay in use)
            self.cells = self.cells + self._cells.sum(axis=0, dtype=np.int64)
        if self.referrals is not None:
            self.referrals.after_day(d, all_flows, self.cells)
        flows = all_flows[..., :-1]
        h = self.history
        h.flows[d] = flows
        h.unsubscribes[d] = all_flows[..., -1]
        h.gaps += self._gaps.sum(axis=0)
        h.offer_units[d] = self._buys.sum(axis=0)
        h.first_touch[d] = self._first_touch.sum(axis=0)
        h.subs[d] = self._subs.sum(axis=0)
        spend = reach.spend
        units = reach.units
        if cm.commission_channel >= 0:
            c = cm.commission_channel
            # the programme pays per referred sale, or per referred subscriber's first payment
            paid = h.subs[d, :, CAUSE_REFERRAL] if cm.pays_first_payment else h.referred[d]
            units[c] = float(paid.sum())
            # the referrer's commission, and (two-sided) the friend's discount on each
            # referred entry sale
            spend[c] = units[c] * cm.per_unit[c] + float(h.referred[d].sum()) * cm.friend_discount
        h.channel_units[d] = units
        h.channel_spend[d] = spend
        h.channel_budget[d] = b
        h.funnel[d] = realised_funnel(cm, reach, tables, h.unsubscribes[d].sum(), self.key, d, cells_today)
        self.counts = apply_flows(self.counts, flows)
        h.stages[d] = self.counts
        self.stock = reach.stock
        self.day = d


def unaware_column(cm: Compiled) -> int:
    """The column every unaware customer reads on every day, or -1 where the unaware
    cannot be thinned: their slot has columns by days (an audience or profile by days
    since day 0), or their clocks differ (a billing phase)."""
    lay = cm.layout
    L = MAX_DWELL + 1
    x = int(lay.sx_of[0, int(cm.start_orders[0])])
    cols = lay.colf[x * L : (x + 1) * L]
    if cm.phase[0] > 0 or (cols != cols[0]).any():
        return -1
    return int(cols[0])


def thinning_level(thr: np.ndarray, column: int) -> int:
    """The day kernel's thinning of the unaware (``thin_k`` of
    :func:`cvj.kernels.journey.advance_day`): the largest ``k`` up to
    ``THIN_MAX`` with ``thr[row, column] * 2**k <= 2**32`` in every row, so an unaware
    customer is looked at with probability ``2**-k`` a day and none can have a chance
    above that. 0 where the unaware are not thinned (``column`` -1)."""
    from .kernels.journey import THIN_MAX

    if column < 0:
        return 0
    top = int(thr[:, column].max()) if thr.shape[0] else 0
    k = 0
    while k < THIN_MAX and top << (k + 1) <= 1 << 32:
        k += 1
    return k


def realised_funnel(cm: Compiled, reach, tables, unsubscribes: int, key, day: int, cells=None) -> np.ndarray:
    """Each channel's dashboard figures for one day (see :data:`FUNNEL`).

    Clicks, sessions and opens are binomial in what was bought (impressions, clicks or
    sends), drawn from a generator keyed by (stream, day), so a run's figures are the
    same on any thread count. They report what the day's purchase turned into; the
    moves a channel causes come from the customers' own draws in the kernel (with the
    carry-over of earlier days); a retainer's sessions are its effective contacts (they
    build up with its carry-over), Poisson. Unsubscribes are the kernel's, shared among
    email channels by their expected numbers (hazard x customers in each cell, ``cells``
    being the day's audience counts)."""
    C = cm.n_channels
    out = np.zeros((C, len(FUNNEL)))
    if C == 0:
        return out
    rng = np.random.default_rng([int(key), int(day), 0xF0])
    ctr, landing, open_rate, click_rate = (cm.rates[:, j] for j in range(4))
    if unsubscribes and cells is not None:
        expected_unsub = (tables.unsub_hazard.reshape(C, -1) * cells.reshape(1, -1)).sum(axis=1)
    else:
        expected_unsub = np.zeros(C)
    for c in range(C):
        code = cm.pricing[c]
        units = reach.units[c]
        row = dict.fromkeys(FUNNEL, 0.0)
        row["audience"] = reach.members[c]
        if code == PRICING_CODE["cpm"]:
            row["impressions"] = n = round(units)
            if not np.isnan(ctr[c]):
                row["clicks"] = k = int(rng.binomial(n, ctr[c]))
                row["sessions"] = int(rng.binomial(k, landing[c]))
        elif code == PRICING_CODE["cpc"]:
            row["clicks"] = k = round(units)
            if not np.isnan(ctr[c]) and ctr[c] > 0:
                row["impressions"] = round(k / ctr[c])
            row["sessions"] = int(rng.binomial(k, landing[c])) if not np.isnan(landing[c]) else k
        elif code == PRICING_CODE["per_send"]:
            row["sends"] = n = round(units)
            o = row["opens"] = int(rng.binomial(n, open_rate[c])) if not np.isnan(open_rate[c]) else 0
            if not np.isnan(click_rate[c]):
                if o and open_rate[c] >= click_rate[c] > 0:
                    k = int(rng.binomial(o, click_rate[c] / open_rate[c]))  # clicks come from opens
                else:
                    k = int(rng.binomial(n, click_rate[c]))
                row["clicks"] = k
                row["sessions"] = int(rng.binomial(k, landing[c]))
            if expected_unsub.sum() > 0:
                # the share first: one email channel's share is exactly 1, so its
                # unsubscribes are the kernel's whole count (not 245.00000000000003)
                row["unsubscribes"] = unsubscribes * (expected_unsub[c] / expected_unsub.sum())
        elif code == PRICING_CODE["fixed"] and cm.funnel[c]:
            row["sessions"] = int(rng.poisson(reach.contacts[c] * reach.members[c] * landing[c]))
        out[c] = [row[k] for k in FUNNEL]
    return out


def apply_flows(counts: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """Stage counts after a day's moves: advances go one stage on (lapsed: back to aware)."""
    out = counts.copy()
    advance = flows[:, :, :-1].sum(axis=-1)  # [G, 10]
    lapse = flows[:, :, -1]
    out -= advance + lapse
    out[:, 1 : PROMOTER + 1] += advance[:, :PROMOTER]
    out[:, 1] += advance[:, LAPSED]
    out[:, LAPSED] += lapse.sum(axis=1)
    return out


__all__ = ["Engine", "History", "check_memory", "memory_needed", "use_threads"]

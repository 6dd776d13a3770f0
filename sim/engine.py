"""Orchestration of one simulated run: state arrays, the day loop, the daily aggregates.

:class:`Engine` owns the customers' arrays of one (scenario, replication) and advances
them one day per :meth:`Engine.step`; the Mesa model and the plain run both drive it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from .model import Compiled, channel_reach, day_tables
from .errors import ResourceError
from .stages import LAPSED, N_STAGES, PROMOTER

#: bytes of kernel state per customer (stage, profile, acquired, converted: 1 each; revenue: 4)
STATE_BYTES = 8
#: extra bytes per customer for the customers table: 9 uint16 days + the Arrow columns built from them
CUSTOMERS_TABLE_BYTES = 18 + 64


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
    flows: np.ndarray  # int64[D+1, G, 10, K+1] moves out of each stage by cause (last: lapse)
    channel_units: np.ndarray  # float64[D+1, C]
    channel_spend: np.ndarray  # float64[D+1, C]
    channel_budget: np.ndarray  # float64[D+1, C] the budget in force that day
    offer_units: np.ndarray  # int64[D+1, G, O]
    referred: np.ndarray  # int64[D+1, G] conversions of customers acquired by referral


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
        from . import kernels  # numba loads on first use, so validating a scenario starts fast

        self._k = kernels
        cm = compiled
        self.cm = cm
        self.replication = int(replication)
        self.track = bool(track_customers)
        N, D, G, C, O, K = cm.customers, cm.days, cm.n_segments, cm.n_channels, cm.n_offers, cm.n_causes
        self.key = np.uint64(kernels.stream_key(np.uint64(cm.seed), np.uint64(self.replication)))
        self.stage = np.empty(N, np.uint8)
        self.profile = np.empty(N, np.uint8)
        self.acquired = np.empty(N, np.uint8)
        self.converted = np.empty(N, np.uint8)
        self.revenue = np.empty(N, np.float32)
        self.reached = np.empty((N if self.track else 0, 9), np.uint16)
        kernels.init_customers(
            self.stage,
            self.profile,
            self.acquired,
            self.converted,
            self.revenue,
            self.reached,
            self.track,
            self.key,
            cm.seg_end,
            cm.stage_cum,
        )
        nc = kernels.n_chunks(N)
        self._flows = np.zeros((nc, G, N_STAGES, K + 1), np.int64)
        self._buys = np.zeros((nc, G, O), np.int64)
        self._referred = np.zeros((nc, G), np.int64)
        self.history = History(
            stages=np.zeros((D + 1, G, N_STAGES), np.int64),
            flows=np.zeros((D + 1, G, N_STAGES, K + 1), np.int64),
            channel_units=np.zeros((D + 1, C)),
            channel_spend=np.zeros((D + 1, C)),
            channel_budget=np.zeros((D + 1, C)),
            offer_units=np.zeros((D + 1, G, O), np.int64),
            referred=np.zeros((D + 1, G), np.int64),
        )
        self.history.stages[0] = self._count_stages()
        self.counts = self.history.stages[0].copy()
        self.stock = np.zeros(C)
        self.day = 0

    def _count_stages(self) -> np.ndarray:
        G = self.cm.n_segments
        out = np.zeros(G * N_STAGES, np.int64)
        step = 1 << 20  # in blocks, so the int64 index costs 8 MiB, not 8 bytes per customer
        for lo in range(0, self.stage.shape[0], step):
            idx = (self.profile[lo : lo + step] >> 4).astype(np.int64) * N_STAGES + self.stage[lo : lo + step]
            out += np.bincount(idx, minlength=G * N_STAGES)
        return out.reshape(G, N_STAGES)

    @property
    def done(self) -> bool:
        return self.day >= self.cm.days

    def planned_budgets(self, day: int | None = None) -> np.ndarray:
        """The scenario's budget per channel for ``day`` (default: the next day)."""
        d = self.day + 1 if day is None else day
        return self.cm.budget[d].copy()

    def step(self, budgets: np.ndarray | None = None) -> None:
        """Advance one day. ``budgets`` (per channel) replaces the scenario's plan."""
        if self.done:
            raise RuntimeError(f"the run is over: all {self.cm.days} days were simulated")
        cm = self.cm
        d = self.day + 1
        b = self.planned_budgets(d) if budgets is None else np.asarray(budgets, dtype=np.float64)
        reach = channel_reach(cm, self.counts, self.stock, b)
        tables = day_tables(cm, self.counts, reach)
        self._k.advance_day(
            self.stage,
            self.profile,
            self.acquired,
            self.converted,
            self.revenue,
            self.reached,
            self.track,
            self.key,
            d,
            tables.thr,
            tables.cut_adv,
            tables.cut_lapse,
            tables.cause_cum,
            cm.buy_cum,
            cm.price,
            self._flows,
            self._buys,
            self._referred,
        )
        flows = self._flows.sum(axis=0)
        h = self.history
        h.flows[d] = flows
        h.offer_units[d] = self._buys.sum(axis=0)
        h.referred[d] = self._referred.sum(axis=0)
        spend = reach.spend
        units = reach.units
        if cm.commission_channel >= 0:
            c = cm.commission_channel
            units[c] = float(h.referred[d].sum())
            spend[c] = units[c] * cm.per_unit[c]
        h.channel_units[d] = units
        h.channel_spend[d] = spend
        h.channel_budget[d] = b
        self.counts = apply_flows(self.counts, flows)
        h.stages[d] = self.counts
        self.stock = reach.stock
        self.day = d


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

"""Word of mouth on a social network (``referrals.model = "network"``).

The scenario's network settings are compiled here into the small arrays the kernels in
:mod:`cvj.kernels.network` read; :class:`WordOfMouth` runs a day's referrals around the
day kernel for one :class:`~cvj.engine.Engine` and keeps the log of referrals that took
effect (a few integers per referral, nothing per customer); :func:`referrals_table` and
:func:`network_kpis` turn the log into the ``referrals`` table and the KPIs. See
docs/model.md, "Word of mouth".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .columns import names_column as _dict
from .interrupts import held
from .model import Compiled, segment_sizes
from .stages import CONVERTED, N_STAGES, STAGE_ID

#: events a chunk of customers can hold before the buffers grow (they grow as needed)
START_CAPACITY = 256
_NEVER = 0xFFFF


@dataclass(frozen=True)
class Network:
    """The compiled network settings of a scenario."""

    chance: np.ndarray  # uint64[10] daily chance of telling one contact, by stage, * 2**32
    chance_p: np.ndarray  # float64[10] the same as probabilities
    contacts: int  # each person's contacts
    clustering: float
    segment_homophily: float
    age_homophily: float
    seg_lo: np.ndarray  # int64[G] first customer of each segment
    seg_n: np.ndarray  # int64[G] customers in each segment
    seg_cum: np.ndarray  # float64[G, G] cumulative chance of a contact's segment, by own segment


def compile_network(cm: Compiled) -> Network | None:
    """The network settings of a compiled scenario, or None for the mean-field model."""
    sc = cm.scenario
    ref = sc.referrals
    if ref.model != "network":
        return None
    net = ref.network
    lift = referral_lift(sc)
    p = np.zeros(N_STAGES)
    for name, r in ref.rates.items():
        p[STAGE_ID[name]] = min(1.0, r * lift)
    sizes = segment_sizes(cm.customers, [s.share for s in sc.segments.values()])
    share = sizes / sizes.sum()
    h = net.segment_homophily
    pick = (1.0 - h) * np.tile(share, (len(sizes), 1)) + h * np.eye(len(sizes))
    pick[:, sizes == 0] = 0.0
    with np.errstate(invalid="ignore"):
        cum = np.cumsum(pick, axis=1) / pick.sum(axis=1, keepdims=True)
    cum[:, -1] = 1.0
    return Network(
        chance=np.floor(p * 2.0**32).astype(np.uint64),
        chance_p=p,
        contacts=int(net.contacts),
        clustering=float(net.clustering),
        segment_homophily=float(h),
        age_homophily=float(net.age_homophily),
        seg_lo=(np.cumsum(sizes) - sizes).astype(np.int64),
        seg_n=sizes.astype(np.int64),
        seg_cum=np.ascontiguousarray(cum),
    )


def referral_lift(sc) -> float:
    """The referral programme's lift on every referrer's daily chance (1 without one)."""
    for ch in sc.channels.values():
        if ch.pricing == "commission":
            return float(ch.referral_lift)
    return 1.0


def contacts_of(cm: Compiled, net: Network, key, row: np.ndarray, customers) -> np.ndarray:
    """int64[len(customers), contacts]: the contacts of the given customers in the run
    with stream key ``key`` and rows ``row`` (the graph of that run)."""
    from .kernels import network as kn

    return kn.contacts_of(
        np.uint64(key), np.asarray(customers, np.int64), net.contacts, row, cm.width, net.seg_lo, net.seg_n,
        net.seg_cum, net.clustering, net.age_homophily,
    )


class WordOfMouth:
    """One run's referrals: :meth:`before_day` finds the day's events from the state at
    the start of the day, :meth:`after_day` applies them after the day kernel."""

    def __init__(self, engine, net: Network):
        from .kernels import network as kn

        self._kn = kn
        self.e = engine
        self.net = net
        nc = engine._k.n_chunks(engine.cm.customers)
        self._cap = START_CAPACITY
        self._target = np.empty((nc, self._cap), np.int64)
        self._source = np.empty((nc, self._cap), np.int64)
        self._found = np.zeros(nc, np.int64)
        self._day: list[np.ndarray] = []
        self._log_target: list[np.ndarray] = []
        self._log_source: list[np.ndarray] = []
        self._log_orders: list[np.ndarray] = []

    def before_day(self, day: int) -> None:
        e, net = self.e, self.net
        while True:
            self._kn.refer(
                e.stage, e.row, e.key, day, net.chance, net.contacts, e.cm.width, net.seg_lo, net.seg_n,
                net.seg_cum, net.clustering, net.age_homophily, self._target, self._source, self._found, e.active,
            )
            need = int(self._found.max(initial=0))
            if need <= self._cap:
                return
            # the events are a pure function of the state and the key: run the day again
            self._cap = max(need, 2 * self._cap)
            nc = self._found.shape[0]
            self._target = np.empty((nc, self._cap), np.int64)
            self._source = np.empty((nc, self._cap), np.int64)

    def after_day(self, day: int, flows: np.ndarray, cells: np.ndarray | None) -> None:
        """Apply the day's events to the state, ``flows`` (the day's summed flows) and
        ``cells`` (tomorrow's audience counts, None when not counted)."""
        e = self.e
        total = int(self._found.sum())
        lt = np.empty(total, np.int64)
        ls = np.empty(total, np.int64)
        lo = np.empty(total, np.uint8)
        cm = e.cm
        n = self._kn.apply_referrals(
            self._target, self._source, self._found, day, e.stage, e.row, e.sx, e.orders, e.clock, e.acquired,
            e.reached, e.reached_by, e.track, cm.layout.sx_of, cm.layout.colf, e._crow_of, e._fb_of, flows,
            cells if cells is not None else np.zeros((0, 0), np.int64), lt, ls, lo, cm.ref_block, e.active,
        )
        if n:
            self._day.append(np.full(n, day, np.int32))
            self._log_target.append(lt[:n])
            self._log_source.append(ls[:n])
            self._log_orders.append(lo[:n])

    def log(self) -> dict[str, np.ndarray]:
        """The referrals that took effect, in the order they were applied."""

        def cat(parts, dtype):
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        return {
            "day": cat(self._day, np.int32),
            "referred": cat(self._log_target, np.int64),
            "referrer": cat(self._log_source, np.int64),
            "orders_before": cat(self._log_orders, np.uint8),
        }


def chains(log: dict[str, np.ndarray], orders_end: np.ndarray) -> dict[str, np.ndarray]:
    """Per referral: its generation (1: the referrer was never referred before; g + 1:
    the referrer's latest referral was generation g), its chain (a cascade: every
    referral descending from one unreferred referrer, numbered by its first referral)
    and whether the friend ordered after it (before being referred again, or by the
    horizon); ``orders_end`` are every customer's orders at the horizon."""
    tgt, src = log["referred"], log["referrer"]
    n = tgt.size
    if n == 0:
        z = np.zeros(0, np.int64)
        return {"generation": z, "chain": z, "bought": np.zeros(0, bool), "last": np.zeros(0, bool)}
    from .kernels import network as kn

    people, tid = np.unique(tgt, return_inverse=True)
    sid = np.minimum(np.searchsorted(people, src), people.size - 1)
    with held():  # compiles on first use (cvj.interrupts)
        gen, root = kn.generations(tid.astype(np.int64), sid.astype(np.int64), people[sid] == src, src)
    _, first, inv = np.unique(root, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    nxt, last = _next_orders(log, orders_end)
    return {
        "generation": gen,
        "chain": rank[inv].astype(np.int64),
        "bought": nxt > log["orders_before"].astype(np.int64),
        "last": last,
        "orders_after": nxt,
    }


def _next_orders(log, orders_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each referral, the friend's orders when it was next referred (or at the
    horizon), and whether it is the friend's last referral."""
    tgt = log["referred"]
    out = orders_end[tgt].astype(np.int64)
    last = np.ones(tgt.size, bool)
    order = np.lexsort((np.arange(tgt.size), tgt))  # by friend, then in time
    same = tgt[order][1:] == tgt[order][:-1]
    nxt = log["orders_before"][order][1:].astype(np.int64)
    out[order[:-1][same]] = nxt[same]
    last[order[:-1][same]] = False
    return out, last


def referrals_table(cm: Compiled, e, replication: int) -> pa.Table:
    """One row per referral that took effect: the day, who referred whom (segment and age
    band of each), the generation, the chain and whether and when the friend ordered.

    ``order_day`` is the day of the friend's first order after the referral where it is
    known exactly: the friend's only order since its last referral (its last order), or,
    with the customers table, its first entry purchase when that came after the referral.
    """

    log = e.referrals.log()
    ch = chains(log, e.orders)
    W = cm.width
    per_seg = 16 * W
    src, tgt = log["referrer"], log["referred"]
    r_src, r_tgt = e.row[src].astype(np.int64), e.row[tgt].astype(np.int64)
    n = tgt.size
    order_day = np.full(n, -1, np.int64)
    if n:
        only = ch["last"] & (ch["orders_after"] - log["orders_before"].astype(np.int64) == 1)
        order_day[only] = e.last_order[tgt[only]]
        if e.track:
            first_buy = e.reached[tgt, CONVERTED - 1].astype(np.int64)
            known = (order_day < 0) & ch["bought"] & (first_buy != _NEVER) & (first_buy >= log["day"])
            order_day[known] = first_buy[known]
    return pa.table(
        {
            "replication": pa.array(np.full(n, replication, np.int32)),
            "day": pa.array(log["day"]),
            "referrer_segment": _dict((r_src // per_seg) % cm.n_segments, cm.segment_names),
            "referrer_age_band": _dict((r_src % W) >> 1, cm.band_names),
            "referred_segment": _dict((r_tgt // per_seg) % cm.n_segments, cm.segment_names),
            "referred_age_band": _dict((r_tgt % W) >> 1, cm.band_names),
            "generation": pa.array(ch["generation"].astype(np.int32)),
            "chain": pa.array(ch["chain"]),
            "bought": pa.array(ch["bought"]),
            "order_day": pa.array(order_day.astype(np.int32), mask=order_day < 0),
        }
    )


def customer_columns(e) -> dict[str, pa.Array]:
    """``referred_by`` (the customer id of the latest referrer; null: never referred) and
    ``generation`` (of that referral; 0: never referred) for the customers table."""
    N = e.cm.customers
    by = np.full(N, -1, np.int64)
    gen = np.zeros(N, np.int32)
    log = e.referrals.log()
    if log["referred"].size:
        ch = chains(log, e.orders)
        by[log["referred"]] = log["referrer"]  # later referrals overwrite earlier ones
        gen[log["referred"]] = ch["generation"]
    return {"referred_by": pa.array(by, mask=by < 0), "generation": pa.array(gen)}


def network_kpis(e) -> dict[str, float | None]:
    """``viral_coefficient``: friends who ordered after a referral, per customer with an
    order at the horizon; ``buyers_who_refer``: the share of those customers who brought
    at least one friend (made aware). None without the network model or without buyers."""
    if getattr(e, "referrals", None) is None:
        return {"viral_coefficient": None, "buyers_who_refer": None}
    buyers = int(np.count_nonzero(e.orders))
    if buyers == 0:
        return {"viral_coefficient": None, "buyers_who_refer": None}
    log = e.referrals.log()
    ch = chains(log, e.orders)
    referrers = np.unique(log["referrer"])
    return {
        "viral_coefficient": float(np.count_nonzero(ch["bought"])) / buyers,
        "buyers_who_refer": float(np.count_nonzero(e.orders[referrers])) / buyers,
    }


def by_generation(referrals: pa.Table) -> list[dict]:
    """Per generation g: friends referred, friends who ordered, and the viral coefficient
    (ordering friends of generation g + 1 per ordering friend of generation g)."""
    gen = np.asarray(referrals.column("generation").to_numpy(zero_copy_only=False), np.int64)
    bought = np.asarray(referrals.column("bought").to_numpy(zero_copy_only=False), bool)
    out = []
    top = int(gen.max(initial=0))
    for g in range(1, top + 1):
        b = int(np.count_nonzero(bought & (gen == g)))
        nxt = int(np.count_nonzero(bought & (gen == g + 1)))
        out.append({"generation": g, "referred": int(np.count_nonzero(gen == g)), "bought": b,
                    "viral_coefficient": nxt / b if b else None})
    return out


def cascade_sizes(referrals: pa.Table) -> dict[int, int]:
    """Chains by size (referrals in the chain) -> how many chains have that size."""
    chain = np.asarray(referrals.column("chain").to_numpy(zero_copy_only=False), np.int64)
    sizes = np.bincount(chain) if chain.size else np.zeros(0, np.int64)
    values, counts = np.unique(sizes[sizes > 0], return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))

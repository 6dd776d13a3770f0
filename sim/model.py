"""From a validated scenario to arrays, and the small tables computed between days.

:func:`compile_scenario` resolves a :class:`~cvj.scenario.Scenario` once into a frozen
:class:`Compiled` of read-only numpy arrays. :func:`day_tables` turns yesterday's
aggregates (stage counts, channel carry-over stocks) and today's budgets into the
tables the day kernel reads. This is where everything that couples customers lives:
saturating reach, carry-over, word of mouth, budgets and the offers' take rates.

The rule, in one line: every cause ``k`` that can move a person on from a stage has a
daily probability ``p_k``; it contributes the hazard ``-ln(1 - p_k)``; segment and
individual multipliers scale hazards; the day's event probability is
``1 - exp(-sum of hazards)``, and given an event each outcome and cause is chosen in
proportion to its hazard. With a single cause this is exactly ``p_k``; with several it
is ``1 - prod(1 - p_k)`` (independent chances). See docs/model.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from statistics import NormalDist

import numpy as np

from .scenario import RESPONSIVENESS_LEVELS, Scenario
from .stages import (
    CAUSE_ORGANIC,
    CAUSE_REFERRAL,
    EXCITED,
    LAPSED,
    N_STAGES,
    OFFER_CORE,
    PERMISSION_STAGES,
    PROMOTER,
    REPEAT_STAGES,
    STAGE_ID,
    SUBSCRIBED,
    UNAWARE,
)

PRICING_CODE = {"cpm": 0, "cpc": 1, "per_send": 2, "fixed": 3, "commission": 4}
DAYS_PER_MONTH = 365.0 / 12.0
_P_MAX = 1.0 - 1e-12  # a daily probability of 1 becomes a hazard of about 27.6


def hazard(p):
    """Daily probability -> hazard, ``-ln(1 - p)``."""
    return -np.log1p(-np.minimum(np.asarray(p, dtype=np.float64), _P_MAX))


def responsiveness_levels(spread: float) -> np.ndarray:
    """Sixteen equally likely multipliers of a lognormal with sigma ``spread``, mean 1."""
    q = (np.arange(RESPONSIVENESS_LEVELS) + 0.5) / RESPONSIVENESS_LEVELS
    z = np.array([NormalDist().inv_cdf(x) for x in q])
    m = np.exp(spread * z)
    return m / m.mean()


def segment_sizes(customers: int, shares) -> np.ndarray:
    """Exact segment sizes by largest remainder (they sum to ``customers``)."""
    shares = np.asarray(shares, dtype=np.float64)
    raw = shares * customers
    sizes = np.floor(raw).astype(np.int64)
    short = customers - int(sizes.sum())
    order = np.argsort(-(raw - sizes), kind="stable")
    sizes[order[:short]] += 1
    return sizes


def _ro(a):
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Compiled:
    """A scenario resolved into arrays (read-only). ``G`` segments, ``C`` channels, ``O`` offers."""

    scenario: Scenario
    customers: int
    days: int
    seed: int
    segment_names: tuple
    channel_names: tuple
    offer_names: tuple
    cause_names: tuple
    seg_end: np.ndarray  # int64[G] cumulative segment sizes (segments are contiguous blocks)
    stage_cum: np.ndarray  # float64[10] cumulative starting shares
    levels: np.ndarray  # float64[G, 16] responsiveness multipliers
    organic: np.ndarray  # float64[G, 10] organic advance hazard (lapsed: reactivation)
    lapse: np.ndarray  # float64[G, 10] lapse hazard
    take: np.ndarray  # float64[G, 10] offer take-rate multiplier on advancing from a stage
    repeat: np.ndarray  # float64[10] repeat-purchase hazard by stage
    buy_cum: np.ndarray  # float64[O] cumulative repeat-product probabilities
    price: np.ndarray  # float64[O]
    unit_cost: np.ndarray  # float64[O]
    referral_rate: np.ndarray  # float64[10] new aware per person per day, by referrer stage
    pricing: np.ndarray  # int8[C]
    per_unit: np.ndarray  # float64[C] money per unit (per impression, click, send, commission)
    budget: np.ndarray  # float64[D + 1, C] planned daily spend (row 0 unused)
    base_budget: np.ndarray  # float64[C] planned daily spend without schedule
    contacts: np.ndarray  # float64[C] fixed channels: contacts per day at the base budget
    audience: np.ndarray  # float64[C] people a channel can reach (0 for per_send: dynamic)
    max_units: np.ndarray  # float64[C] most units a channel can buy per audience member per day
    saturation: np.ndarray  # float64[C]
    carryover: np.ndarray  # float64[C]
    push: np.ndarray  # float64[C, G, 10] push probability * affinity, by stage moved on from
    commission_channel: int  # index of the commission channel or -1
    layout: Layout  # how (stage, days since last activity, orders) map to table columns
    band_names: tuple = ("all",)
    band_cum: np.ndarray = None  # float64[G, B] cumulative age-band shares per segment
    permitted: np.ndarray = None  # uint8[10] 1 where a customer starting in the stage has email permission
    extra: dict = field(default_factory=dict)

    @property
    def n_bands(self) -> int:
        return len(self.band_names)

    @property
    def count_cells(self) -> bool:
        """Whether the kernel counts customers by table column each day (audiences that
        depend on days since the last activity, or on the permission flag, need it)."""
        return bool(self.extra.get("count_cells", False))

    @property
    def width(self) -> int:
        """Flag cells per profile: age band x email permission."""
        return 2 * self.n_bands

    @property
    def crow_of(self) -> np.ndarray:
        """For each table row, its (segment, flag cell) row: ``segment * W + cell``."""
        W = self.width
        r = np.arange(self.n_segments * RESPONSIVENESS_LEVELS * W)
        return (r // (RESPONSIVENESS_LEVELS * W)) * W + r % W

    @property
    def fb_of(self) -> np.ndarray:
        """For each table row, its (segment, age band) index: ``segment * B + band``."""
        W = self.width
        r = np.arange(self.n_segments * RESPONSIVENESS_LEVELS * W)
        return (r // (RESPONSIVENESS_LEVELS * W)) * self.n_bands + (r % W) // 2

    @property
    def n_segments(self) -> int:
        return len(self.segment_names)

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def n_offers(self) -> int:
        return len(self.offer_names)

    @property
    def n_causes(self) -> int:
        return len(self.cause_names)


MAX_DWELL = 511  # days since the last activity are capped here (the last bucket runs on); kernels.MAX_DWELL
ORDER_SLOTS = 256  # orders so far, as stored (uint8)


@dataclass(frozen=True)
class Layout:
    """The day tables' columns. A customer's *slot* is its (stage, order class); each
    slot's days since the last activity fall into buckets; a column is one (slot,
    bucket). ``colf[sx_of[s, orders] * (MAX_DWELL + 1) + min(d, MAX_DWELL)]`` is the
    column of a customer in stage ``s`` with ``orders`` orders, ``d`` days after its
    last activity (a stage move or an order)."""

    sx_of: np.ndarray  # uint8[10, ORDER_SLOTS] slot of (stage, orders so far)
    colf: np.ndarray  # int32[slots * (MAX_DWELL + 1)] column of (slot, days)
    col_stage: np.ndarray  # int64[cols] stage of each column
    col_lo: np.ndarray  # int64[cols] first day (since the last activity) of the column's bucket
    col_hi: np.ndarray  # int64[cols] last day of the bucket (MAX_DWELL: open-ended)
    col_orders: np.ndarray  # int64[cols] order class of the column (0: not a repeat stage)

    @property
    def n_cols(self) -> int:
        return int(self.col_stage.shape[0])

    def column(self, stage: int, days: int, orders: int = 0) -> int:
        """The column of one (stage, days since the last activity, orders so far)."""
        return int(self.colf[int(self.sx_of[stage, orders]) * (MAX_DWELL + 1) + min(days, MAX_DWELL)])

    @classmethod
    def build(cls, breaks: dict | None = None, order_classes: dict | None = None) -> Layout:
        """Columns from the day boundaries of each stage (``breaks[s]``: first days of
        the buckets after the first, which starts at day 0) and the number of order
        classes of each stage (``order_classes[s] = k``: a customer with 1, 2, ...
        orders is in class 1, 2, ..., with k or more in class k)."""
        breaks = breaks or {}
        order_classes = order_classes or {}
        L = MAX_DWELL + 1
        sx_of = np.zeros((N_STAGES, ORDER_SLOTS), np.uint8)
        colf = []
        stage_of, lo_of, hi_of, oc_of = [], [], [], []
        slot = 0
        for s in range(N_STAGES):
            starts = [0, *sorted({int(b) for b in breaks.get(s, ()) if 0 < b <= MAX_DWELL})]
            ends = [*(b - 1 for b in starts[1:]), MAX_DWELL]
            k = int(order_classes.get(s, 1))
            for oc in range(k):
                first = len(stage_of)
                block = np.empty(L, np.int32)
                for b, (lo, hi) in enumerate(zip(starts, ends)):
                    block[lo : hi + 1] = first + b
                    stage_of.append(s)
                    lo_of.append(lo)
                    hi_of.append(hi)
                    oc_of.append(oc + 1 if k > 1 else 0)
                colf.append(block)
            # orders so far -> slot: 0 or 1 order -> first class, ..., k or more -> last
            classes = np.clip(np.arange(ORDER_SLOTS) - 1, 0, k - 1) if k > 1 else np.zeros(ORDER_SLOTS, int)
            sx_of[s] = slot + classes
            slot += k
        return cls(
            sx_of=_ro(sx_of),
            colf=_ro(np.concatenate(colf)),
            col_stage=_ro(np.array(stage_of, np.int64)),
            col_lo=_ro(np.array(lo_of, np.int64)),
            col_hi=_ro(np.array(hi_of, np.int64)),
            col_orders=_ro(np.array(oc_of, np.int64)),
        )


def compile_scenario(sc: Scenario) -> Compiled:
    """Resolve a validated scenario into read-only arrays."""
    m = sc.market
    N, D = m.customers, m.days
    segs = list(sc.segments.values())
    G = len(segs)
    sizes = segment_sizes(N, [s.share for s in segs])

    start = np.zeros(N_STAGES)
    for name, share in m.initial_stages.items():
        start[STAGE_ID[name]] = share
    stage_cum = np.cumsum(start)
    last = int(np.flatnonzero(start > 0)[-1])
    stage_cum[last:] = 1.0

    levels = np.stack([responsiveness_levels(s.responsiveness_spread) for s in segs])
    adv_mult = np.array([s.advance_multiplier for s in segs])
    lapse_mult = np.array([s.lapse_multiplier for s in segs])
    price_sens = np.array([s.price_sensitivity for s in segs])

    organic_p = np.zeros(N_STAGES)
    for name, p in sc.organic.advance.items():
        organic_p[STAGE_ID[name]] = p
    organic_p[LAPSED] = sc.organic.reactivation
    lapse_p = np.zeros(N_STAGES)
    for name, p in sc.organic.lapse.items():
        lapse_p[STAGE_ID[name]] = p
    organic = adv_mult[:, None] * hazard(organic_p)[None, :]
    lapse = lapse_mult[:, None] * hazard(lapse_p)[None, :]

    off = sc.offers
    take = np.ones((G, N_STAGES))
    take[:, SUBSCRIBED] = np.exp(-off.entry.price_sensitivity * price_sens * off.entry.price)
    take[:, EXCITED] = np.exp(-off.core.price_sensitivity * price_sens * off.core.price)

    offers = [off.lead_magnet, off.entry, off.core, *off.upsells.values()]
    price = np.array([getattr(o, "price", 0.0) for o in offers])
    unit_cost = np.array([o.unit_cost for o in offers])
    rates = np.zeros(len(offers))
    rates[OFFER_CORE] = off.core.repeat_rate
    for j, u in enumerate(off.upsells.values()):
        rates[3 + j] = u.take_rate
    rep_h = hazard(rates) * (rates > 0)
    repeat = np.zeros(N_STAGES)
    if rep_h.sum() > 0:
        repeat[list(REPEAT_STAGES)] = rep_h.sum()
    buy_cum = _cumulative(rep_h)

    referral_rate = np.zeros(N_STAGES)
    for name, r in sc.referrals.rates.items():
        referral_rate[STAGE_ID[name]] = r

    C = len(sc.channels)
    pricing = np.zeros(C, dtype=np.int8)
    per_unit = np.zeros(C)
    base_budget = np.zeros(C)
    budget = np.zeros((D + 1, C))
    contacts = np.zeros(C)
    audience = np.zeros(C)
    max_units = np.zeros(C)
    saturation = np.ones(C)
    carryover = np.zeros(C)
    push = np.zeros((C, G, N_STAGES))
    commission_channel = -1
    seg_index = {name: g for g, name in enumerate(sc.segments)}
    for c, ch in enumerate(sc.channels.values()):
        code = PRICING_CODE[ch.pricing]
        pricing[c] = code
        aff = np.ones(G)
        for seg, a in ch.affinity.items():
            aff[seg_index[seg]] = a
        for s, p in ch.push_from().items():
            push[c, :, s] = p * aff
        if ch.pricing == "commission":
            per_unit[c] = ch.commission
            commission_channel = c
            continue
        saturation[c] = ch.saturation
        carryover[c] = ch.carryover
        if ch.pricing == "fixed":
            base_budget[c] = ch.monthly_cost / DAYS_PER_MONTH
            contacts[c] = ch.contacts_per_day
            audience[c] = min(ch.audience or N, N)
            budget[:, c] = base_budget[c]
            for period in ch.schedule:
                budget[period.from_day : period.to_day + 1, c] = period.monthly_cost / DAYS_PER_MONTH
            continue
        per_unit[c] = ch.unit_cost / 1000.0 if ch.pricing == "cpm" else ch.unit_cost
        max_units[c] = ch.max_units_per_person
        audience[c] = 0.0 if ch.pricing == "per_send" else min(ch.audience or N, N)
        base_budget[c] = ch.daily_budget
        budget[:, c] = ch.daily_budget
        for period in ch.schedule:
            budget[period.from_day : period.to_day + 1, c] = period.daily_budget

    return Compiled(
        scenario=sc,
        customers=N,
        days=D,
        seed=m.seed,
        segment_names=sc.segment_names,
        channel_names=sc.channel_names,
        offer_names=sc.offer_names,
        cause_names=sc.cause_names,
        seg_end=_ro(np.cumsum(sizes).astype(np.int64)),
        stage_cum=_ro(stage_cum),
        levels=_ro(levels),
        organic=_ro(organic),
        lapse=_ro(lapse),
        take=_ro(take),
        repeat=_ro(repeat),
        buy_cum=_ro(buy_cum),
        price=_ro(price),
        unit_cost=_ro(unit_cost),
        referral_rate=_ro(referral_rate),
        pricing=_ro(pricing),
        per_unit=_ro(per_unit),
        budget=_ro(budget),
        base_budget=_ro(base_budget),
        contacts=_ro(contacts),
        audience=_ro(audience),
        max_units=_ro(max_units),
        saturation=_ro(saturation),
        carryover=_ro(carryover),
        push=_ro(push),
        commission_channel=commission_channel,
        layout=Layout.build(),
        band_names=("all",),
        band_cum=_ro(np.ones((G, 1))),
        permitted=_ro(np.isin(np.arange(N_STAGES), PERMISSION_STAGES).astype(np.uint8)),
    )


def _cumulative(h: np.ndarray) -> np.ndarray:
    """Cumulative shares of ``h`` along the last axis; exactly 1 from the last positive
    entry on, so a uniform below 1 never walks past it into a zero-share entry."""
    h = np.asarray(h, dtype=np.float64)
    total = h.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum = np.where(total > 0, np.cumsum(h, axis=-1) / np.where(total > 0, total, 1.0), 1.0)
    positive = h > 0
    # index of the last positive entry (or -1)
    idx = np.where(positive.any(axis=-1), h.shape[-1] - 1 - np.argmax(positive[..., ::-1], axis=-1), -1)
    k = np.arange(h.shape[-1])
    cum = np.where(k >= np.expand_dims(idx, -1), 1.0, cum)
    return cum


@dataclass
class Reach:
    """What the channels bought today and the response it produces."""

    units: np.ndarray  # float64[C]
    spend: np.ndarray  # float64[C] (commission channels: filled after the day)
    stock: np.ndarray  # float64[C] carry-over stock after today
    response: np.ndarray  # float64[C] in [0, 1)
    coverage: np.ndarray  # float64[C] in [0, 1]


def channel_reach(cm: Compiled, counts: np.ndarray, stock: np.ndarray, budgets: np.ndarray) -> Reach:
    """Units bought, spend and response of every channel for one day.

    ``counts`` are yesterday's customers by (segment, stage); ``stock`` yesterday's
    carry-over; ``budgets`` today's planned spend per channel.
    """
    C = cm.n_channels
    units = np.zeros(C)
    spend = np.zeros(C)
    response = np.zeros(C)
    coverage = np.ones(C)
    new_stock = stock.copy()
    permission = float(counts[:, list(PERMISSION_STAGES)].sum())
    for c in range(C):
        code = cm.pricing[c]
        if code == PRICING_CODE["commission"]:
            response[c] = 1.0
            continue
        if code == PRICING_CODE["fixed"]:
            aud = cm.audience[c]
            base = cm.base_budget[c]
            spend[c] = budgets[c]
            units[c] = cm.contacts[c] * (budgets[c] / base) if base > 0 else 0.0
        else:
            aud = permission if code == PRICING_CODE["per_send"] else cm.audience[c]
            units[c] = min(budgets[c] / cm.per_unit[c], aud * cm.max_units[c])
            spend[c] = units[c] * cm.per_unit[c]
        x = units[c] / aud if aud > 0 else 0.0
        new_stock[c] = cm.carryover[c] * stock[c] + x
        response[c] = -np.expm1(-new_stock[c] / cm.saturation[c])
        if code != PRICING_CODE["per_send"]:
            coverage[c] = min(1.0, aud / cm.customers)
    return Reach(units=units, spend=spend, stock=new_stock, response=response, coverage=coverage)


@dataclass
class DayTables:
    thr: np.ndarray  # uint64[rows, cols], rows = (segment * 16 + level) * W + flag cell
    cut_adv: np.ndarray  # float64[rows, cols]
    cut_lapse: np.ndarray  # float64[rows, cols]
    cut_unsub: np.ndarray  # float64[rows, cols]
    cause_cum: np.ndarray  # float64[G * W, cols, K]
    buy_cum: np.ndarray  # float64[cols, O]
    referral_hazard: float
    channel_hazard: np.ndarray  # float64[C, G, W, cols]


def day_tables(cm: Compiled, counts: np.ndarray, reach: Reach) -> DayTables:
    """The kernel's tables for one day from yesterday's counts and today's reach.

    ``counts`` are yesterday's customers by (segment x band, stage)."""
    G, C, W = cm.n_segments, cm.n_channels, cm.width
    lay = cm.layout
    cs = lay.col_stage  # stage of each column
    n_cols = lay.n_cols
    referrers = counts.sum(axis=0) @ cm.referral_rate
    ref_h = referrers / cm.customers
    # cause hazards [G, W, cols, K]: organic, referral, channels
    causes = np.zeros((G, W, n_cols, 2 + C))
    causes[:, :, :, CAUSE_ORGANIC] = cm.organic[:, None, cs]
    causes[:, :, cs == UNAWARE, CAUSE_REFERRAL] = ref_h
    p_ch = cm.push * (reach.response * reach.coverage)[:, None, None]  # [C, G, 10]
    ch_h = hazard(p_ch) * (p_ch > 0)
    ch_cols = np.broadcast_to(ch_h[:, :, None, cs], (C, G, W, n_cols))
    causes[..., 2:] = np.moveaxis(ch_cols, 0, -1)
    causes[:, :, cs == PROMOTER, :] = 0.0
    adv = causes.sum(axis=-1) * cm.take[:, None, cs]  # [G, W, cols]
    H = cm.levels[:, :, None, None] * adv[:, None, :, :]  # [G, 16, W, cols]
    lam = np.broadcast_to(cm.lapse[:, None, None, cs], H.shape)
    uns = np.zeros(H.shape)
    rho = np.broadcast_to(cm.repeat[None, None, None, cs], H.shape)
    total = H + lam + uns + rho
    p_event = -np.expm1(-total)
    thr = np.floor(p_event * 2.0**32).astype(np.uint64)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(total > 0, total, 1.0)
        cut_adv = np.where(total > 0, H / safe, 0.0)
        cut_lapse = np.where((rho > 0) | (uns > 0), (H + lam) / safe, 1.0)
        cut_unsub = np.where(rho > 0, (H + lam + uns) / safe, 1.0)
    rows = G * RESPONSIVENESS_LEVELS * W
    return DayTables(
        thr=np.ascontiguousarray(thr.reshape(rows, n_cols)),
        cut_adv=np.ascontiguousarray(cut_adv.reshape(rows, n_cols)),
        cut_lapse=np.ascontiguousarray(cut_lapse.reshape(rows, n_cols)),
        cut_unsub=np.ascontiguousarray(cut_unsub.reshape(rows, n_cols)),
        cause_cum=np.ascontiguousarray(_cumulative(causes).reshape(G * W, n_cols, 2 + C)),
        buy_cum=np.ascontiguousarray(np.broadcast_to(cm.buy_cum[None, :], (n_cols, cm.n_offers))),
        referral_hazard=float(ref_h),
        channel_hazard=ch_cols,
    )


def daily_transition_matrix(cm: Compiled, segment: int, level: int, tables: DayTables) -> np.ndarray:
    """The 10x10 one-day transition matrix of one (segment, responsiveness level) under
    given day tables. With channels and referrals constant this is the time-homogeneous
    Markov chain a customer follows (used by the closed-form tests)."""
    p = (segment * RESPONSIVENESS_LEVELS + level) * cm.width  # band 0, no permission
    P = np.zeros((N_STAGES, N_STAGES))
    for s in range(N_STAGES):
        c = cm.layout.column(s, 0)
        pe = tables.thr[p, c] / 2.0**32
        a = pe * tables.cut_adv[p, c]
        lapse = pe * (tables.cut_lapse[p, c] - tables.cut_adv[p, c])
        to = 1 if s == LAPSED else min(s + 1, PROMOTER)
        if s != PROMOTER:
            P[s, to] += a
        P[s, LAPSED] += lapse
        P[s, s] += 1.0 - a - lapse
    return P

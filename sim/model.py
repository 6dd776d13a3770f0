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

from dataclasses import dataclass
from datetime import timedelta
from statistics import NormalDist

import numpy as np

from .scenario import RESPONSIVENESS_LEVELS, WEEKDAYS, Audience, Scenario, rate_at, rate_breaks
from .stages import (
    ADVOCATE,
    ASCENDED,
    AWARE,
    CAUSE_ORGANIC,
    CAUSE_REFERRAL,
    ENGAGED,
    EXCITED,
    LAPSED,
    N_STAGES,
    OFFER_CORE,
    PERMISSION_STAGES,
    PROMOTER,
    REPEAT_STAGES,
    STAGE_ID,
    STAGES,
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
    """A scenario resolved into arrays (read-only). ``G`` segments, ``B`` age bands,
    ``W = 2B`` flag cells (band x email permission), ``C`` channels, ``O`` offers and
    ``cols`` table columns (see :class:`Layout`)."""

    scenario: Scenario
    customers: int  # simulated
    market: int  # the market the scenario describes (customers / market: the sample's scale)
    days: int
    seed: int
    segment_names: tuple
    band_names: tuple
    channel_names: tuple
    offer_names: tuple
    cause_names: tuple
    layout: Layout  # how (stage, days since the last activity, orders) map to table columns
    seg_end: np.ndarray  # int64[G] cumulative segment sizes (segments are contiguous blocks)
    stage_cum: np.ndarray  # float64[10] cumulative starting shares
    band_cum: np.ndarray  # float64[G, B] cumulative age-band shares per segment
    permitted: np.ndarray  # uint8[10] 1 where a customer starting in the stage has email permission
    start_orders: np.ndarray  # uint8[10] orders a customer starting in the stage has made (entry 1, core 2)
    levels: np.ndarray  # float64[G, 16] responsiveness multipliers
    organic: np.ndarray  # float64[G, cols] organic advance hazard (lapsed: reactivation)
    lapse: np.ndarray  # float64[G, cols] lapse hazard
    take: np.ndarray  # float64[G, cols] offer take-rate multiplier on advancing from the column's stage
    purchase: np.ndarray  # bool[cols] advancing from the column's stage is a purchase (calendar applies)
    repeat_h: np.ndarray  # float64[cols, O] repeat-purchase hazard of each offer
    price: np.ndarray  # float64[O]
    unit_cost: np.ndarray  # float64[O]
    referral_rate: np.ndarray  # float64[10] new aware per person per day, by referrer stage
    calendar: np.ndarray  # float64[D + 1] multiplier on sessions and purchases by day
    pricing: np.ndarray  # int8[C]
    per_unit: np.ndarray  # float64[C] money per unit (per impression, click, send, commission)
    budget: np.ndarray  # float64[D + 1, C] planned daily spend (row 0 unused)
    base_budget: np.ndarray  # float64[C] planned daily spend without schedule
    contacts: np.ndarray  # float64[C] fixed channels: contacts (sessions) per day at the base budget
    audience: np.ndarray  # float64[C] people a channel can reach at most (0: by its audience only)
    max_units: np.ndarray  # float64[C] most units a channel can buy per audience member per day
    saturation: np.ndarray  # float64[C]
    carryover: np.ndarray  # float64[C]
    push: np.ndarray  # float64[C, G, 10] push probability * affinity, by stage moved on from (format-1 channels)
    funnel: np.ndarray  # bool[C] the channel moves people by sessions and conversion (format 2)
    mask: np.ndarray  # float64[C, G * W, cols] 1 where the (segment, flag cell, column) is in the channel's audience
    affinity: np.ndarray  # float64[C, G, B] segment affinity x age-band affinity
    effect: np.ndarray  # float64[C, 10] hazard per effective contact of moving on from a stage (before calendar)
    unsub: np.ndarray  # float64[C] unsubscribe hazard per send
    rates: np.ndarray  # float64[C, 4] ctr, landing, open rate, click rate per send (reporting; NaN: not given)
    commission_channel: int  # index of the commission channel or -1
    count_cells: bool  # the kernel counts customers by (segment, flag cell, column) for the audiences
    memo: np.ndarray  # uint8[10 + O] moves from a stage / repeat purchases of an offer that restart the clock
    start_offer: int  # the offer bought on excited -> ascended (core; a subscription's free trial)
    first_pay_at: int  # orders before a subscriber's first payment (-1: no subscription)
    phase: np.ndarray  # float64[10] starting customers' clocks spread over this many days before day 0
    bill: np.ndarray  # bool[cols] a subscription's bill falls due in the column
    billing: Billing | None  # the subscription, resolved (None: the core offer is bought once)
    #: rows of the day tables for customers acquired by referral start here (0: no such
    #: rows, a referred customer reads the same row as anyone); see ``referred``
    ref_block: int
    #: float64[G, cols] for a referred customer: the take-rate multiplier (the friend's
    #: discount on the entry offer) times its warm-lead multiplier on aware..subscribed
    referred: np.ndarray

    @property
    def n_segments(self) -> int:
        return len(self.segment_names)

    @property
    def scale(self) -> float:
        """Simulated customers per customer of the market (1 without a sample)."""
        return self.customers / self.market

    @property
    def n_bands(self) -> int:
        return len(self.band_names)

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def n_offers(self) -> int:
        return len(self.offer_names)

    @property
    def n_causes(self) -> int:
        return len(self.cause_names)

    @property
    def width(self) -> int:
        """Flag cells per profile: age band x email permission."""
        return 2 * self.n_bands

    @property
    def n_rows(self) -> int:
        """Rows of the day tables: (segment, level, flag cell), twice over when referred
        customers have rows of their own (``ref_block``)."""
        base = self.n_segments * RESPONSIVENESS_LEVELS * self.width
        return 2 * base if self.ref_block else base

    @property
    def crow_of(self) -> np.ndarray:
        """For each table row, its (segment, flag cell) row: ``segment * W + cell``."""
        W = self.width
        r = np.arange(self.n_rows) % (self.n_segments * RESPONSIVENESS_LEVELS * W)
        return (r // (RESPONSIVENESS_LEVELS * W)) * W + r % W

    @property
    def fb_of(self) -> np.ndarray:
        """For each table row, its (segment, age band) index: ``segment * B + band``."""
        W = self.width
        r = np.arange(self.n_rows) % (self.n_segments * RESPONSIVENESS_LEVELS * W)
        return (r // (RESPONSIVENESS_LEVELS * W)) * self.n_bands + (r % W) // 2

    @property
    def friend_discount(self) -> float:
        """Money off the entry offer for a referred friend (a two-sided programme)."""
        if self.commission_channel < 0:
            return 0.0
        return float(self.scenario.channels[self.channel_names[self.commission_channel]].friend_discount)

    @property
    def pays_first_payment(self) -> bool:
        """The commission programme pays per referred subscriber's first payment."""
        if self.commission_channel < 0:
            return False
        ch = self.scenario.channels[self.channel_names[self.commission_channel]]
        return ch.commission_on == "first_payment"

    @property
    def repeat(self) -> np.ndarray:
        """float64[cols] total repeat-purchase hazard of a column."""
        return self.repeat_h.sum(axis=1)

    @property
    def buy_cum(self) -> np.ndarray:
        """float64[cols, O] given a repeat purchase, cumulative probability of each offer."""
        return _cumulative(self.repeat_h)


@dataclass(frozen=True)
class Billing:
    """A subscription core offer, resolved: a bill every ``period_days``; a free trial of
    ``trial_days`` (0: none) whose sign-up is offer ``trial_offer``; ``monthly`` the
    price per month a subscriber is worth (MRR)."""

    period_days: int
    trial_days: int
    trial_offer: int  # -1 without a trial
    price: float
    monthly: float
    churn: tuple  # churn at the 1st, 2nd, ... renewal (the last for every later one)
    trial_conversion: float


MAX_DWELL = 511  # days since the last activity are capped here (the last bucket runs on); kernels.MAX_DWELL
ORDER_SLOTS = 256  # orders so far, as stored (uint8)


@dataclass(frozen=True)
class Layout:
    """The day tables' columns. A customer's *slot* is its (stage, order class); each
    slot's days since the last activity fall into buckets; a column is one (slot,
    bucket). ``d``, the days since the last activity (a stage move or an order), is 0
    on the first day after it, so on day ``t`` a customer whose clock is ``c`` has
    ``d = t - c - 1`` and its column is ``colf[slot * (MAX_DWELL + 1) + min(t - c,
    MAX_DWELL)]``; ``d`` is capped at ``MAX_DWELL - 1`` = 510."""

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
        """The column of one (stage, d = days since the last activity, orders so far)."""
        return int(self.colf[int(self.sx_of[stage, orders]) * (MAX_DWELL + 1) + min(days + 1, MAX_DWELL)])

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
            starts = [0, *sorted({int(b) for b in breaks.get(s, ()) if 0 < b < MAX_DWELL})]
            ends = [*(b - 1 for b in starts[1:]), MAX_DWELL - 1]
            k = int(order_classes.get(s, 1))
            for oc in range(k):
                first = len(stage_of)
                block = np.empty(L, np.int32)
                # the kernel looks up day - clock, which is 1 on the first day after the
                # activity: that is d = 0, "no full day has passed yet"
                block[0] = first
                for b, (lo, hi) in enumerate(zip(starts, ends)):
                    block[lo + 1 : hi + 2] = first + b
                    stage_of.append(s)
                    lo_of.append(lo)
                    hi_of.append(hi)
                    oc_of.append(oc + 1 if k > 1 else 0)
                colf.append(block)
            # orders so far -> slot: up to 2 orders (entry and core: the next order is the
            # 3rd) -> first class, 3 -> second, ..., k + 1 or more -> last
            classes = np.clip(np.arange(ORDER_SLOTS) - 2, 0, k - 1) if k > 1 else np.zeros(ORDER_SLOTS, int)
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
    N, D = m.simulated, m.days
    # a sample of the market: the same business at a smaller size (docs/model.md)
    f = N / m.customers
    segs = list(sc.segments.values())
    G = len(segs)
    sizes = segment_sizes(N, [s.share for s in segs])
    bands = sc.band_names
    B = len(bands)
    W = 2 * B

    start = np.zeros(N_STAGES)
    for name, share in m.initial_stages.items():
        start[STAGE_ID[name]] = share
    stage_cum = np.cumsum(start)
    last = int(np.flatnonzero(start > 0)[-1])
    stage_cum[last:] = 1.0

    band_share = np.full((G, B), 1.0 / B)
    for g, seg in enumerate(segs):
        if seg.age_shares:
            band_share[g] = [seg.age_shares.get(b, 0.0) for b in bands]
    band_cum = np.cumsum(band_share, axis=1)
    band_cum[:, -1] = 1.0

    # -- columns: every day boundary any rate or audience of a stage needs
    breaks: dict[int, set] = {s: set() for s in range(N_STAGES)}
    for name, rate in sc.organic.advance.items():
        breaks[STAGE_ID[name]].update(rate_breaks(rate))
    for name, rate in sc.organic.lapse.items():
        breaks[STAGE_ID[name]].update(rate_breaks(rate))
    off = sc.offers
    repeat_rates = [off.core.repeat_rate, *(u.take_rate for u in off.upsells.values())]
    for s in REPEAT_STAGES:
        for rate in repeat_rates:
            breaks[s].update(rate_breaks(rate))
    audiences = {}
    for c, (_cname, ch) in enumerate(sc.channels.items()):
        aud = getattr(ch, "audience", None)
        if isinstance(aud, Audience):
            audiences[c] = aud
            for s in (STAGE_ID[x] for x in (aud.stages or STAGES)):
                breaks[s].update(aud.breaks())
    mult = off.core.order_multipliers
    order_classes = {s: len(mult) for s in REPEAT_STAGES} if len(mult) > 1 else {}
    sub = off.core.subscription
    if sub is not None:
        # a subscriber's order class counts its bills: with a trial, class 0 is the
        # trial and class j >= 1 has paid j times; without, the sign-up was the first bill
        trial = int(sub.trial_days > 0)
        n_classes = trial + len(sub.churn_by_renewal)
        order_classes = {s: n_classes for s in REPEAT_STAGES} if n_classes > 1 else {}
        for s in REPEAT_STAGES:
            breaks[s].update({sub.period_days - 1, *((sub.trial_days - 1,) if trial else ())} - {0})
    lay = Layout.build(breaks, order_classes)
    cs, lo = lay.col_stage, lay.col_lo
    n_cols = lay.n_cols

    levels = np.stack([responsiveness_levels(s.responsiveness_spread) for s in segs])
    adv_mult = np.array([s.advance_multiplier for s in segs])
    lapse_mult = np.array([s.lapse_multiplier for s in segs])
    price_sens = np.array([s.price_sensitivity for s in segs])

    def by_column(rates: dict, stage_of_key=STAGE_ID) -> np.ndarray:
        p = np.zeros(n_cols)
        for name, rate in rates.items():
            s = stage_of_key[name]
            for j in np.flatnonzero(cs == s):
                p[j] = rate_at(rate, int(lo[j]))
        return p

    organic_p = by_column(sc.organic.advance)
    organic_p[cs == LAPSED] = sc.organic.reactivation
    lapse_p = by_column(sc.organic.lapse)
    organic = adv_mult[:, None] * hazard(organic_p)[None, :]
    lapse = lapse_mult[:, None] * hazard(lapse_p)[None, :]

    take_s = np.ones((G, N_STAGES))
    take_s[:, SUBSCRIBED] = np.exp(-off.entry.price_sensitivity * price_sens * off.entry.price)
    take_s[:, EXCITED] = np.exp(-off.core.price_sensitivity * price_sens * off.core.price)
    take = take_s[:, cs]
    purchase = np.isin(cs, (SUBSCRIBED, EXCITED))
    # a referred customer: a warm lead (aware..subscribed), and the friend's discount on
    # the entry offer lowers the price its take rate sees
    programme = next((ch for ch in sc.channels.values() if ch.pricing == "commission"), None)
    discount = programme.friend_discount if programme is not None else 0.0
    warm = sc.referrals.referred_conversion
    referred = np.ones((G, n_cols))
    ref_block = 0
    if warm != 1.0 or discount > 0.0:
        ref_block = G * RESPONSIVENESS_LEVELS * W
        cheaper = np.exp(off.entry.price_sensitivity * price_sens * min(discount, off.entry.price))
        referred[:, cs == SUBSCRIBED] *= cheaper[:, None]
        referred[:, np.isin(cs, (AWARE, ENGAGED, SUBSCRIBED))] *= warm

    offers = [off.lead_magnet, off.entry, off.core, *off.upsells.values()]
    price = [getattr(o, "price", 0.0) for o in offers]
    unit_cost = [o.unit_cost for o in offers]
    if off.core.subscription is not None and off.core.subscription.trial_days:
        price.append(0.0)  # the free trial's sign-up: an offer of its own, free
        unit_cost.append(0.0)
    price, unit_cost = np.array(price), np.array(unit_cost)
    O = len(price)
    repeat_h = np.zeros((n_cols, O))
    order_mult = np.ones(n_cols)
    if len(mult) > 1:
        values = list(mult.values())
        for j in range(n_cols):
            if lay.col_orders[j] > 0:
                order_mult[j] = values[lay.col_orders[j] - 1]
    elif len(mult) == 1:
        order_mult[:] = next(iter(mult.values()))
    for j in np.flatnonzero(np.isin(cs, REPEAT_STAGES)):
        for o, rate in zip((OFFER_CORE, *range(3, O)), repeat_rates):
            p = rate_at(rate, int(lo[j]))
            repeat_h[j, o] = hazard(p) * (p > 0) * order_mult[j]

    memo = np.ones(N_STAGES + O, np.uint8)
    start_offer, first_pay_at = OFFER_CORE, -1
    phase = np.zeros(N_STAGES)
    start_orders = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 0], np.uint8)
    bill = np.zeros(n_cols, bool)
    billing = None
    if sub is not None:
        billing, first_pay_at = _subscription(sub, off.core.price, O, lay, bill, organic, lapse, repeat_h)
        start_offer = billing.trial_offer if billing.trial_days else OFFER_CORE
        # a subscriber's clock runs from its last bill: moves between the subscriber
        # stages and upsells leave it, and its orders count the bills
        memo[[ASCENDED, ADVOCATE]] = 0
        memo[N_STAGES + 3 :] = 0
        memo[N_STAGES + OFFER_CORE] = 1
        # subscribers at the start have paid and are part-way through a period
        start_orders[list(REPEAT_STAGES)] = 2 + (billing.trial_days > 0)
        phase[list(REPEAT_STAGES)] = billing.period_days

    # the mean-field hazard; with the network model word of mouth travels by referral
    # events between customers instead (cvj.network), so this term is zero
    referral_rate = np.zeros(N_STAGES)
    if sc.referrals.model == "mean_field":
        lift = programme.referral_lift if programme is not None else 1.0
        for name, r in sc.referrals.rates.items():
            referral_rate[STAGE_ID[name]] = r * lift

    calendar = np.ones(D + 1)
    if sc.start_date is not None and (sc.calendar.weekday or sc.calendar.events):
        wd = [sc.calendar.weekday.get(w, 1.0) for w in WEEKDAYS]
        for d in range(1, D + 1):
            day = sc.start_date + timedelta(days=d - 1)
            lift = wd[day.weekday()]
            for ev in sc.calendar.events:
                if ev.start <= day <= ev.end:
                    lift *= ev.lift
            calendar[d] = lift

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
    funnel = np.zeros(C, bool)
    mask = np.ones((C, G * W, n_cols))
    affinity = np.ones((C, G, B))
    effect = np.zeros((C, N_STAGES))
    unsub = np.zeros(C)
    rates = np.full((C, 4), np.nan)
    conv = np.zeros(N_STAGES)
    for name, p in sc.shop.conversion.items():
        conv[STAGE_ID[name]] = p
    commission_channel = -1
    seg_index = {name: g for g, name in enumerate(sc.segments)}
    band_index = {name: b for b, name in enumerate(bands)}
    cell_band = np.arange(W) // 2
    cell_perm = np.arange(W) % 2
    for c, ch in enumerate(sc.channels.values()):
        code = PRICING_CODE[ch.pricing]
        pricing[c] = code
        aff = np.ones(G)
        for seg, a in ch.affinity.items():
            aff[seg_index[seg]] = a
        for s, p in ch.push_from().items():
            push[c, :, s] = p * aff
        band_aff = np.ones(B)
        for band, a in ch.band_affinity.items():
            band_aff[band_index[band]] = a
        affinity[c] = aff[:, None] * band_aff[None, :]
        if ch.pricing == "commission":
            per_unit[c] = ch.commission  # the referrer's reward (the friend's discount: friend_discount)
            commission_channel = c
            continue
        saturation[c] = ch.saturation
        carryover[c] = ch.carryover
        # a channel without pushes moves people by sessions (an upgraded format-1 channel
        # without pushes gets landing_rate 0: it spends and moves nobody, as before)
        funnel[c] = not ch.pushes
        aud = audiences.get(c)
        size = aud.size if isinstance(aud, Audience) else ch.audience if ch.pricing != "per_send" else None
        if funnel[c] or isinstance(aud, Audience):
            mask[c] = _audience_mask(ch, aud, lay, G, W, cell_band, cell_perm, band_index)
        if funnel[c]:
            _funnel_effect(ch, conv, effect[c], rates[c])
            if ch.pricing == "per_send":
                unsub[c] = ch.unsubscribe_rate
        if ch.pricing == "fixed":
            base_budget[c] = f * ch.monthly_cost / DAYS_PER_MONTH
            contacts[c] = f * ch.contacts_per_day
            audience[c] = min(f * size if size else N, N)
            budget[:, c] = base_budget[c]
            for period in ch.schedule:
                budget[period.from_day : period.to_day + 1, c] = f * period.monthly_cost / DAYS_PER_MONTH
            continue
        per_unit[c] = ch.unit_cost / 1000.0 if ch.pricing == "cpm" else ch.unit_cost
        max_units[c] = ch.max_units_per_person
        if ch.pricing == "per_send" and ch.max_per_week is not None:
            max_units[c] = min(max_units[c], ch.max_per_week / 7.0)
        audience[c] = 0.0 if ch.pricing == "per_send" and size is None else min(f * size if size else N, N)
        base_budget[c] = f * ch.daily_budget
        budget[:, c] = base_budget[c]
        for period in ch.schedule:
            budget[period.from_day : period.to_day + 1, c] = f * period.daily_budget

    return Compiled(
        scenario=sc,
        customers=N,
        market=m.customers,
        days=D,
        seed=m.seed,
        segment_names=sc.segment_names,
        band_names=bands,
        channel_names=sc.channel_names,
        offer_names=sc.offer_names,
        cause_names=sc.cause_names,
        layout=lay,
        seg_end=_ro(np.cumsum(sizes).astype(np.int64)),
        stage_cum=_ro(stage_cum),
        band_cum=_ro(band_cum),
        permitted=_ro(np.isin(np.arange(N_STAGES), PERMISSION_STAGES).astype(np.uint8)),
        start_orders=_ro(start_orders),
        levels=_ro(levels),
        organic=_ro(organic),
        lapse=_ro(lapse),
        take=_ro(take),
        purchase=_ro(purchase),
        repeat_h=_ro(repeat_h),
        price=_ro(price),
        unit_cost=_ro(unit_cost),
        referral_rate=_ro(referral_rate),
        calendar=_ro(calendar),
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
        funnel=_ro(funnel),
        mask=_ro(mask),
        affinity=_ro(affinity),
        effect=_ro(effect),
        unsub=_ro(unsub),
        rates=_ro(rates),
        commission_channel=commission_channel,
        count_cells=bool(funnel.any() or audiences),
        memo=_ro(memo),
        start_offer=int(start_offer),
        first_pay_at=int(first_pay_at),
        phase=_ro(phase),
        bill=_ro(bill),
        billing=billing,
        ref_block=int(ref_block),
        referred=_ro(referred),
    )


def _subscription(sub, price, O, lay: Layout, bill, organic, lapse, repeat_h) -> tuple[Billing, int]:
    """Resolve a subscription and write its bills into the columns (in place): in a
    column where a bill is due, the day certainly brings one outcome, leaving with the
    churn of that renewal or paying the period's price (a repeat purchase of the core
    offer), and nothing else. The due bucket runs on to the last day, so a bill is never
    skipped (if the draw of probability 2**-32 misses it, it falls the next day)."""
    trial = sub.trial_days > 0
    churn = sub.churn_by_renewal
    tc = 1.0 if sub.trial_conversion is None else sub.trial_conversion
    sure = float(hazard(1.0))
    for j in np.flatnonzero(np.isin(lay.col_stage, REPEAT_STAGES)):
        oc = max(int(lay.col_orders[j]) - 1, 0)  # 0: the first class
        if trial and oc == 0:
            due, leave = sub.trial_days, 1.0 - tc
        else:
            due, leave = sub.period_days, churn[min(oc - trial, len(churn) - 1)]
        if lay.col_lo[j] >= due - 1:
            bill[j] = True
            organic[:, j] = 0.0
            lapse[:, j] = leave * sure
            repeat_h[j, :] = 0.0
            repeat_h[j, OFFER_CORE] = (1.0 - leave) * sure
    billing = Billing(
        period_days=sub.period_days,
        trial_days=sub.trial_days,
        trial_offer=O - 1 if trial else -1,
        price=float(price),
        monthly=float(price) * (1.0 if sub.period == "month" else 1.0 / 12.0),
        churn=churn,
        trial_conversion=tc,
    )
    return billing, 2 if trial else 1


def _audience_mask(ch, aud, lay: Layout, G, W, cell_band, cell_perm, band_index) -> np.ndarray:
    """1 where a (segment, flag cell, column) is in a channel's audience."""
    if isinstance(aud, Audience) and aud.stages is not None:
        stages = [STAGE_ID[x] for x in aud.stages]
    elif ch.pricing == "per_send":
        stages = list(PERMISSION_STAGES)
    else:
        stages = list(range(N_STAGES))
    col_ok = np.isin(lay.col_stage, stages)
    if isinstance(aud, Audience):
        col_ok &= np.array([aud.admits_days(int(a), int(b)) for a, b in zip(lay.col_lo, lay.col_hi)], bool)
    cell_ok = np.ones(W, bool)
    perm = aud.permission if isinstance(aud, Audience) else None
    if ch.pricing == "per_send":
        perm = True
    if perm is not None:
        cell_ok &= cell_perm == int(perm)
    if isinstance(aud, Audience) and aud.age_bands is not None:
        cell_ok &= np.isin(cell_band, [band_index[b] for b in aud.age_bands])
    m = (cell_ok[:, None] & col_ok[None, :]).astype(np.float64)  # [W, cols]
    return np.tile(m, (G, 1))


def _funnel_effect(ch, conv: np.ndarray, effect: np.ndarray, rates: np.ndarray) -> None:
    """Per effective contact, the hazard of moving on from each stage (format-2 channels),
    and the channel's published rates for reporting: ctr, landing rate, open rate, click
    rate per send."""
    if ch.pricing == "cpm":
        ctr = ch.ctr or 0.0
        chain = ctr * ch.landing_rate  # sessions per impression
        effect[UNAWARE] = ch.aware_per_impression + chain
        rates[:] = (ctr if ch.ctr is not None else np.nan, ch.landing_rate, np.nan, np.nan)
    elif ch.pricing == "cpc":
        chain = ch.landing_rate  # sessions per click
        effect[UNAWARE] = chain
        rates[:] = (ch.ctr if ch.ctr is not None else np.nan, ch.landing_rate, np.nan, np.nan)
    elif ch.pricing == "per_send":
        click = ch.click_rate or 0.0
        chain = click * ch.landing_rate  # sessions per send
        rates[:] = (np.nan, ch.landing_rate, ch.open_rate if ch.open_rate is not None else np.nan,
                    ch.click_rate if ch.click_rate is not None else np.nan)
    else:  # fixed: contacts are sessions
        chain = ch.landing_rate
        effect[UNAWARE] = chain
        rates[:] = (np.nan, chain, np.nan, np.nan)
    for s in range(AWARE, PROMOTER):
        effect[s] = chain * conv[s]
    effect[LAPSED] = chain  # a lapsed person who visits again is back (reactivation to aware)


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

    units: np.ndarray  # float64[C] units bought (impressions, clicks, sends, sessions)
    spend: np.ndarray  # float64[C] (commission channels: filled after the day)
    stock: np.ndarray  # float64[C] carry-over stock after today
    response: np.ndarray  # float64[C] in [0, 1) (push channels)
    coverage: np.ndarray  # float64[C] in [0, 1] (push channels)
    members: np.ndarray  # float64[C] people in the channel's audience today
    contacts: np.ndarray  # float64[C] effective contacts per audience member today (funnel channels)
    per_member: np.ndarray  # float64[C] units bought per audience member today


def channel_reach(
    cm: Compiled, counts: np.ndarray, stock: np.ndarray, budgets: np.ndarray, cells: np.ndarray | None = None
) -> Reach:
    """Units bought, spend and response of every channel for one day.

    ``counts`` are yesterday's customers by (segment x band, stage); ``cells`` today's
    customers by (segment x flag cell, column), needed by format-2 audiences; ``stock``
    yesterday's carry-over; ``budgets`` today's planned spend per channel.
    """
    C = cm.n_channels
    units = np.zeros(C)
    spend = np.zeros(C)
    response = np.zeros(C)
    coverage = np.ones(C)
    members = np.zeros(C)
    contacts = np.zeros(C)
    per_member = np.zeros(C)
    new_stock = stock.copy()
    permission = float(counts[:, list(PERMISSION_STAGES)].sum())
    for c in range(C):
        code = cm.pricing[c]
        if code == PRICING_CODE["commission"]:
            response[c] = 1.0
            continue
        masked = cm.funnel[c] or (cells is not None and cm.mask[c].min() < 1)
        if masked:
            # the audience: everyone in it; the platform reaches at most `size` of them a
            # day (a different subset each day), so what it buys is capped by that reach
            # and spread over everyone in the audience
            aud = float((cells * cm.mask[c]).sum())
            cap = cm.audience[c]
            reachable = min(aud, cap) if cap > 0 else aud
        elif code == PRICING_CODE["per_send"]:
            aud = reachable = permission
        else:
            aud = reachable = cm.audience[c]
        if code == PRICING_CODE["fixed"]:
            base = cm.base_budget[c]
            spend[c] = budgets[c]
            units[c] = cm.contacts[c] * (budgets[c] / base) if base > 0 else 0.0
        else:
            units[c] = min(budgets[c] / cm.per_unit[c], reachable * cm.max_units[c])
            spend[c] = units[c] * cm.per_unit[c]
        x = units[c] / aud if aud > 0 else 0.0
        members[c] = aud
        per_member[c] = x
        if cm.funnel[c]:
            # normalised carry-over (adstock): the stock settles at the contacts bought a
            # day, so contacts_per_day "at full strength" is what a person gets when built up
            new_stock[c] = cm.carryover[c] * stock[c] + (1.0 - cm.carryover[c]) * x
        else:
            new_stock[c] = cm.carryover[c] * stock[c] + x
        response[c] = -np.expm1(-new_stock[c] / cm.saturation[c])
        contacts[c] = cm.saturation[c] * response[c]  # effective contacts: saturating in the stock
        if masked:  # a push channel with an audience table: the share of its audience reached
            coverage[c] = reachable / aud if aud > 0 else 0.0
        elif code != PRICING_CODE["per_send"]:
            coverage[c] = min(1.0, aud / cm.customers)
    return Reach(
        units=units, spend=spend, stock=new_stock, response=response, coverage=coverage, members=members,
        contacts=contacts, per_member=per_member,
    )


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
    unsub_hazard: np.ndarray  # float64[C, G, W, cols]


def day_tables(cm: Compiled, counts: np.ndarray, reach: Reach, day: int = 0, numpy: bool = False) -> DayTables:
    """The kernel's tables for one day from yesterday's counts and today's reach.

    ``counts`` are yesterday's customers by (segment x band, stage); ``day`` selects
    the calendar's multiplier on sessions and purchases. ``numpy``: build the
    thresholds and cuts with the NumPy statement :func:`_outcomes` instead of the fused
    kernel (the same numbers, slower; for the tests)."""
    G, C, W = cm.n_segments, cm.n_channels, cm.width
    lay = cm.layout
    cs = lay.col_stage  # stage of each column
    n_cols = lay.n_cols
    cal = float(cm.calendar[day]) if 0 <= day < cm.calendar.shape[0] else 1.0
    referrers = counts.sum(axis=0) @ cm.referral_rate
    ref_h = referrers / cm.customers
    # cause hazards [G, W, cols, K]: organic, referral, channels
    causes = np.zeros((G, W, n_cols, 2 + C))
    organic = cm.organic if cal == 1.0 else cm.organic * np.where(cm.purchase, cal, 1.0)
    causes[:, :, :, CAUSE_ORGANIC] = organic[:, None, :]
    causes[:, :, cs == UNAWARE, CAUSE_REFERRAL] = ref_h
    p_ch = cm.push * (reach.response * reach.coverage)[:, None, None]  # [C, G, 10]
    ch_h = hazard(p_ch) * (p_ch > 0)
    ch_cols = np.array(np.broadcast_to(ch_h[:, :, None, cs], (C, G, W, n_cols)))
    unsub = np.zeros((C, G, W, n_cols))
    if C:
        mask = cm.mask.reshape(C, G, W, n_cols)
        band = np.arange(W) // 2
        for c in np.flatnonzero(cm.funnel):
            # the calendar lifts what sessions sell, not a session making someone aware or
            # bringing a lapsed person back
            eff = cm.effect[c, cs] * np.where((cs == UNAWARE) | (cs == LAPSED), 1.0, cal)  # [cols]
            aff = cm.affinity[c][:, band]  # [G, W]
            ch_cols[c] = reach.contacts[c] * aff[:, :, None] * eff[None, None, :] * mask[c]
            if cm.unsub[c] > 0:
                unsub[c] = reach.per_member[c] * cm.unsub[c] * mask[c]
        for c in np.flatnonzero(~cm.funnel & (cm.mask.reshape(C, -1).min(axis=1) < 1)):
            ch_cols[c] *= mask[c]
    causes[..., 2:] = np.moveaxis(ch_cols, 0, -1)
    causes[:, :, cs == PROMOTER, :] = 0.0
    if cm.billing is not None:  # a billing day brings the bill and nothing else
        causes[:, :, cm.bill, :] = 0.0
        unsub[..., cm.bill] = 0.0
    adv = causes.sum(axis=-1) * cm.take[:, None, :]  # [G, W, cols]
    repeat_h = cm.repeat_h if cal == 1.0 else cm.repeat_h * np.where(cm.bill, 1.0, cal)[:, None]
    # rows of everyone, then (ref_block) of customers acquired by referral
    from .kernels.tables import outcomes  # numba loads on first use (validation stays fast)

    blocks = [adv, adv * cm.referred[:, None, :]] if cm.ref_block else [adv]
    rows = cm.n_rows
    thr = np.empty((rows, n_cols), np.uint64)
    cut_adv, cut_lapse, cut_unsub = (np.empty((rows, n_cols)) for _ in range(3))
    lam2 = np.ascontiguousarray(cm.lapse)
    uns2 = np.ascontiguousarray(unsub.sum(axis=0))
    rho1 = np.ascontiguousarray(repeat_h.sum(axis=1))
    per_block = rows // len(blocks)
    for j, a in enumerate(blocks):
        if numpy:
            part = _outcomes(cm.levels[:, :, None, None] * a[:, None, :, :], lam2[:, None, None, :],
                             uns2[:, None, :, :], rho1[None, None, None, :])
            for x, y in zip((thr, cut_adv, cut_lapse, cut_unsub), part):
                x[j * per_block : (j + 1) * per_block] = y
        else:
            outcomes(cm.levels, np.ascontiguousarray(a), lam2, uns2, rho1, j * per_block, thr, cut_adv, cut_lapse,
                     cut_unsub)
    return DayTables(
        thr=thr,
        cut_adv=cut_adv,
        cut_lapse=cut_lapse,
        cut_unsub=cut_unsub,
        cause_cum=np.ascontiguousarray(_cumulative(causes).reshape(G * W, n_cols, 2 + C)),
        buy_cum=np.ascontiguousarray(_cumulative(repeat_h)),
        referral_hazard=float(ref_h),
        channel_hazard=ch_cols,
        unsub_hazard=unsub,
    )


def _outcomes(H, lam, uns, rho):
    """thr, cut_adv, cut_lapse, cut_unsub as [rows, cols] from the advance hazard ``H``
    [G, 16, W, cols] and the lapse, unsubscribe and repeat hazards (broadcast to it).
    The NumPy statement of :func:`cvj.kernels.tables.outcomes`, which the day tables
    run (tests/test_day_tables.py holds the two equal)."""
    lam, uns, rho = (np.broadcast_to(x, H.shape) for x in (lam, uns, rho))
    total = H + lam + uns + rho
    p_event = -np.expm1(-total)
    thr = np.floor(p_event * 2.0**32).astype(np.uint64)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(total > 0, total, 1.0)
        cut_adv = np.where(total > 0, H / safe, 0.0)
        cut_lapse = np.where((rho > 0) | (uns > 0), (H + lam) / safe, 1.0)
        cut_unsub = np.where(rho > 0, (H + lam + uns) / safe, 1.0)
    rows, n_cols = int(np.prod(H.shape[:3])), H.shape[3]
    return tuple(np.ascontiguousarray(x.reshape(rows, n_cols)) for x in (thr, cut_adv, cut_lapse, cut_unsub))


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

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
    extra: dict = field(default_factory=dict)

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
    thr: np.ndarray
    cut_adv: np.ndarray
    cut_lapse: np.ndarray
    cause_cum: np.ndarray
    referral_hazard: float
    channel_hazard: np.ndarray  # float64[C, G, 10]


def day_tables(cm: Compiled, counts: np.ndarray, reach: Reach) -> DayTables:
    """The kernel's tables for one day from yesterday's counts and today's reach."""
    G, C = cm.n_segments, cm.n_channels
    referrers = counts.sum(axis=0) @ cm.referral_rate
    ref_h = referrers / cm.customers
    # cause hazards [G, 10, K]: organic, referral, channels
    causes = np.zeros((G, N_STAGES, 2 + C))
    causes[:, :, CAUSE_ORGANIC] = cm.organic
    causes[:, UNAWARE, CAUSE_REFERRAL] = ref_h
    p_ch = cm.push * (reach.response * reach.coverage)[:, None, None]
    ch_h = hazard(p_ch) * (p_ch > 0)
    causes[:, :, 2:] = np.moveaxis(ch_h, 0, -1)
    causes[:, PROMOTER, :] = 0.0
    adv = causes.sum(axis=-1) * cm.take  # [G, 10]
    H = cm.levels[:, :, None] * adv[:, None, :]  # [G, 16, 10]
    lam = np.broadcast_to(cm.lapse[:, None, :], H.shape)
    rho = np.broadcast_to(cm.repeat[None, None, :], H.shape)
    total = H + lam + rho
    p_event = -np.expm1(-total)
    thr = np.floor(p_event * 2.0**32).astype(np.uint64)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(total > 0, total, 1.0)
        cut_adv = np.where(total > 0, H / safe, 0.0)
        cut_lapse = np.where(rho > 0, (H + lam) / safe, 1.0)
    P = G * RESPONSIVENESS_LEVELS
    return DayTables(
        thr=np.ascontiguousarray(thr.reshape(P, N_STAGES)),
        cut_adv=np.ascontiguousarray(cut_adv.reshape(P, N_STAGES)),
        cut_lapse=np.ascontiguousarray(cut_lapse.reshape(P, N_STAGES)),
        cause_cum=np.ascontiguousarray(_cumulative(causes)),
        referral_hazard=float(ref_h),
        channel_hazard=ch_h,
    )


def daily_transition_matrix(cm: Compiled, segment: int, level: int, tables: DayTables) -> np.ndarray:
    """The 10x10 one-day transition matrix of one (segment, responsiveness level) under
    given day tables. With channels and referrals constant this is the time-homogeneous
    Markov chain a customer follows (used by the closed-form tests)."""
    p = segment * RESPONSIVENESS_LEVELS + level
    P = np.zeros((N_STAGES, N_STAGES))
    for s in range(N_STAGES):
        pe = tables.thr[p, s] / 2.0**32
        a = pe * tables.cut_adv[p, s]
        lapse = pe * (tables.cut_lapse[p, s] - tables.cut_adv[p, s])
        to = 1 if s == LAPSED else min(s + 1, PROMOTER)
        if s != PROMOTER:
            P[s, to] += a
        P[s, LAPSED] += lapse
        P[s, s] += 1.0 - a - lapse
    return P

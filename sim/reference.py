"""An independent, per-customer reference model in Mesa 3.3 (slow by design).

This is the oracle the kernel is tested against where no closed form exists. It is
written from ``docs/model.md`` alone: it does not call or port ``kernels/``, the day
tables or the column layout of :mod:`cvj.model`, nor the rate helpers of
:mod:`cvj.scenario`. Only the validated scenario object (:mod:`cvj.scenario`), the
stage constants (:mod:`cvj.stages`) and, to build the social graph, the pure contact
function that defines the graph family (:func:`cvj.network.contacts_of`) are shared.
Every customer is a :class:`mesa.Agent`
with a :meth:`Customer.step` (one day); the model is a :class:`mesa.Model` seeded
through its ``rng`` (a :class:`numpy.random.Generator`), and every random number a
customer uses comes from that generator, not from the kernel's counter-based streams.

It implements scenario format 2 (format-1 files arrive upgraded): customers who
remember (the day of their last activity, their orders, age band and email
permission), rates that depend on the days since the last activity (piecewise or a
Weibull/gamma shape), order multipliers, the unsubscribe outcome, channels in
dashboard figures (bought units, normalised carry-over and saturation, per-contact
chances, audiences counted at the start of the day), the calendar, a sample of
the market, and a subscription core offer (docs/model.md, "Subscriptions"): a
subscriber's bill, free trial and churn by renewal are checked first each day, from its
own count of days since the last bill; and word of mouth on a social network
(``referrals.model = "network"``, docs/model.md, "Word of mouth"): the graph is a
:class:`networkx.MultiDiGraph` with an edge for each contact, built once from the
contact function on a key drawn from the model's generator; referrers are the customer
agents (:meth:`Customer.refer`), who tell a contact on the graph from the state at the
start of the day; the tellings are applied after every customer's own move, in the
order of the referrers' ids, with generations, chains, the referral programme's lift on
every rate and its commission and friend discount per referred sale.

The mechanics deliberately differ from the kernel's while following the same law:

- "does anything happen today" is an exponential clock: with total hazard ``T`` an
  ``Exp(1)`` draw ``E`` rings today when ``E < T``, which has probability
  ``1 - exp(-T)`` (the kernel compares 32 random bits with a threshold);
- the outcome, and then the cause of an advance or the product of a repeat purchase,
  take their own uniform draws (the kernel re-uses one draw, rescaled);
- a customer's daily chances are evaluated at its own ``d`` (days since the last
  activity) from profiles tabulated per day, not per bucket of a column table;
  audiences are counted by testing each customer's state against the audience's
  rules, not through masks;
- channel reach, carry-over, referrals and money are recomputed here from the
  specification, per day, in plain Python;
- the social graph is stored and walked (out-edges keyed by the contact number), where
  the kernel recomputes a contact when a telling needs it; whether a referrer tells and
  which contact are draws of the model's generator (the kernel: counter-based draws),
  and a day's tellings are a list sorted by referrer (the kernel: per-chunk buffers).

Where the kernel is known to differ from ``docs/model.md``, this model follows the page
(its section "Where the kernel differs" lists the cases).

Public API (used by the tests and by the benchmarks)::

    from cvj.reference import simulate_reference
    out = simulate_reference(scenario, seed=1, days=30)
    out["stages"]         # int64[D+1, G*B, 10] customers by (segment, age band) and stage
    out["offer_units"]    # int64[D+1, O]
    out["channel_spend"]  # float64[D+1, C]
    out["summary"]        # dict with the keys of cvj.results.summary
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from datetime import timedelta
from statistics import NormalDist

import mesa
import numpy as np
from scipy.special import gammainc

from .scenario import Audience, Scenario
from .stages import (
    ADVOCATE,
    ASCENDED,
    AWARE,
    ENGAGED,
    EXCITED,
    LAPSED,
    N_STAGES,
    PROMOTER,
    STAGE_ID,
    STAGES,
    SUBSCRIBED,
    UNAWARE,
)

LEVELS = 16
P_CAP = 1.0 - 1e-12
DAYS_PER_YEAR = 365.0
#: ``d`` (full days since the last activity) is capped here: a profile's last piece runs on
MAX_D = 510
#: first days of the buckets in which a named waiting-time shape is a constant daily chance
SHAPE_BUCKETS = (0, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365)
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# names of the two causes that are not channels, in cause order (docs/model.md)
ORGANIC, REFERRAL = "organic", "referral"
# email's audience by stage: customers who bought the lead magnet and did not lapse
PERMISSION = range(SUBSCRIBED, PROMOTER + 1)
REPEAT_BUYERS = (ASCENDED, ADVOCATE, PROMOTER)
#: organic advances that are purchases (the calendar lifts them): entry and core offer
PURCHASE_STAGES = (SUBSCRIBED, EXCITED)
#: Orders a customer starting in a stage has already made (docs/model.md, "Memory"):
#: the entry offer is order 1 and the core offer order 2, so 1 in converted and
#: excited, 2 in ascended .. promoter. Nobody knows when: there is no last order day,
#: so a first order in the run has no gap to a previous one.
START_ORDERS = (0, 0, 0, 0, 1, 1, 2, 2, 2, 0)
#: a channel's daily dashboard figures (what it bought and what that turned into)
FIGURES = ("audience", "impressions", "clicks", "sessions", "sends", "opens", "unsubscribes")
#: repeat orders are recorded by earlier orders (capped) and days since the previous order (capped)
ORDER_CLASSES, MAX_GAP = 8, 400


def _h(p: float) -> float:
    """Hazard of a daily probability; a probability of 1 is capped at 1 - 1e-12."""
    return -math.log1p(-min(float(p), P_CAP))


def _largest_remainder(n: int, shares: list[float]) -> list[int]:
    raw = [s * n for s in shares]
    sizes = [math.floor(x) for x in raw]
    left = n - sum(sizes)
    # biggest remainders first; a tie goes to the segment written first
    order = sorted(range(len(shares)), key=lambda g: (-(raw[g] - sizes[g]), g))
    for g in order[:left]:
        sizes[g] += 1
    return sizes


def _multipliers(spread: float) -> list[float]:
    """Level j of 16: exp(spread * Phi^-1((j + 0.5) / 16)), normalised to mean 1."""
    nd = NormalDist()
    raw = [math.exp(spread * nd.inv_cdf((j + 0.5) / LEVELS)) for j in range(LEVELS)]
    mean = sum(raw) / LEVELS
    return [x / mean for x in raw]


def daily_chances(rate) -> list[float]:
    """The daily probability of a rate for ``d = 0 .. MAX_D`` days since the last activity.

    ``rate`` is a number (constant), a piecewise profile (``from_days``, ``daily``) or a
    named shape (``shape``, ``scale_days``, ``k``, ``share``): of those who ever do it,
    the wait is Weibull or gamma; the daily chance is constant within the buckets of
    :data:`SHAPE_BUCKETS` and keeps each bucket's survival exact; the last bucket uses
    its first day's hazard.
    """
    if isinstance(rate, (int, float)):
        return [float(rate)] * (MAX_D + 1)
    if hasattr(rate, "from_days"):
        out, j = [], 0
        for d in range(MAX_D + 1):
            while j + 1 < len(rate.from_days) and rate.from_days[j + 1] <= d:
                j += 1
            out.append(float(rate.daily[j]))
        return out
    k, scale, share = float(rate.k), float(rate.scale_days), float(rate.share)
    if rate.shape == "weibull":
        def cdf(t):
            return -math.expm1(-((t / scale) ** k))
    else:
        def cdf(t):
            return float(gammainc(k, t / scale))

    def survival(t):
        return 1.0 - share * cdf(t)

    out = []
    for i, lo in enumerate(SHAPE_BUCKETS):
        hi = SHAPE_BUCKETS[i + 1] if i + 1 < len(SHAPE_BUCKETS) else None
        s_lo = survival(lo)
        if s_lo <= 0.0:
            p = 1.0
        elif hi is None:
            p = 1.0 - survival(lo + 1) / s_lo
        else:
            p = 1.0 - (survival(hi) / s_lo) ** (1.0 / (hi - lo))
        out += [p] * ((hi if hi is not None else MAX_D + 1) - lo)
    return out[: MAX_D + 1]


def _pick(shares: list[tuple[int, float]], v: float) -> int:
    """The id whose share holds ``v`` (``0 <= v < sum of shares``), walking in order."""
    for key, h in shares:
        if v < h:
            return key
        v -= h
    return shares[-1][0]  # v rounded onto the total


class _Channel:
    """What the reference needs of one channel, resolved from the scenario once."""

    def __init__(self, model: ReferenceModel, name: str, ch):
        self.name = name
        self.ch = ch
        self.pricing = ch.pricing
        G, f, N = model.G, model.f, model.N
        self.affinity = [ch.affinity.get(g, 1.0) for g in model.seg_names]
        self.band_affinity = [ch.band_affinity.get(b, 1.0) for b in model.band_names]
        aud = getattr(ch, "audience", None)
        self.table = aud if isinstance(aud, Audience) else None
        size = aud.size if isinstance(aud, Audience) else aud
        # "the most people the platform reaches", for a sample the same share of the market
        self.size = None if size is None else min(f * size, N)
        # a channel with pushes keeps the format-1 rule; one without moves people by
        # sessions (an upgraded format-1 channel without pushes lands none: landing_rate 0)
        self.kind = "commission" if ch.pricing == "commission" else "push" if ch.pushes else "funnel"
        self.push = [[0.0] * N_STAGES for _ in range(G)]
        for key, p in ch.pushes.items():
            frm = STAGE_ID[key.split("->")[0].strip()]
            for g in range(G):
                self.push[g][frm] = p * self.affinity[g]
        self.per_contact = [0.0] * N_STAGES
        self.unsubscribe = 0.0
        if self.kind == "funnel":
            self._funnel(model.conversion)
        self.saturation = getattr(ch, "saturation", 1.0)
        self.carryover = getattr(ch, "carryover", 0.0)
        self.stock = 0.0
        # who the channel can reach (as a test on a customer's state), for audience counts
        if self.table is not None and self.table.stages is not None:
            self.stages = frozenset(STAGE_ID[s] for s in self.table.stages)
        elif ch.pricing == "per_send":
            self.stages = frozenset(PERMISSION)
        else:
            self.stages = frozenset(range(N_STAGES))
        self.bands = None
        if self.table is not None and self.table.age_bands is not None:
            self.bands = frozenset(model.band_names.index(b) for b in self.table.age_bands)
        self.permission = True if ch.pricing == "per_send" else (self.table.permission if self.table else None)
        self.days = frozenset(self.table.days) if self.table is not None and self.table.days is not None else None
        # a push channel without an audience table follows format 1: it reaches everyone
        # it reaches (per_send: the permission stages, counted by stage)
        self.filtered = self.kind == "funnel" or self.table is not None

    def _funnel(self, conversion: list[float]) -> None:
        """Per contact (impression, click, send or session), the chance that it moves a
        person on from each stage: the chance it becomes a session times the shop's
        conversion per session (unaware and lapsed: the session itself)."""
        ch = self.ch
        if self.pricing == "cpm":
            session = (ch.ctr or 0.0) * ch.landing_rate
            unaware = ch.aware_per_impression + session
        elif self.pricing == "cpc":
            session = ch.landing_rate
            unaware = session
        elif self.pricing == "per_send":
            session = (ch.click_rate or 0.0) * ch.landing_rate
            unaware = session  # email never reaches the unaware (it needs permission)
            self.unsubscribe = ch.unsubscribe_rate
        else:  # fixed: its contacts are visits, landing_rate of them sessions on the shop
            session = ch.landing_rate
            unaware = session
        self.per_contact[UNAWARE] = unaware
        for s in range(AWARE, PROMOTER):
            self.per_contact[s] = session * conversion[s]
        self.per_contact[LAPSED] = session

    def admits(self, band: int, perm: bool, stage: int, d: int) -> bool:
        """Whether a customer in this state is in the channel's audience today."""
        if stage not in self.stages:
            return False
        if self.permission is not None and perm != self.permission:
            return False
        if self.bands is not None and band not in self.bands:
            return False
        t = self.table
        if t is not None:
            if t.within_days is not None and d > t.within_days:
                return False
            if t.after_days is not None and d < t.after_days:
                return False
            if self.days is not None and d not in self.days:
                return False
        return True


class _Day:
    """Hazards of one customer state on one day (see ``ReferenceModel.hazards``)."""

    __slots__ = ("advance", "cause_total", "causes", "lapse", "products", "repeat", "unsubscribe", "unsubscribes")

    def __init__(self, causes, advance, lapse, unsubscribes, products):
        self.causes = causes  # [(cause, hazard)] of an advance
        self.cause_total = sum(h for _, h in causes)
        self.advance = advance  # take x sum of cause hazards (x responsiveness per customer)
        self.lapse = lapse
        self.unsubscribes = unsubscribes  # [(channel, hazard)]
        self.unsubscribe = sum(h for _, h in unsubscribes)
        self.products = products  # [(offer, hazard)] of a repeat purchase
        self.repeat = sum(h for _, h in products)


class Customer(mesa.Agent):
    """One customer: segment, responsiveness, age band, stage and memory (the day of the
    last activity, orders, the day of the last order, email permission), who acquired
    them, what they paid."""

    def __init__(self, model: ReferenceModel, segment: int):
        super().__init__(model)
        rng = model.rng
        self.segment = segment
        self.level = int(rng.integers(LEVELS))
        self.responsiveness = model.multiplier[segment][self.level]
        stage = bisect.bisect_right(model.start_cum, rng.random() * model.start_cum[-1])
        self.stage = min(stage, N_STAGES - 1)
        cum = model.band_cum[segment]
        self.band = min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)
        self.fb = segment * model.B + self.band
        self.index = len(model.customers)  # row of the model's daily draws
        self.permission = self.stage in PERMISSION
        self.clock = 0  # the starting stage counts as entered on day 0
        self.orders = START_ORDERS[self.stage]
        sub = model.sub
        if sub is not None and self.stage in REPEAT_BUYERS:
            # a paying subscriber part-way through its period: the last bill fell a
            # uniform whole number of days (below the period) before day 0
            self.orders = 3 if sub.trial_days else 2
            self.clock = -int(rng.random() * sub.period_days)
        self.last_order: int | None = None
        self.acquired_by: int | None = None  # cause of unaware -> aware
        # word of mouth on a network: whom this customer can tell (its out-edges on the
        # model's graph, one per contact number, repeats and itself included), the
        # generation and chain root of its latest referral, and that referral's log row
        self.contacts: list[int] = []
        self.generation = 0
        self.root: int | None = None
        self.last_referral: int | None = None
        self.revenue = 0.0
        # first day each stage aware..promoter was reached; the last day of lapsing
        self.reached: list[int | None] = [None] * 9
        if self.stage == LAPSED:
            self.reached[8] = 0
        elif self.stage > UNAWARE:
            self.reached[self.stage - 1] = 0
        self.state = self.state_on(1)

    def state_on(self, day: int) -> tuple:
        """(segment, band, permission, stage, d, next order, acquired by referral) as
        seen on ``day``."""
        d = day - self.clock - 1
        return (
            self.segment,
            self.band,
            self.permission,
            self.stage,
            d if d < MAX_D else MAX_D,
            self.orders + 1 if self.stage in REPEAT_BUYERS else 0,
            self.acquired_by == self.model.REFERRAL_CAUSE,
        )

    def step(self) -> None:
        """One day: advance, lapse, unsubscribe, buy again, or nothing (from the state
        at the start of the day); then count itself for tomorrow's audiences."""
        m = self.model
        if m.sub is not None and self.stage in REPEAT_BUYERS and self._bill(m):
            self.state = state = self.state_on(m.day + 1)
            m.tomorrow[state] += 1
            return
        hz = m.day_hazards.get(self.state) or m.hazards(self.state)
        advance = self.responsiveness * hz.advance
        total = advance + hz.lapse + hz.unsubscribe + hz.repeat
        i = self.index
        # the customer's own draws today: Exp(1) for the clock, uniforms for the choices
        if total > 0.0 and m.clock_draws[i] < total:  # P(rings today) = 1 - exp(-total)
            u = m.outcome_draws[i] * total
            v = m.choice_draws[i]
            if u < advance:
                self._advance(m, hz, v)
            elif u < advance + hz.lapse:
                m.record_move(self, LAPSED, m.lapse_column)
                self.stage = LAPSED
                self.clock = m.day
                self.reached[8] = m.day
            elif u < advance + hz.lapse + hz.unsubscribe:
                # the channels table shares the day's unsubscribes by expected shares, so
                # which email it was is not drawn
                self.permission = False
                m.unsubscribes[m.day, self.fb, self.stage] += 1
            else:
                o = _pick(hz.products, v * hz.repeat)
                if m.sub is not None and o != m.CORE:
                    # an upsell of a subscription shop: sold, but not an order, and the
                    # subscriber's days still count from its last bill
                    m.record_purchase(self, o, order=False)
                else:
                    m.record_purchase(self, o)
                    self.clock = m.day
        self.state = state = self.state_on(m.day + 1)
        m.tomorrow[state] += 1

    def refer(self) -> None:
        """Word of mouth on a network (docs/model.md, "Word of mouth"): with its stage's
        daily chance, tell contact number ``k``, a uniform ``k`` of its out-edges on the
        graph. Runs for every referrer before anyone's own move, so both stages are those
        at the start of the day; a telling that reaches an ``unaware`` or ``lapsed``
        friend is noted and applied after the day (:meth:`ReferenceModel.apply_referrals`)."""
        m = self.model
        if not self.contacts or m.rng.random() >= m.tell[self.stage]:
            return
        friend = m.customers[self.contacts[int(m.rng.integers(len(self.contacts)))]]
        if friend is not self and friend.stage in (UNAWARE, LAPSED):
            m.told.append((self.index, friend.index))

    def _bill(self, m: ReferenceModel) -> bool:
        """A subscriber's bill, if one is due today: a trial ends ``trial_days`` after
        its sign-up, a paid period lasts ``period_days``; the subscriber pays or leaves
        (with the churn of this renewal) and nothing else happens today. False if no
        bill is due."""
        sub = m.sub
        in_trial = sub.trial_days > 0 and self.orders == 2
        due = sub.trial_days if in_trial else sub.period_days
        if m.day - self.clock < due:
            return False
        if in_trial:
            leave = 1.0 - (1.0 if sub.trial_conversion is None else sub.trial_conversion)
        else:
            churn = sub.churn if isinstance(sub.churn, list) else [sub.churn]
            renewal = self.orders - 2 - (1 if sub.trial_days else 0)  # bills paid since the first, 0-based
            leave = churn[min(max(renewal, 0), len(churn) - 1)]
        if m.outcome_draws[self.index] < leave:
            m.record_move(self, LAPSED, m.lapse_column)
            self.stage = LAPSED
            self.clock = m.day
            self.reached[8] = m.day
            if in_trial:
                m.trials_unpaid[m.day] += 1
        else:
            if in_trial:
                m.first_payment(self)
            m.record_purchase(self, m.CORE)
            self.clock = m.day
        return True
    def _advance(self, m: ReferenceModel, hz: _Day, v: float) -> None:
        k = _pick(hz.causes, v * hz.cause_total)
        s = self.stage
        new = AWARE if s == LAPSED else s + 1
        m.record_move(self, new, k)
        self.stage = new
        # a subscriber's days count from its last bill, not from moves among subscribers
        if m.sub is None or s not in (ASCENDED, ADVOCATE):
            self.clock = m.day
        if self.reached[new - 1] is None:
            self.reached[new - 1] = m.day
        if s == UNAWARE:
            self.acquired_by = k
        elif s == ENGAGED:
            m.record_purchase(self, m.LEAD_MAGNET)
            self.permission = True
        elif s == SUBSCRIBED:
            m.record_purchase(self, m.ENTRY)
            m.conversions[self.segment] += 1
            if self.acquired_by == m.REFERRAL_CAUSE:
                m.referred_today += 1
        elif s == EXCITED:
            if m.sub is not None and m.sub.trial_days and self.orders <= 1:
                m.record_purchase(self, m.TRIAL)  # a first-time buyer's free trial
            else:
                if m.sub is not None:
                    m.first_payment(self)  # a sign-up that pays
                    m._paid_signups += 1
                m.record_purchase(self, m.CORE)


class ReferenceModel(mesa.Model):
    """The customer journey of docs/model.md, one :class:`Customer` agent per customer.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario (``cvj.load_scenario`` / ``cvj.scenario.validate_scenario``).
    seed : int
        Seeds the model's ``rng`` (numpy Generator); all randomness comes from it.
    days : int, optional
        Horizon; default ``scenario.market.days``.
    """

    LEAD_MAGNET, ENTRY, CORE = 0, 1, 2
    REFERRAL_CAUSE = 1

    def __init__(self, scenario: Scenario, seed: int, days: int | None = None):
        super().__init__(rng=int(seed))
        sc = scenario
        self.scenario = sc
        self.seed = int(seed)
        m = sc.market
        self.market = m.customers
        self.N = m.sample if m.sample is not None else m.customers
        # a sample simulates the same business at a smaller size: money and reach scale by f
        self.f = self.N / self.market
        self.D = m.days if days is None else int(days)
        self.seg_names = list(sc.segments)
        self.segs = list(sc.segments.values())
        self.G = len(self.segs)
        self.band_names = list(sc.age_bands) or ["all"]
        self.B = len(self.band_names)
        self.conversion = [0.0] * N_STAGES
        for name, p in sc.shop.conversion.items():
            self.conversion[STAGE_ID[name]] = p
        self.chan_names = list(sc.channels)
        self.C = len(self.chan_names)
        self.chans = [_Channel(self, name, ch) for name, ch in sc.channels.items()]
        self.cause_names = [ORGANIC, REFERRAL, *self.chan_names]
        self.K = len(self.cause_names)
        self.lapse_column = self.K

        # offers: lead magnet, entry, core, upsells (file order)
        off = sc.offers
        self.offer_names = ["lead_magnet", "entry", "core", *off.upsells]
        self.prices = [0.0, off.entry.price, off.core.price, *(u.price for u in off.upsells.values())]
        self.unit_costs = [
            off.lead_magnet.unit_cost,
            off.entry.unit_cost,
            off.core.unit_cost,
            *(u.unit_cost for u in off.upsells.values()),
        ]
        self.sub = off.core.subscription
        self.TRIAL = None
        if self.sub is not None and self.sub.trial_days:
            self.TRIAL = len(self.offer_names)  # the free trial is an offer of its own
            self.offer_names.append("core_trial")
            self.prices.append(0.0)
            self.unit_costs.append(0.0)
        self.O = len(self.offer_names)
        rates = [(self.CORE, off.core.repeat_rate)]
        rates += [(3 + j, u.take_rate) for j, u in enumerate(off.upsells.values())]
        self.repeat_profiles = [(o, daily_chances(r)) for o, r in rates]
        # order number -> multiplier; the last key holds for that order and all later ones
        mult = off.core.order_multipliers
        self.order_mult = [float(v) for v in mult.values()]

        # per segment: take-rate multipliers; per stage: organic advance and lapse profiles
        self.multiplier = [_multipliers(s.responsiveness_spread) for s in self.segs]
        self.take = []
        for seg in self.segs:
            take = [1.0] * N_STAGES
            take[SUBSCRIBED] = math.exp(-off.entry.price_sensitivity * seg.price_sensitivity * off.entry.price)
            take[EXCITED] = math.exp(-off.core.price_sensitivity * seg.price_sensitivity * off.core.price)
            self.take.append(take)
        # customers acquired by referral (docs/model.md, "Word of mouth"): warm leads that
        # pay the entry offer's price less a two-sided programme's friend discount
        self.warm = sc.referrals.referred_conversion
        discount = next((ch.friend_discount for ch in sc.channels.values() if ch.pricing == "commission"), 0.0)
        self.take_referred = []
        for g, seg in enumerate(self.segs):
            take = list(self.take[g])
            friend_price = off.entry.price - min(discount, off.entry.price)
            take[SUBSCRIBED] = math.exp(-off.entry.price_sensitivity * seg.price_sensitivity * friend_price)
            self.take_referred.append(take)
        zero = [0.0] * (MAX_D + 1)
        self.advance_profile = [zero] * N_STAGES
        for name, r in sc.organic.advance.items():
            self.advance_profile[STAGE_ID[name]] = daily_chances(r)
        self.advance_profile[LAPSED] = daily_chances(sc.organic.reactivation)
        self.lapse_profile = [zero] * N_STAGES
        for name, r in sc.organic.lapse.items():
            self.lapse_profile[STAGE_ID[name]] = daily_chances(r)
        # the referral programme's referral_lift multiplies every rate (both models)
        lift = next((ch.referral_lift for ch in sc.channels.values() if ch.pricing == "commission"), 1.0)
        self.referral_rates = [0.0] * N_STAGES
        for name, r in sc.referrals.rates.items():
            self.referral_rates[STAGE_ID[name]] = r * lift
        # with the network model a rate is a referrer's daily chance of telling one
        # contact, and the mean-field hazard is zero
        self.network = sc.referrals.model == "network"
        self.tell = [min(1.0, r) for r in self.referral_rates] if self.network else [0.0] * N_STAGES
        self.calendar = self._calendar(sc)

        # customers: contiguous segment blocks; level, starting stage and age band drawn per customer
        start = [0.0] * N_STAGES
        for name, share in m.initial_stages.items():
            start[STAGE_ID[name]] = share
        self.start_cum = list(np.cumsum(start))
        self.band_cum = []
        for seg in self.segs:
            shares = [seg.age_shares.get(b, 0.0) for b in self.band_names] if seg.age_shares else [1.0] * self.B
            self.band_cum.append(list(np.cumsum(shares)))
        self.sizes = _largest_remainder(self.N, [s.share for s in self.segs])
        self.customers = []
        for g, size in enumerate(self.sizes):
            for _ in range(size):
                self.customers.append(Customer(self, g))

        D1, GB, C, O, K = self.D + 1, self.G * self.B, self.C, self.O, self.K
        self.stages = np.zeros((D1, GB, N_STAGES), np.int64)
        self.flows = np.zeros((D1, GB, N_STAGES, K + 1), np.int64)
        self.unsubscribes = np.zeros((D1, GB, N_STAGES), np.int64)
        self.offer_units = np.zeros((D1, GB, O), np.int64)
        self.channel_units = np.zeros((D1, C))
        self.channel_spend = np.zeros((D1, C))
        self.channel_budget = np.zeros((D1, C))
        self.figures = np.zeros((D1, C, len(FIGURES)))
        self.referred = np.zeros(D1, np.int64)
        self.first_payments = np.zeros(D1, np.int64)
        self.referred_first_payments = np.zeros(D1, np.int64)
        self.trials_unpaid = np.zeros(D1, np.int64)
        self._paid_signups = 0
        self.gaps = np.zeros((ORDER_CLASSES, MAX_GAP + 1), np.int64)
        self.conversions = [0] * self.G
        self.counts = [[0] * N_STAGES for _ in range(GB)]
        for c in self.customers:
            self.counts[c.fb][c.stage] += 1
        self.stages[0] = self.counts
        # customers by state at the start of day 1 (what day 1's audiences count)
        self.tomorrow = Counter(c.state for c in self.customers)
        self._admits: dict[tuple, tuple] = {}
        # word of mouth on a network: the graph, the day's tellings, the referral log
        self.graph = None
        self.told: list[tuple[int, int]] = []
        self.ref_log: list[list] = []  # [day, referrer, friend, friend's stage, orders before, generation, root]
        self.ref_orders_after: list[int | None] = []  # the friend's orders at its next referral
        if self.network:
            self.graph = self._graph()
            for c in self.customers:
                edges = sorted(self.graph.out_edges(c.index, keys=True), key=lambda e: e[2])
                c.contacts = [j for _, j, _ in edges]  # contact k is the k-th
        self.day = 0

    def _graph(self):
        """The social graph as a :class:`networkx.MultiDiGraph`: an edge ``i -> j`` with
        key ``k`` for customer ``i``'s contact number ``k`` (docs/model.md, "Word of
        mouth"), repeats and self-loops kept (a telling that picks the person themself is
        no referral).

        The contacts come from the same pure contact function the kernel evaluates on
        demand (:func:`cvj.network.contacts_of`) on a stream key drawn from this model's
        generator. Its inputs are derived here from the page: segment blocks (this
        model's own sizes), each segment's chance of a contact's segment (own with
        ``h + (1 - h) share``, another with ``(1 - h) share``), and each customer's
        segment and age band, written where the function reads them (customer ``i``'s
        cell ``(segment * 16 + level) * 2B + 2 band``).
        """
        from types import SimpleNamespace

        import networkx as nx

        from .network import Network, contacts_of

        net = self.scenario.referrals.network
        sizes = np.array(self.sizes, np.int64)
        share = sizes / sizes.sum()
        h = net.segment_homophily
        seg_cum = np.empty((self.G, self.G))
        for g in range(self.G):
            pick = [(1.0 - h) * share[t] + (h if t == g else 0.0) for t in range(self.G)]
            seg_cum[g] = np.cumsum(pick) / sum(pick)
            seg_cum[g, -1] = 1.0
        W = 2 * self.B
        row = np.array([(c.segment * LEVELS + c.level) * W + 2 * c.band for c in self.customers], np.uint16)
        settings = Network(
            chance=np.zeros(N_STAGES, np.uint64), chance_p=np.array(self.tell), contacts=int(net.contacts),
            clustering=float(net.clustering), segment_homophily=float(h), age_homophily=float(net.age_homophily),
            seg_lo=(np.cumsum(sizes) - sizes).astype(np.int64), seg_n=sizes, seg_cum=seg_cum,
        )
        key = np.uint64(self.rng.integers(2**63))
        ids = np.arange(self.N, dtype=np.int64)
        contacts = contacts_of(SimpleNamespace(width=W), settings, key, row, ids)
        graph = nx.MultiDiGraph()
        graph.add_nodes_from(range(self.N))
        # the edge key is the contact number k
        graph.add_edges_from((i, j, k) for i in range(self.N) for k, j in enumerate(contacts[i].tolist()))
        return graph

    def apply_referrals(self) -> None:
        """Apply the day's tellings after every customer's own move, in the order of the
        referrers' ids (docs/model.md: the kernel's buffers hold customers in id order and
        are applied chunk by chunk): a friend still ``unaware`` or ``lapsed`` moves to
        ``aware`` with cause ``referral`` (a later telling of the same friend finds it
        aware and is no referral); the referral is logged with its generation (the
        referrer's latest referral's plus one; 1 for a referrer never referred) and chain."""
        d = self.day
        for src, tgt in sorted(self.told):
            friend = self.customers[tgt]
            s = friend.stage
            if s not in (UNAWARE, LAPSED):
                continue  # it moved on its own today, or a referrer before this one told it
            self.record_move(friend, AWARE, self.REFERRAL_CAUSE)
            friend.stage = AWARE
            friend.clock = d
            if friend.reached[0] is None:
                friend.reached[0] = d
            if s == UNAWARE:
                friend.acquired_by = self.REFERRAL_CAUSE
            self.tomorrow[friend.state] -= 1  # it was counted for tomorrow's audiences by its step
            friend.state = friend.state_on(d + 1)
            self.tomorrow[friend.state] += 1
            referrer = self.customers[src]
            if referrer.generation > 0:
                friend.generation, friend.root = referrer.generation + 1, referrer.root
            else:
                friend.generation, friend.root = 1, src
            if friend.last_referral is not None:
                self.ref_orders_after[friend.last_referral] = friend.orders
            friend.last_referral = len(self.ref_log)
            self.ref_log.append([d, src, tgt, s, friend.orders, friend.generation, friend.root])
            self.ref_orders_after.append(None)
        self.told = []

    @staticmethod
    def _calendar(sc: Scenario) -> list[float]:
        """Multiplier on sessions' conversions and purchases for each day (day 1 = start_date)."""
        D = sc.market.days
        out = [1.0] * (D + 1)
        cal = sc.calendar
        if sc.start_date is None or not (cal.weekday or cal.events):
            return out
        for d in range(1, D + 1):
            date = sc.start_date + timedelta(days=d - 1)
            lift = cal.weekday.get(WEEKDAY_NAMES[date.weekday()], 1.0)
            for ev in cal.events:
                if ev.start <= date <= ev.end:
                    lift *= ev.lift
            out[d] = lift
        return out

    # -- what customers report -------------------------------------------------
    def record_move(self, customer: Customer, new: int, column: int) -> None:
        fb, s = customer.fb, customer.stage
        self.flows[self.day, fb, s, column] += 1
        self.counts[fb][s] -= 1
        self.counts[fb][new] += 1

    def first_payment(self, customer: Customer) -> None:
        self.first_payments[self.day] += 1
        if customer.acquired_by == self.REFERRAL_CAUSE:
            self.referred_first_payments[self.day] += 1

    def record_purchase(self, customer: Customer, o: int, order: bool = True) -> None:
        self.offer_units[self.day, customer.fb, o] += 1
        customer.revenue += self.prices[o]
        if o == self.LEAD_MAGNET or not order:
            return  # the lead magnet is not an order (nor a subscription shop's upsell)
        if customer.last_order is not None:
            gap = min(self.day - customer.last_order, MAX_GAP)
            self.gaps[min(customer.orders, ORDER_CLASSES - 1), gap] += 1
        customer.orders += 1
        customer.last_order = self.day

    # -- the day -----------------------------------------------------------------
    def planned_budget(self, c: int, day: int) -> float:
        """The spend a channel plans for ``day`` (fixed: the retainer for one day), for the sample."""
        ch = self.chans[c].ch
        if ch.pricing == "commission":
            return 0.0
        if ch.pricing == "fixed":
            monthly = ch.monthly_cost
            for p in ch.schedule:
                if p.from_day <= day <= p.to_day:
                    monthly = p.monthly_cost
            return self.f * monthly * 12.0 / DAYS_PER_YEAR
        daily = ch.daily_budget
        for p in ch.schedule:
            if p.from_day <= day <= p.to_day:
                daily = p.daily_budget
        return self.f * daily

    def admits(self, state: tuple) -> tuple:
        """For each channel, whether a customer in ``state`` is in its audience."""
        got = self._admits.get(state)
        if got is None:
            _, b, perm, s, d, _, _ = state
            got = tuple(ch.filtered and ch.admits(b, perm, s, d) for ch in self.chans)
            self._admits[state] = got
        return got

    def _channels(self, day: int, today: Counter) -> None:
        """Buy today's units for each channel's audience, pay for them, and set what one
        audience member gets: effective contacts (funnel) or response x coverage (push)."""
        yesterday_permission = sum(self.counts[fb][s] for fb in range(self.G * self.B) for s in PERMISSION)
        members = [0] * self.C
        for state, n in today.items():
            for c, inside in enumerate(self.admits(state)):
                if inside:
                    members[c] += n
        self.strength = [0.0] * self.C
        self.per_member = [0.0] * self.C
        for c, chan in enumerate(self.chans):
            ch = chan.ch
            if chan.kind == "commission":
                self.strength[c] = 1.0  # response = coverage = 1; paid after the day
                continue
            budget = self.planned_budget(c, day)
            self.channel_budget[day, c] = budget
            # n people are in the audience; the platform reaches at most a of them a day
            if chan.filtered:
                n = members[c]
                a = n if chan.size is None else min(n, chan.size)
            elif ch.pricing == "per_send":
                n = a = yesterday_permission
            else:
                n = a = self.N if chan.size is None else chan.size
            if ch.pricing == "fixed":
                base = self.f * ch.monthly_cost * 12.0 / DAYS_PER_YEAR
                units = self.f * ch.contacts_per_day * budget / base if base > 0 else 0.0
                spend = budget
            else:
                price = ch.unit_cost / 1000.0 if ch.pricing == "cpm" else ch.unit_cost
                cap = ch.max_units_per_person
                if ch.pricing == "per_send" and ch.max_per_week is not None:
                    cap = min(cap, ch.max_per_week / 7.0)  # the weekly frequency cap, per day
                units = min(budget / price, a * cap)
                spend = units * price
            self.channel_units[day, c] = units
            self.channel_spend[day, c] = spend
            self.figures[day, c, 0] = n
            # what was bought for the a people it reaches is spread over all n in the audience
            x = units / n if n > 0 else 0.0
            self.per_member[c] = x
            if chan.kind == "funnel":
                # normalised carry-over: the stock settles at the contacts bought a day
                chan.stock = chan.carryover * chan.stock + (1.0 - chan.carryover) * x
                self.strength[c] = chan.saturation * (1.0 - math.exp(-chan.stock / chan.saturation))
            else:
                chan.stock = chan.carryover * chan.stock + x
                response = 1.0 - math.exp(-chan.stock / chan.saturation)
                if chan.filtered:  # only its audience: the share of it reached
                    coverage = a / n if n > 0 else 0.0
                else:
                    coverage = 1.0 if ch.pricing == "per_send" else min(1.0, a / self.N)
                self.strength[c] = response * coverage

    def hazards(self, state: tuple) -> _Day:
        """The hazards of every outcome for a customer in ``state`` today (before its
        responsiveness, which scales the advance)."""
        got = self.day_hazards.get(state)
        if got is not None:
            return got
        g, b, _, s, d, nxt, referred = state
        cal = self.calendar[self.day] if self.day < len(self.calendar) else 1.0
        inside = self.admits(state)
        causes = []
        unsubscribes = []
        if s != PROMOTER:
            organic = self.segs[g].advance_multiplier * _h(self.advance_profile[s][d])
            if s in PURCHASE_STAGES:
                organic *= cal
            if organic > 0:
                causes.append((0, organic))
            if s == UNAWARE and self.referral > 0:
                causes.append((1, self.referral))
            for c, chan in enumerate(self.chans):
                if chan.kind == "push":
                    if chan.filtered and not inside[c]:
                        continue
                    p = chan.push[g][s] * self.strength[c]
                    h = _h(p) if p > 0 else 0.0
                elif chan.kind == "funnel" and inside[c]:
                    h = self.strength[c] * chan.affinity[g] * chan.band_affinity[b] * chan.per_contact[s]
                    if s not in (UNAWARE, LAPSED):
                        h *= cal
                elif chan.kind == "commission":
                    h = _h(chan.push[g][s]) if chan.push[g][s] > 0 else 0.0
                else:
                    h = 0.0
                if h > 0:
                    causes.append((2 + c, h))
        for c, chan in enumerate(self.chans):
            if chan.kind == "funnel" and chan.unsubscribe > 0 and inside[c]:
                unsubscribes.append((c, self.per_member[c] * chan.unsubscribe))
        take = self.take[g][s]
        if referred:
            # a referred person: a warm lead, who sees the friend's discount on the entry offer
            take = self.take_referred[g][s] * (self.warm if s in (AWARE, ENGAGED, SUBSCRIBED) else 1.0)
        advance = take * sum(h for _, h in causes)
        lapse = 0.0
        if s not in (UNAWARE, LAPSED):
            lapse = self.segs[g].lapse_multiplier * _h(self.lapse_profile[s][d])
        products = []
        if s in REPEAT_BUYERS:
            mult = 1.0
            if self.order_mult:
                mult = self.order_mult[min(max(nxt - 3, 0), len(self.order_mult) - 1)]
            for o, profile in self.repeat_profiles:
                if profile[d] > 0:
                    products.append((o, _h(profile[d]) * mult * cal))
        got = _Day(causes, advance, lapse, unsubscribes, [(o, h) for o, h in products if h > 0])
        self.day_hazards[state] = got
        return got

    def step(self) -> None:
        """One simulated day for every customer, from the state at the start of the day."""
        self.day += 1
        d = self.day
        today, self.tomorrow = self.tomorrow, Counter()
        self._channels(d, today)
        per_stage = [sum(self.counts[fb][s] for fb in range(self.G * self.B)) for s in range(N_STAGES)]
        self.referral = 0.0
        if not self.network:
            self.referral = sum(self.referral_rates[s] * per_stage[s] for s in range(N_STAGES)) / self.N
        self.day_hazards = {}
        self.referred_today = 0
        # every customer's own random numbers for today (an Exp(1) clock, two uniforms)
        self.clock_draws = self.rng.standard_exponential(self.N).tolist()
        self.outcome_draws = self.rng.random(self.N).tolist()
        self.choice_draws = self.rng.random(self.N).tolist()
        unsub_before = int(self.unsubscribes[d].sum())

        if self.network:
            # referrers tell from the state at the start of the day, before anyone moves
            self.agents.select(lambda a: self.tell[a.stage] > 0).shuffle_do("refer")
        self.agents.shuffle_do("step")
        if self.network:
            self.apply_referrals()

        for c, chan in enumerate(self.chans):
            if chan.kind == "commission":
                paid = self.referred_today
                if getattr(chan.ch, "commission_on", "entry_sale") == "first_payment":
                    paid = int(self.referred_first_payments[d])
                self.channel_units[d, c] = paid
                # the referrer's commission and, two-sided, the friend's discount on
                # each referred entry sale
                self.channel_spend[d, c] = paid * chan.ch.commission + self.referred_today * chan.ch.friend_discount
        self.referred[d] = self.referred_today
        self._figures(d, int(self.unsubscribes[d].sum()) - unsub_before)
        self.stages[d] = self.counts

    def _subscription_kpis(self, spend: float, up: float) -> dict:
        """Paying subscribers at the end (counted customer by customer), MRR, first
        payments, trial conversion and churn per renewal (docs/model.md, "KPIs")."""
        sub = self.sub
        subs = [c for c in self.customers if c.stage in REPEAT_BUYERS]
        paying = sum(1 for c in subs if not (sub.trial_days and c.orders == 2))
        monthly = self.prices[self.CORE] * (1.0 if sub.period == "month" else 1.0 / 12.0)
        first = int(self.first_payments.sum())
        paid_trials = first - int(self._paid_signups)
        ended = paid_trials + int(self.trials_unpaid.sum())
        leaving = int(self.flows[:, :, list(REPEAT_BUYERS), self.lapse_column].sum()) - int(self.trials_unpaid.sum())
        renewals = int(self.offer_units[:, :, self.CORE].sum()) - first
        return {
            "subscribers_end": round(paying * up),
            "mrr_end": paying * monthly * up,
            "arr_end": paying * monthly * 12.0 * up,
            "first_payments": round(first * up),
            "cac_first_payment": spend / first if first else None,
            "trial_conversion": paid_trials / ended if sub.trial_days and ended else None,
            "churn_per_renewal": leaving / (renewals + leaving) if renewals + leaving else None,
        }

    def _figures(self, d: int, unsubscribed: int) -> None:
        """Each channel's dashboard figures for day ``d``: clicks, sessions and opens are
        binomial in what was bought (a retainer's sessions: Poisson in its effective
        contacts); unsubscribes are the day's, shared among email channels by their
        expected shares (sends x unsubscribe rate)."""
        rng = self.rng
        expected = [self.channel_units[d, c] * ch.unsubscribe for c, ch in enumerate(self.chans)]
        total = sum(expected)
        for c, chan in enumerate(self.chans):
            ch, units, row = chan.ch, self.channel_units[d, c], self.figures[d, c]
            # a channel with pushes (the format-1 rule) reports only what it bought
            funnel = chan.kind == "funnel"
            if ch.pricing == "cpm":
                row[1] = n = round(units)
                if funnel and ch.ctr is not None:
                    row[2] = k = rng.binomial(n, ch.ctr)
                    row[3] = rng.binomial(k, ch.landing_rate)
            elif ch.pricing == "cpc":
                row[2] = k = round(units)
                if funnel and ch.ctr:
                    row[1] = round(k / ch.ctr)
                row[3] = rng.binomial(k, ch.landing_rate) if funnel else k  # each click a session
            elif ch.pricing == "per_send":
                row[4] = n = round(units)
                opens = rng.binomial(n, ch.open_rate) if funnel and ch.open_rate is not None else 0
                row[5] = opens
                if funnel and ch.click_rate is not None:
                    if opens and ch.open_rate >= ch.click_rate > 0:
                        k = rng.binomial(opens, ch.click_rate / ch.open_rate)  # clicks come from opens
                    else:
                        k = rng.binomial(n, ch.click_rate)
                    row[2] = k
                    row[3] = rng.binomial(k, ch.landing_rate)
                if total > 0:
                    row[6] = unsubscribed * expected[c] / total
            elif ch.pricing == "fixed" and chan.kind == "funnel":
                # a retainer's sessions: its effective (built-up) contacts of everyone in its audience
                row[3] = rng.poisson(self.strength[c] * row[0] * ch.landing_rate)

    # -- results ----------------------------------------------------------------
    def results(self) -> dict:
        """Arrays of the run so far and its KPIs (see :func:`simulate_reference`)."""
        units = self.offer_units.sum(axis=1)
        price = np.array(self.prices)
        unit_cost = np.array(self.unit_costs)
        revenue_d = units @ price
        cost_d = units @ unit_cost
        spend_d = self.channel_spend.sum(axis=1)
        spend, revenue, cost = float(spend_d.sum()), float(revenue_d.sum()), float(cost_d.sum())
        profit = revenue - cost - spend
        cumulative = 0.0
        payback = None
        for d in range(1, self.day + 1):
            cumulative += revenue_d[d] - cost_d[d] - spend_d[d]
            if cumulative >= 0:
                payback = d
                break
        front = (self.LEAD_MAGNET, self.ENTRY)
        margin = (price - unit_cost) * units.sum(axis=0)
        front_margin = float(sum(margin[o] for o in front))
        back_margin = float(sum(margin[o] for o in range(self.O) if o not in front))
        conversions = sum(self.conversions)
        up = 1.0 / self.f  # the summary speaks for the whole market
        summary = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "replication": 0,
            "customers": self.market,
            "simulated": self.N,
            "days": self.day,
            "spend": spend * up,
            "revenue": revenue * up,
            "cost": cost * up,
            "profit": profit * up,
            "conversions": round(conversions * up),
            "cac": spend / conversions if conversions else None,
            "roas": revenue / spend if spend > 0 else None,
            "payback_day": payback,
            "front_end_profit": (front_margin - spend) * up,
            "back_end_profit": back_margin * up,
            "referral_share": float(self.referred.sum()) / conversions if conversions else None,
        }
        referrals = self._referrals()
        summary.update(self._network_kpis(referrals))
        revenue_by_segment = [0.0] * self.G
        for c in self.customers:
            revenue_by_segment[c.segment] += c.revenue
        for g, name in enumerate(self.seg_names):
            conv = self.conversions[g]
            summary[f"ltv_{name}"] = revenue_by_segment[g] / conv if conv else None
        for s, name in enumerate(STAGES):
            summary[f"end_{name}"] = round(sum(self.counts[fb][s] for fb in range(self.G * self.B)) * up)
        if self.sub is not None:
            summary.update(self._subscription_kpis(spend, up))
        D1 = self.day + 1
        by_segment = self.offer_units[:D1].reshape(D1, self.G, self.B, self.O).sum(axis=2)
        reached = np.array([[-1 if r is None else r for r in c.reached] for c in self.customers], np.int64)
        return {
            "stages": self.stages[:D1].copy(),
            "flows": self.flows[:D1].copy(),
            "unsubscribes": self.unsubscribes[:D1].copy(),
            "offer_units": self.offer_units[:D1].sum(axis=1),
            "offer_units_by_segment": by_segment,
            "channel_units": self.channel_units[:D1].copy(),
            "channel_spend": self.channel_spend[:D1].copy(),
            "channel_budget": self.channel_budget[:D1].copy(),
            "figures": self.figures[:D1].copy(),
            "referred": self.referred[:D1].copy(),
            "gaps": self.gaps.copy(),
            "reached": reached.reshape(len(self.customers), 9),
            "revenue_by_segment": np.array(revenue_by_segment),
            "referrals": referrals,
            "summary": summary,
        }

    def _referrals(self) -> dict[str, np.ndarray]:
        """The referral log as arrays, one entry per referral that took effect, in the
        order applied (empty without the network model)."""
        log = np.array(self.ref_log, np.int64).reshape(-1, 7)
        friends = log[:, 2]
        # "bought": the friend ordered after the referral, before being referred again
        after = np.array(
            [self.customers[j].orders if a is None else a for j, a in zip(friends.tolist(), self.ref_orders_after)],
            np.int64,
        )
        fb = np.array([c.fb for c in self.customers], np.int64)
        return {
            "day": log[:, 0],
            "referrer": log[:, 1],
            "referred": friends,
            "referrer_fb": fb[log[:, 1]],
            "referred_fb": fb[friends],
            "from_stage": log[:, 3],
            "generation": log[:, 5],
            "root": log[:, 6],
            "bought": after > log[:, 4],
        }

    def _network_kpis(self, referrals: dict) -> dict:
        """``viral_coefficient`` (friends who ordered after a referral, per customer with
        an order at the horizon) and ``buyers_who_refer`` (the share of those customers who
        made someone aware); None without the network model or without buyers."""
        buyers = sum(1 for c in self.customers if c.orders > 0)
        if not self.network or buyers == 0:
            return {"viral_coefficient": None, "buyers_who_refer": None}
        referrers = set(referrals["referrer"].tolist())
        return {
            "viral_coefficient": int(referrals["bought"].sum()) / buyers,
            "buyers_who_refer": sum(1 for i in referrers if self.customers[i].orders > 0) / buyers,
        }


def simulate_reference(scenario: Scenario, seed: int, days: int | None = None) -> dict:
    """Run the Mesa reference model to the horizon.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario. Keep the simulated customers (``market.sample`` or
        ``market.customers``) small (thousands): every customer is a Python object
        stepped once a day.
    seed : int
        Seeds the model's numpy Generator. Different seeds give independent runs.
    days : int, optional
        Horizon (default ``scenario.market.days``).

    Returns
    -------
    dict
        ``stages`` int64[D+1, G*B, 10]: customers by (segment, age band) and stage at
        the end of each day (row 0: the start; ``segment * B + band``); ``flows``
        int64[D+1, G*B, 10, K+1]: moves out of each stage by cause (organic, referral,
        channels...; last column: lapse); ``unsubscribes`` int64[D+1, G*B, 10]: email
        permissions lost, by stage; ``offer_units`` int64[D+1, O]
        (``offer_units_by_segment`` [D+1, G, O]); ``channel_units``, ``channel_spend``,
        ``channel_budget`` float64[D+1, C]; ``figures`` float64[D+1, C, len(FIGURES)]:
        each channel's dashboard figures; ``referred`` int64[D+1]: referred sales;
        ``gaps`` int64[ORDER_CLASSES, MAX_GAP+1]: orders after an earlier one by the
        number of earlier orders (capped) and the days since the previous one;
        ``reached`` int64[N, 9]: the first day each stage aware..promoter was reached
        and the last day of lapsing (-1: never); ``revenue_by_segment`` float64[G];
        ``referrals``: one entry per referral that took effect, in the order applied
        (empty without the network model), as int64 arrays ``day``, ``referrer``,
        ``referred`` (customer ids), ``referrer_fb``, ``referred_fb`` (``segment * B +
        band``), ``from_stage`` (the friend's: unaware or lapsed), ``generation``,
        ``root`` (the customer whose chain it belongs to) and the bool array ``bought``
        (the friend ordered after it, before being referred again or by the horizon);
        ``summary``: the KPIs, with the keys of :func:`cvj.results.summary` (money and
        counts for the whole market when a sample is simulated).
    """
    model = ReferenceModel(scenario, seed, days)
    while model.day < model.D:
        model.step()
    return model.results()


__all__ = ["FIGURES", "Customer", "ReferenceModel", "daily_chances", "simulate_reference"]

"""An independent, per-customer reference model in Mesa 3.3 (slow by design).

This is the oracle the kernel is tested against where no closed form exists. It is
written from ``docs/model.md`` alone: it does not call or port ``kernels/`` or the day
tables of :mod:`cvj.model`. Only the scenario parser (:mod:`cvj.scenario`) and the stage
constants (:mod:`cvj.stages`) are shared. Every customer is a :class:`mesa.Agent` with a
:meth:`Customer.step` (one day); the model is a :class:`mesa.Model` seeded through its
``rng`` (a :class:`numpy.random.Generator`), and every random number a customer uses
comes from that generator, not from the kernel's counter-based streams.

The mechanics deliberately differ from the kernel's while following the same law:

- "does anything happen today" is an exponential clock: with total hazard ``T`` an
  ``Exp(1)`` draw ``E`` rings today when ``E < T``, which has probability
  ``1 - exp(-T)`` (the kernel compares 32 random bits with a threshold);
- the outcome, the cause of an advance and the product of a repeat purchase each take
  their own uniform draw (the kernel re-uses one draw, rescaled);
- channel reach, carry-over, referrals and money are recomputed here from the
  specification, per day and per customer, in plain Python.

Public API (used by the tests and by the benchmarks)::

    from cvj.reference import simulate_reference
    out = simulate_reference(scenario, seed=1, days=30)
    out["stages"]         # int64[D+1, G, 10] customers by segment and stage, row 0 = start
    out["offer_units"]    # int64[D+1, O]
    out["channel_spend"]  # float64[D+1, C]
    out["summary"]        # dict with the keys of cvj.results.summary
"""

from __future__ import annotations

import bisect
import math
from statistics import NormalDist

import mesa
import numpy as np

from .scenario import Scenario
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
# names of the two causes that are not channels, in cause order (docs/model.md)
ORGANIC, REFERRAL = "organic", "referral"
# email (per_send) audience: customers who bought the lead magnet and did not lapse
PERMISSION = range(SUBSCRIBED, PROMOTER + 1)
REPEAT_BUYERS = (ASCENDED, ADVOCATE, PROMOTER)


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


class Customer(mesa.Agent):
    """One customer: segment, responsiveness, stage, who acquired them, what they paid."""

    def __init__(self, model: ReferenceModel, segment: int):
        super().__init__(model)
        rng = model.rng
        self.segment = segment
        self.level = int(rng.integers(LEVELS))
        self.responsiveness = model.multiplier[segment][self.level]
        self.stage = bisect.bisect_right(model.start_cum, rng.random() * model.start_cum[-1])
        self.stage = min(self.stage, N_STAGES - 1)
        self.acquired_by: int | None = None  # cause of unaware -> aware
        self.revenue = 0.0

    def step(self) -> None:
        """One day: advance, lapse, buy again, or nothing (from yesterday's world)."""
        m = self.model
        g, s = self.segment, self.stage
        advance = self.responsiveness * m.advance_base[g][s]
        lapse = m.lapse_hazard[g][s]
        repeat = m.repeat_hazard if s in REPEAT_BUYERS else 0.0
        total = advance + lapse + repeat
        if total <= 0.0:
            return
        rng = m.rng
        if rng.standard_exponential() >= total:  # P(clock rings today) = 1 - exp(-total)
            return
        u = rng.random() * total
        if u < advance:
            self._advance(m, g, s, rng)
        elif u < advance + lapse:
            m.record_move(g, s, LAPSED, m.lapse_column)
            self.stage = LAPSED
        else:
            v = rng.random() * repeat
            for o, h in m.repeat_products:
                if v < h:
                    break
                v -= h
            m.record_purchase(self, o)

    def _advance(self, m: ReferenceModel, g: int, s: int, rng) -> None:
        causes = m.cause_hazards[g][s]
        v = rng.random() * sum(h for _, h in causes)
        for k, h in causes:
            if v < h:
                break
            v -= h
        new = AWARE if s == LAPSED else s + 1
        m.record_move(g, s, new, k)
        self.stage = new
        if s == UNAWARE:
            self.acquired_by = k
        elif s == ENGAGED:
            m.record_purchase(self, m.LEAD_MAGNET)
        elif s == SUBSCRIBED:
            m.record_purchase(self, m.ENTRY)
            m.conversions[g] += 1
            if self.acquired_by == m.REFERRAL_CAUSE:
                m.referred_today += 1
        elif s == EXCITED:
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
        self.N = sc.market.customers
        self.D = sc.market.days if days is None else int(days)
        self.seg_names = list(sc.segments)
        self.segs = list(sc.segments.values())
        self.G = len(self.segs)
        self.chan_names = list(sc.channels)
        self.chans = list(sc.channels.values())
        self.C = len(self.chans)
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
        self.O = len(self.offer_names)
        rates = [(self.CORE, off.core.repeat_rate)]
        rates += [(3 + j, u.take_rate) for j, u in enumerate(off.upsells.values())]
        self.repeat_products = [(o, _h(r)) for o, r in rates if r > 0]
        self.repeat_hazard = sum(h for _, h in self.repeat_products)

        # per segment: take-rate multipliers, organic and lapse hazards
        self.multiplier = [_multipliers(s.responsiveness_spread) for s in self.segs]
        self.take = []
        self.organic = []
        self.lapse_hazard = []
        for seg in self.segs:
            take = [1.0] * N_STAGES
            take[SUBSCRIBED] = math.exp(-off.entry.price_sensitivity * seg.price_sensitivity * off.entry.price)
            take[EXCITED] = math.exp(-off.core.price_sensitivity * seg.price_sensitivity * off.core.price)
            self.take.append(take)
            org = [0.0] * N_STAGES
            for name, p in sc.organic.advance.items():
                org[STAGE_ID[name]] = seg.advance_multiplier * _h(p)
            org[LAPSED] = seg.advance_multiplier * _h(sc.organic.reactivation)
            org[PROMOTER] = 0.0
            self.organic.append(org)
            lap = [0.0] * N_STAGES
            for name, p in sc.organic.lapse.items():
                lap[STAGE_ID[name]] = seg.lapse_multiplier * _h(p)
            self.lapse_hazard.append(lap)
        self.referral_rates = [0.0] * N_STAGES
        for name, r in sc.referrals.rates.items():
            self.referral_rates[STAGE_ID[name]] = r

        # channels: push strength by (segment, stage moved on from)
        self.push = []
        for ch in self.chans:
            table = [[0.0] * N_STAGES for _ in range(self.G)]
            for key, p in ch.pushes.items():
                frm = STAGE_ID[key.split("->")[0].strip()]
                for g, name in enumerate(self.seg_names):
                    table[g][frm] = p * ch.affinity.get(name, 1.0)
            self.push.append(table)
        self.stock = [0.0] * self.C

        # customers: contiguous segment blocks, level and starting stage drawn per customer
        start = [0.0] * N_STAGES
        for name, share in sc.market.initial_stages.items():
            start[STAGE_ID[name]] = share
        self.start_cum = list(np.cumsum(start))
        self.sizes = _largest_remainder(self.N, [s.share for s in self.segs])
        self.customers = []
        for g, size in enumerate(self.sizes):
            for _ in range(size):
                self.customers.append(Customer(self, g))

        D1, G, C, O, K = self.D + 1, self.G, self.C, self.O, self.K
        self.stages = np.zeros((D1, G, N_STAGES), np.int64)
        self.flows = np.zeros((D1, G, N_STAGES, K + 1), np.int64)
        self.offer_units = np.zeros((D1, G, O), np.int64)
        self.channel_units = np.zeros((D1, C))
        self.channel_spend = np.zeros((D1, C))
        self.channel_budget = np.zeros((D1, C))
        self.referred = np.zeros(D1, np.int64)
        self.conversions = [0] * G
        self.counts = [[0] * N_STAGES for _ in range(G)]
        for c in self.customers:
            self.counts[c.segment][c.stage] += 1
        self.stages[0] = self.counts
        self.day = 0

    # -- what customers report -------------------------------------------------
    def record_move(self, g: int, s: int, new: int, column: int) -> None:
        self.flows[self.day, g, s, column] += 1
        self.counts[g][s] -= 1
        self.counts[g][new] += 1

    def record_purchase(self, customer: Customer, o: int) -> None:
        self.offer_units[self.day, customer.segment, o] += 1
        customer.revenue += self.prices[o]

    # -- the day -----------------------------------------------------------------
    def planned_budget(self, c: int, day: int) -> float:
        """The spend a channel plans for ``day`` (fixed: the retainer for one day)."""
        ch = self.chans[c]
        if ch.pricing == "commission":
            return 0.0
        if ch.pricing == "fixed":
            monthly = ch.monthly_cost
            for p in ch.schedule:
                if p.from_day <= day <= p.to_day:
                    monthly = p.monthly_cost
            return monthly * 12.0 / DAYS_PER_YEAR
        daily = ch.daily_budget
        for p in ch.schedule:
            if p.from_day <= day <= p.to_day:
                daily = p.daily_budget
        return daily

    def _channels(self, day: int, yesterday: list[list[int]]) -> list[float]:
        """Buy today's units, pay for them, and return response x coverage per channel."""
        strength = [0.0] * self.C
        permission = sum(yesterday[g][s] for g in range(self.G) for s in PERMISSION)
        for c, ch in enumerate(self.chans):
            if ch.pricing == "commission":
                strength[c] = 1.0  # response = coverage = 1; paid after the day
                continue
            budget = self.planned_budget(c, day)
            self.channel_budget[day, c] = budget
            if ch.pricing == "fixed":
                audience = min(ch.audience, self.N) if ch.audience is not None else self.N
                base = ch.monthly_cost * 12.0 / DAYS_PER_YEAR
                units = ch.contacts_per_day * budget / base if base > 0 else 0.0
                spend = budget
            else:
                if ch.pricing == "per_send":
                    audience = permission
                else:
                    audience = min(ch.audience, self.N) if ch.audience is not None else self.N
                price = ch.unit_cost / 1000.0 if ch.pricing == "cpm" else ch.unit_cost
                units = min(budget / price, audience * ch.max_units_per_person)
                spend = units * price
            self.channel_units[day, c] = units
            self.channel_spend[day, c] = spend
            x = units / audience if audience > 0 else 0.0
            self.stock[c] = ch.carryover * self.stock[c] + x
            response = 1.0 - math.exp(-self.stock[c] / ch.saturation)
            coverage = 1.0 if ch.pricing == "per_send" else min(1.0, audience / self.N)
            strength[c] = response * coverage
        return strength

    def step(self) -> None:
        """One simulated day for every customer, from the end of yesterday."""
        self.day += 1
        d = self.day
        yesterday = [row[:] for row in self.counts]
        strength = self._channels(d, yesterday)
        per_stage = [sum(yesterday[g][s] for g in range(self.G)) for s in range(N_STAGES)]
        referral = sum(self.referral_rates[s] * per_stage[s] for s in range(N_STAGES)) / self.N

        # hazards of every cause by (segment, stage moved on from)
        self.cause_hazards = []
        self.advance_base = []
        for g in range(self.G):
            by_stage, base = [], []
            for s in range(N_STAGES):
                causes = []
                if s != PROMOTER:
                    if self.organic[g][s] > 0:
                        causes.append((0, self.organic[g][s]))
                    if s == UNAWARE and referral > 0:
                        causes.append((1, referral))
                    for c in range(self.C):
                        p = self.push[c][g][s] * strength[c]
                        if p > 0:
                            causes.append((2 + c, _h(p)))
                by_stage.append(causes)
                base.append(self.take[g][s] * sum(h for _, h in causes))
            self.cause_hazards.append(by_stage)
            self.advance_base.append(base)

        self.referred_today = 0
        self.agents.shuffle_do("step")

        for c, ch in enumerate(self.chans):
            if ch.pricing == "commission":
                self.channel_units[d, c] = self.referred_today
                self.channel_spend[d, c] = self.referred_today * ch.commission
        self.referred[d] = self.referred_today
        self.stages[d] = self.counts

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
        summary = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "replication": 0,
            "customers": self.N,
            "days": self.day,
            "spend": spend,
            "revenue": revenue,
            "cost": cost,
            "profit": profit,
            "conversions": conversions,
            "cac": spend / conversions if conversions else None,
            "roas": revenue / spend if spend > 0 else None,
            "payback_day": payback,
            "front_end_profit": front_margin - spend,
            "back_end_profit": back_margin,
        }
        revenue_by_segment = [0.0] * self.G
        for c in self.customers:
            revenue_by_segment[c.segment] += c.revenue
        for g, name in enumerate(self.seg_names):
            conv = self.conversions[g]
            summary[f"ltv_{name}"] = revenue_by_segment[g] / conv if conv else None
        for s, name in enumerate(STAGES):
            summary[f"end_{name}"] = int(sum(self.counts[g][s] for g in range(self.G)))
        D1 = self.day + 1
        return {
            "stages": self.stages[:D1].copy(),
            "flows": self.flows[:D1].copy(),
            "offer_units": self.offer_units[:D1].sum(axis=1),
            "offer_units_by_segment": self.offer_units[:D1].copy(),
            "channel_units": self.channel_units[:D1].copy(),
            "channel_spend": self.channel_spend[:D1].copy(),
            "channel_budget": self.channel_budget[:D1].copy(),
            "referred": self.referred[:D1].copy(),
            "revenue_by_segment": np.array(revenue_by_segment),
            "summary": summary,
        }


def simulate_reference(scenario: Scenario, seed: int, days: int | None = None) -> dict:
    """Run the Mesa reference model to the horizon.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario. Keep ``market.customers`` small (thousands): every
        customer is a Python object stepped once a day.
    seed : int
        Seeds the model's numpy Generator. Different seeds give independent runs.
    days : int, optional
        Horizon (default ``scenario.market.days``).

    Returns
    -------
    dict
        ``stages`` int64[D+1, G, 10]: customers by segment and stage at the end of each
        day (row 0: the start); ``flows`` int64[D+1, G, 10, K+1]: moves out of each
        stage by cause (organic, referral, channels...; last column: lapse);
        ``offer_units`` int64[D+1, O] (``offer_units_by_segment`` [D+1, G, O]);
        ``channel_units``, ``channel_spend``, ``channel_budget`` float64[D+1, C];
        ``referred`` int64[D+1]: referred sales; ``revenue_by_segment`` float64[G];
        ``summary``: the KPIs, with the keys of :func:`cvj.results.summary`.
    """
    model = ReferenceModel(scenario, seed, days)
    while model.day < model.D:
        model.step()
    return model.results()


__all__ = ["Customer", "ReferenceModel", "simulate_reference"]

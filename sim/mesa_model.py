"""The strategist's world in Mesa: channels and a marketer around the journey kernel.

One :meth:`JourneyModel.step` is one simulated day. The customers stay in the
kernel's arrays (:class:`cvj.engine.Engine`); the Mesa agents are the few things a
strategist reasons about:

- a :class:`ChannelAgent` per channel: today's budget, what it spent and bought, and
  what it achieved (the stage moves it caused);
- one :class:`MarketerAgent` that, every ``review_days``, compares the KPIs of the
  period just ended with the goals (target CAC, target ROAS, total daily budget cap)
  and, under the ``shift`` policy, moves budget from the channel with the worst
  marginal return to the one with the best, within limits. Every move is a row of the
  ``budget_moves`` table (day, from, to, amount, reason).

A Mesa :class:`~mesa.DataCollector` records model-level KPIs every day
(``kpis_daily``). Under the ``fixed`` policy the engine is driven exactly as
:func:`cvj.run.simulate` drives it, so the journey tables are identical to
``cvj run`` with the same seed and replication.

How the marketer values a channel (a documented heuristic, not part of the kernel's
model): a move caused by channel ``c`` from stage ``s`` (before ``converted``) is
credited with the chance that a person in stage ``s + 1`` goes on to buy the entry
offer, estimated from the advance-versus-lapse shares of the later stages observed so
far, times the revenue per conversion so far. Channel ``c``'s average return is its
credit over the review period divided by its spend; its *marginal* return is that
times the elasticity of its response curve at today's carry-over stock ``z``
(``response = 1 - exp(-z)``, elasticity ``z / (exp(z) - 1)``), and 0 when the channel
could not spend its budget (its audience is exhausted).
"""

from __future__ import annotations

import math
from typing import Literal

import mesa
import numpy as np
import pyarrow as pa
from pydantic import Field

from .documents import Strict
from .engine import Engine
from .errors import ScenarioError
from .model import PRICING_CODE, Compiled
from .registry import MOVE_SCHEMA
from .run import tables_of
from .stages import CONVERTED, LAPSED, PERMISSION_STAGES, SUBSCRIBED


class MarketerSettings(Strict):
    """How the marketer reviews and corrects the campaign (a study's ``[marketer]`` table).

    Attributes
    ----------
    policy : "fixed" or "shift"
        ``fixed`` never changes the plan; ``shift`` moves ``shift_fraction`` of the
        worst channel's budget to the best one at each review where the goals are
        missed (or at every review when no goal is set).
    review_days : int
        Days between reviews (7: weekly). The first review is on day ``review_days``.
    shift_fraction : float
        Share of the worst channel's daily budget moved at one review.
    min_gain : float
        Move only if the best marginal return exceeds the worst by this factor (0.1: 10 %).
    target_cac, target_roas : float, optional
        Goals for the review period's CAC (spend per conversion) and ROAS (revenue per spend).
    daily_budget_cap : float, optional
        Most the managed channels may spend in total per day.
    channel_caps : dict
        Most a channel's daily budget may become.
    min_daily_budget : float
        Least a channel's daily budget may become (never negative).

    Money is the market's, as the scenario's budgets are: when a run simulates a sample
    of the market (``market.sample``), the caps and the floor scale with it like the
    budgets (:meth:`in_sample`).
    channels : list of str, optional
        Channels the marketer manages (default: every channel with a budget, i.e. not
        the commission programme).
    """

    policy: Literal["fixed", "shift"] = "fixed"
    review_days: int = Field(default=7, ge=1)
    shift_fraction: float = Field(default=0.2, gt=0.0, le=1.0)
    min_gain: float = Field(default=0.1, ge=0.0)
    target_cac: float | None = Field(default=None, gt=0.0)
    target_roas: float | None = Field(default=None, gt=0.0)
    daily_budget_cap: float | None = Field(default=None, gt=0.0)
    channel_caps: dict[str, float] = Field(default_factory=dict)
    min_daily_budget: float = Field(default=0.0, ge=0.0)
    channels: list[str] | None = None

    def in_sample(self, scale: float) -> MarketerSettings:
        """These settings for a sample of ``scale`` customers per customer of the market:
        the money caps and floor scaled like every budget (targets are ratios)."""
        if scale == 1.0:
            return self
        return self.model_copy(
            update={
                "daily_budget_cap": None if self.daily_budget_cap is None else self.daily_budget_cap * scale,
                "channel_caps": {k: v * scale for k, v in self.channel_caps.items()},
                "min_daily_budget": self.min_daily_budget * scale,
            }
        )



class ChannelAgent(mesa.Agent):
    """One marketing channel: today's budget, spend and units, and what it achieved."""

    def __init__(self, model: JourneyModel, index: int, name: str, cap: float):
        super().__init__(model)
        cm = model.compiled
        self.index = index
        self.name = name
        self.pricing = next(k for k, v in PRICING_CODE.items() if v == cm.pricing[index])
        self.cap = cap
        #: the marketer's change to the plan, in money per day (0: the scenario's plan)
        self.adjustment = 0.0
        self.budget = 0.0
        self.spend = 0.0
        self.units = 0.0
        self.total_spend = 0.0
        self.marginal_return = math.nan

    @property
    def managed(self) -> bool:
        return self.name in self.model.marketer.managed

    def plan(self, day: int) -> float:
        """The budget for ``day``: the scenario's plan plus the marketer's adjustment,
        kept within [min_daily_budget, cap] for a channel the marketer manages."""
        planned = float(self.model.engine.planned_budgets(day)[self.index])
        if not self.managed:
            return planned
        floor = self.model.settings.min_daily_budget
        return float(min(max(planned + self.adjustment, floor, 0.0), self.cap))

    def observe(self) -> None:
        """Read what the channel bought and spent today from the engine."""
        h, d = self.model.engine.history, self.model.engine.day
        self.spend = float(h.channel_spend[d, self.index])
        self.units = float(h.channel_units[d, self.index])
        self.budget = float(h.channel_budget[d, self.index])
        self.total_spend += self.spend


class MarketerAgent(mesa.Agent):
    """Reviews the campaign against its goals every ``review_days`` and moves budget."""

    def __init__(self, model: JourneyModel, settings: MarketerSettings):
        super().__init__(model)
        self.settings = settings
        cm = model.compiled
        budgeted = [n for i, n in enumerate(cm.channel_names) if cm.pricing[i] != PRICING_CODE["commission"]]
        self.managed = tuple(settings.channels) if settings.channels is not None else tuple(budgeted)
        self.last_review = 0
        self.reviews = 0

    def step(self) -> None:
        s = self.settings
        day = self.model.engine.day
        if s.policy == "fixed" or day % s.review_days != 0:
            return
        self.review(day)

    # -- the review ---------------------------------------------------------------
    def review(self, day: int) -> None:
        model, s = self.model, self.settings
        e, cm = model.engine, model.compiled
        h = e.history
        lo, hi = self.last_review + 1, day + 1
        self.last_review = day
        self.reviews += 1
        channels = [a for a in model.channels if a.name in self.managed]
        if len(channels) < 1:
            return
        spend = float(h.channel_spend[lo:hi].sum())
        revenue = float((h.offer_units[lo:hi].sum(axis=1) * cm.price[None, :]).sum())
        conversions = int(h.flows[lo:hi, :, SUBSCRIBED, :-1].sum())
        cac = spend / conversions if conversions else math.inf
        roas = revenue / spend if spend > 0 else math.nan
        missed = []
        if s.target_cac is not None and cac > s.target_cac:
            missed.append(f"cac {cac:.2f} > target {s.target_cac:g}")
        if s.target_roas is not None and not roas >= s.target_roas:
            missed.append(f"roas {roas:.2f} < target {s.target_roas:g}")

        marginal = self._marginal_returns(lo, hi, channels)
        for a in channels:
            a.marginal_return = marginal[a.name]
        tomorrow = day + 1 if day < cm.days else day
        # the total cap comes first: cut the worst channels until the plan fits
        self.enforce_cap(day, tomorrow, sorted(channels, key=lambda a: _rank(marginal[a.name])))

        if (s.target_cac is not None or s.target_roas is not None) and not missed:
            return  # the goals are met: nothing to correct
        if len(channels) < 2:
            return
        known = [a for a in channels if np.isfinite(marginal[a.name])]
        # a channel takes money only up to its cap and what its audience lets it spend
        room = {a.name: min(a.cap, self._spend_limit(a)) - a.plan(tomorrow) for a in known}
        donors = [a for a in known if a.plan(tomorrow) > s.min_daily_budget + 1e-9]
        takers = [a for a in known if room[a.name] > 1e-9]
        if not donors or not takers:
            return
        worst = min(donors, key=lambda a: marginal[a.name])
        best = max(takers, key=lambda a: marginal[a.name])
        if worst is best or not marginal[best.name] > (1.0 + s.min_gain) * marginal[worst.name]:
            return
        amount = s.shift_fraction * worst.plan(tomorrow)
        amount = min(amount, worst.plan(tomorrow) - s.min_daily_budget, room[best.name])
        if amount <= 1e-9:
            return
        worst.adjustment -= amount
        best.adjustment += amount
        why = "; ".join(missed) if missed else "no goal set"
        model.record_move(
            day,
            worst.name,
            best.name,
            amount,
            f"{why}: marginal return {marginal[worst.name]:.3g} vs {marginal[best.name]:.3g} per unit spent",
        )

    def enforce_cap(self, day: int, tomorrow: int, order: list[ChannelAgent]) -> None:
        """Cut budgets, first channel of ``order`` first, until the total is within the cap
        (a schedule in the scenario can raise the plan after a review, so this runs at
        every review and before the first day)."""
        s = self.settings
        if s.daily_budget_cap is None:
            return
        total = sum(a.plan(tomorrow) for a in order)
        for a in order:
            excess = total - s.daily_budget_cap
            if excess <= 1e-9:
                break
            cut = min(excess, a.plan(tomorrow) - s.min_daily_budget)
            if cut > 1e-9:
                a.adjustment -= cut
                self.model.record_move(
                    day, a.name, None, cut, f"total daily budget {total:.2f} above the cap {s.daily_budget_cap:g}"
                )
                total -= cut

    def _spend_limit(self, a: ChannelAgent) -> float:
        """Most channel ``a`` can spend in a day with today's audience (inf: no limit)."""
        cm, c = self.model.compiled, a.index
        if a.pricing == "fixed":
            return math.inf
        if a.pricing == "per_send":
            audience = float(self.model.engine.counts[:, list(PERMISSION_STAGES)].sum())
        else:
            audience = float(cm.audience[c])
        return audience * float(cm.max_units[c]) * float(cm.per_unit[c])

    def _marginal_returns(self, lo: int, hi: int, channels: list[ChannelAgent]) -> dict[str, float]:
        """Marginal return per unit of money of each managed channel over days lo..hi-1."""
        e, cm = self.model.engine, self.model.compiled
        h = e.history
        flows_all = h.flows[1 : e.day + 1].sum(axis=(0, 1))  # [10, K+1] to date
        advances = flows_all[:, :-1].sum(axis=1)
        lapses = flows_all[:, -1]
        exits = advances + lapses
        onward = np.where(exits > 0, advances / np.maximum(exits, 1), 0.0)
        # chance that a person now in stage s buys the entry offer (s <= converted)
        p_convert = np.zeros(LAPSED + 1)
        p_convert[CONVERTED] = 1.0
        for s in range(SUBSCRIBED, -1, -1):
            p_convert[s] = onward[s] * p_convert[s + 1]
        conversions = float(h.flows[1 : e.day + 1, :, SUBSCRIBED, :-1].sum())
        revenue = float((h.offer_units[1 : e.day + 1].sum(axis=1) * cm.price[None, :]).sum())
        per_conversion = revenue / conversions if conversions else max(float(cm.price[1]), 1.0)
        window = h.flows[lo:hi].sum(axis=(0, 1))  # [10, K+1]
        out = {}
        for a in channels:
            k = 2 + a.index
            moved = window[:CONVERTED, k]  # moves caused by the channel, by stage moved on from
            credit = float((moved * p_convert[1 : CONVERTED + 1]).sum()) * per_conversion
            spend = float(h.channel_spend[lo:hi, a.index].sum())
            budget = float(h.channel_budget[lo:hi, a.index].sum())
            if spend <= 0 or budget <= 0:
                out[a.name] = math.nan
                continue
            # a channel that cannot spend more (its audience is used up) gains nothing from more money
            exhausted = spend < 0.99 * budget or a.plan(min(e.day + 1, cm.days)) >= 0.99 * self._spend_limit(a)
            z = e.stock[a.index] / cm.saturation[a.index]
            elasticity = z / math.expm1(z) if z > 1e-12 else 1.0
            out[a.name] = 0.0 if exhausted else credit / spend * elasticity
        return out


class JourneyModel(mesa.Model):
    """A scenario's customers (in the kernel) and its strategist's world (Mesa agents).

    Parameters
    ----------
    compiled : Compiled
        The compiled scenario (:func:`cvj.model.compile_scenario`).
    replication : int
        Random stream with the scenario's seed (the same as ``cvj run --replication``).
    marketer : MarketerSettings, optional
        Default: the ``fixed`` policy (the scenario's plan, unchanged).
    track_customers : bool
        Also keep what the customers table needs (:meth:`tables` then returns it).

    Examples
    --------
    >>> m = JourneyModel(compile_scenario(sc), replication=0)
    >>> m.run_model()
    >>> tables = m.tables()      # daily_stages, transitions, finance, summary, budget_moves, kpis_daily
    """

    def __init__(
        self,
        compiled: Compiled,
        replication: int = 0,
        marketer: MarketerSettings | None = None,
        track_customers: bool = False,
    ):
        super().__init__(rng=[int(compiled.seed), int(replication)])
        self.compiled = compiled
        self.replication = int(replication)
        written = marketer or MarketerSettings()
        _check_settings(written, compiled)
        # the engine's budgets are the sample's: so are the marketer's caps
        self.settings = written.in_sample(compiled.scale)
        self.engine = Engine(compiled, replication=self.replication, track_customers=track_customers)
        caps = self.settings.channel_caps
        self.channels = [
            ChannelAgent(self, i, name, float(caps.get(name, math.inf)))
            for i, name in enumerate(compiled.channel_names)
        ]
        self.marketer = MarketerAgent(self, self.settings)
        reporters = {
            "day": "day",
            "spend": "spend_today",
            "revenue": "revenue_today",
            "conversions": "conversions_today",
            "profit_to_date": "profit_to_date",
            "cac_to_date": "cac_to_date",
            "roas_to_date": "roas_to_date",
            "total_budget": "total_budget",
        }
        for a in self.channels:
            reporters[f"budget_{a.name}"] = [self.budget_of, [a.index]]
        self.datacollector = mesa.DataCollector(
            model_reporters=reporters,
            tables={"budget_moves": [f.name for f in MOVE_SCHEMA]},
        )
        self._spend = self._revenue = self._cost = 0.0
        self._conversions = 0
        self.spend_today = self.revenue_today = 0.0
        self.conversions_today = 0
        if self.settings.policy != "fixed":
            managed = [a for a in self.channels if a.managed]
            self.marketer.enforce_cap(0, 1, sorted(managed, key=lambda a: -a.plan(1)))

    # -- one day ------------------------------------------------------------------
    @property
    def day(self) -> int:
        return self.engine.day

    def step(self) -> None:
        e = self.engine
        d = e.day + 1
        if self.settings.policy == "fixed":
            budgets = None  # the scenario's plan, exactly as cvj.run drives the engine
        else:
            budgets = np.array([a.plan(d) for a in self.channels])
        e.step(budgets)
        self.agents_by_type[ChannelAgent].do("observe")
        self._account()
        self.marketer.step()
        self.datacollector.collect(self)
        if e.done:
            self.running = False

    def _account(self) -> None:
        h, cm, d = self.engine.history, self.compiled, self.engine.day
        units = h.offer_units[d].sum(axis=0)
        self.spend_today = float(h.channel_spend[d].sum())
        self.revenue_today = float(units @ cm.price)
        self.conversions_today = int(h.flows[d, :, SUBSCRIBED, :-1].sum())
        self._spend += self.spend_today
        self._revenue += self.revenue_today
        self._cost += float(units @ cm.unit_cost)
        self._conversions += self.conversions_today

    @property
    def profit_to_date(self) -> float:
        return self._revenue - self._cost - self._spend

    @property
    def cac_to_date(self) -> float | None:
        return self._spend / self._conversions if self._conversions else None

    @property
    def roas_to_date(self) -> float | None:
        return self._revenue / self._spend if self._spend > 0 else None

    def budget_of(self, channel: int) -> float:
        """The budget channel ``channel`` had today."""
        return float(self.engine.history.channel_budget[self.engine.day, channel])

    @property
    def total_budget(self) -> float:
        return float(self.engine.history.channel_budget[self.engine.day].sum())

    def record_move(self, day: int, source: str, target: str, amount: float, reason: str) -> None:
        self.datacollector.add_table_row(
            "budget_moves",
            {"day": day, "from_channel": source, "to_channel": target, "amount": float(amount), "reason": reason},
        )

    # -- results ------------------------------------------------------------------
    def tables(self) -> dict[str, pa.Table]:
        """The run's tables: the engine's (as :func:`cvj.run.tables_of`), the marketer's
        ``budget_moves`` and the DataCollector's ``kpis_daily``."""
        out = tables_of(self.engine)
        moves = self.datacollector.tables["budget_moves"]
        out["budget_moves"] = pa.table({f.name: pa.array(moves[f.name], f.type) for f in MOVE_SCHEMA})
        out["kpis_daily"] = self.kpis_daily()
        return out

    def kpis_daily(self) -> pa.Table:
        v = self.datacollector.model_vars
        cols = {"day": pa.array(v["day"], pa.int32())}
        for name, values in v.items():
            if name != "day":
                cols[name] = pa.array(values, pa.int64() if name == "conversions" else pa.float64())
        return pa.table(cols)


def _rank(marginal: float) -> float:
    """Sort key: unknown marginal returns (no spend yet) count as the worst."""
    return -math.inf if math.isnan(marginal) else marginal


def _check_settings(s: MarketerSettings, cm: Compiled) -> None:
    names = set(cm.channel_names)
    commission = {n for i, n in enumerate(cm.channel_names) if cm.pricing[i] == PRICING_CODE["commission"]}
    for n in s.channels or ():
        if n not in names:
            raise ScenarioError(f"unknown channel; channels are {', '.join(cm.channel_names)}", "marketer.channels", n)
        if n in commission:
            raise ScenarioError("a commission programme has no budget to move", "marketer.channels", n)
    for n, cap in s.channel_caps.items():
        if n not in names:
            raise ScenarioError(f"unknown channel; channels are {', '.join(cm.channel_names)}", f"marketer.channel_caps.{n}", cap)
        if cap < 0:
            raise ScenarioError("a cap cannot be negative", f"marketer.channel_caps.{n}", cap)


def run_model(
    compiled: Compiled, replication: int = 0, marketer: MarketerSettings | None = None, track_customers: bool = False
) -> dict[str, pa.Table]:
    """Run a :class:`JourneyModel` to the horizon and return its tables (with
    ``track_customers``, the customers table too)."""
    m = JourneyModel(compiled, replication, marketer, track_customers)
    m.run_model()
    return m.tables()


__all__ = ["ChannelAgent", "JourneyModel", "MarketerAgent", "MarketerSettings", "run_model"]

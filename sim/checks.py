"""Warnings: valid scenarios that do not do what their author most likely meant.

A scenario can be valid and still hold a trap: a budget the channel can never spend,
an audience larger than the market, a push from a stage no one can be in, an offer
no one can reach, a figure in the wrong unit. :func:`check_scenario` finds those that
show in the document itself (``cvj validate``, ``cvj run``); :func:`check_run` those
that show only once it has run (a budget that did not bind, and why). Warnings never
change a run: they are computed from the scenario and from the tables afterwards.

Every warning has a name (:data:`CHECKS`); a caller silences a kind by name
(``cvj run --quiet-warning budget-not-binding``, or ``quiet=`` here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ArgumentError
from .model import DAYS_PER_MONTH, PRICING_CODE, Compiled, compile_scenario
from .scenario import Audience, Scenario
from .stages import (
    ASCENDED,
    AWARE,
    ENGAGED,
    EXCITED,
    LAPSED,
    N_STAGES,
    PROMOTER,
    REPEAT_STAGES,
    STAGE_ID,
    STAGES,
    SUBSCRIBED,
    UNAWARE,
)

#: every kind of warning: name -> what it catches
CHECKS = {
    "budget-not-binding": "a channel cannot spend its budget (its audience, the email list or a frequency cap "
    "limits what it can buy), so more budget changes nothing",
    "audience-capped-by-market": "a channel's audience size is larger than the market",
    "push-never-acts": "a push, a shop conversion or an audience acts on a stage no one can be in",
    "offer-unreachable": "no one can reach the stage where an offer is bought, or its price or take rate "
    "leaves no buyer",
    "suspicious-unit": "a figure that looks like the wrong unit (a CPM below 0.1, a cost per send above 0.5, "
    "a daily budget equal to a monthly cost, a daily chance that looks monthly)",
    "channel-without-effect": "a channel that spends money but can move no one",
}
#: silences every kind at once
ALL = "all"
#: a budget counts as binding when at least this share of it is spent
BINDING_SHARE = 0.98
#: a constant daily chance at least this high reads like a monthly one
MONTHLY_LOOKING = 0.2
#: new people per person per day at least this high (30 a month each) read like a monthly figure
REFERRALS_MONTHLY_LOOKING = 1.0


@dataclass(frozen=True)
class ScenarioWarning:
    """One warning: its kind (:data:`CHECKS`), the key path it is about, and what is
    wrong and why, in one line (user text in it is raw: print it escaped)."""

    name: str
    path: str
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def check_names(quiet: Iterable[str]) -> tuple[str, ...]:
    """The names to silence, checked (``all`` silences every kind).

    Raises
    ------
    ArgumentError
        For a name that is not one of :data:`CHECKS`.
    """
    out = []
    for name in quiet:
        if name != ALL and name not in CHECKS:
            raise ArgumentError(f"no such warning; warnings are {', '.join(CHECKS)} (or {ALL})", "quiet-warning", name)
        out.append(name)
    return tuple(dict.fromkeys(out))


def shown(warnings: Iterable[ScenarioWarning], quiet: Iterable[str] = ()) -> list[ScenarioWarning]:
    """The warnings not silenced by ``quiet``."""
    q = set(quiet)
    if ALL in q:
        return []
    return [w for w in warnings if w.name not in q]


def manifest_entry(warnings: Iterable[ScenarioWarning], quiet: Iterable[str] = ()) -> dict:
    """What ``_cvj.json`` records: every warning, with whether it was silenced."""
    q = set(quiet)
    return {
        "warnings": [dict(w.to_json(), silenced=ALL in q or w.name in q) for w in warnings],
        "quiet_warnings": sorted(q),
    }


# --------------------------------------------------------------------------- the scenario


def check_scenario(sc: Scenario, cm: Compiled | None = None) -> list[ScenarioWarning]:
    """The warnings a scenario document shows without running it."""
    cm = cm if cm is not None else compile_scenario(sc)
    out: list[ScenarioWarning] = []
    reach = Reachability(cm)
    out += _units(sc)
    out += _audiences(sc)
    out += _never_acts(sc, cm, reach)
    out += _offers(sc, cm, reach)
    out += _without_effect(sc, cm)
    out += _cannot_bind(sc, cm)
    return out


class Reachability:
    """Which stages anyone can ever be in, and which moves can ever happen, from the
    starting shares and every cause with a positive chance (a fixed point over the
    stages: a move can only start from a stage someone can be in)."""

    def __init__(self, cm: Compiled):
        self.cm = cm
        cs = cm.layout.col_stage
        self._cols = [np.flatnonzero(cs == s) for s in range(N_STAGES)]
        start = np.diff(np.r_[0.0, cm.stage_cum]) > 0
        reachable = set(np.flatnonzero(start).tolist())
        while True:
            grown = set(reachable)
            for s in reachable:
                if self._advances(s, reachable):
                    grown.add(AWARE if s == LAPSED else min(s + 1, PROMOTER))
                if s != LAPSED and s != UNAWARE and (cm.lapse[:, self._cols[s]] > 0).any():
                    grown.add(LAPSED)
            if grown == reachable:
                break
            reachable = grown
        self.stages = frozenset(reachable)
        self.moves = frozenset(s for s in reachable if self._advances(s, reachable))

    def channel_active(self, c: int) -> bool:
        """Whether channel ``c`` ever has money (a commission programme: always)."""
        cm = self.cm
        return cm.pricing[c] == PRICING_CODE["commission"] or bool(cm.budget[1:, c].max() > 0)

    def channel_moves(self, c: int, s: int) -> bool:
        """Whether channel ``c`` can move people on from stage ``s``."""
        cm = self.cm
        cols = self._cols[s]
        if s == PROMOTER or not self.channel_active(c) or not cols.size:
            return False
        if not (cm.mask[c][:, cols] > 0).any() or not (cm.take[:, cols] > 0).any():
            return False
        if cm.funnel[c]:
            return bool(cm.effect[c, s] > 0)
        return bool(cm.push[c, :, s].max() > 0) if s != LAPSED else False

    def _advances(self, s: int, reachable: set) -> bool:
        cm = self.cm
        if s == PROMOTER:
            return False
        cols = self._cols[s]
        if (cm.organic[:, cols] * cm.take[:, cols] > 0).any():
            return True
        if s == UNAWARE and any(cm.referral_rate[r] > 0 for r in reachable):
            return True
        return any(self.channel_moves(c, s) for c in range(cm.n_channels))


def _pretty(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.4g}"


def _units(sc: Scenario) -> list[ScenarioWarning]:
    out = []
    name = "suspicious-unit"
    monthly = {n: ch.monthly_cost for n, ch in sc.channels.items() if ch.pricing == "fixed" and ch.monthly_cost > 0}
    for n, ch in sc.channels.items():
        at = f"channels.{n}"
        if ch.pricing == "cpm" and ch.unit_cost < 0.1:
            out.append(ScenarioWarning(name, f"{at}.unit_cost", (
                f"a CPM (the cost of 1,000 impressions) of {ch.unit_cost:g} is below 0.1: if {ch.unit_cost:g} is the "
                f"cost of one impression, the CPM is {1000 * ch.unit_cost:g}")))
        if ch.pricing == "per_send" and ch.unit_cost >= 0.5:
            out.append(ScenarioWarning(name, f"{at}.unit_cost", (
                f"{ch.unit_cost:g} per email sent is far above what an email service charges (about 0.001): if it "
                f"is the cost of 1,000 sends, the cost per send is {ch.unit_cost / 1000:g}")))
        if ch.pricing in ("cpm", "cpc") and ch.ctr is not None and ch.ctr > 0.1:
            out.append(ScenarioWarning(name, f"{at}.ctr", (
                f"a click-through rate of {ch.ctr:g} means {100 * ch.ctr:g}% of impressions are clicked: if you meant "
                f"{ch.ctr:g}%, write {ch.ctr / 100:g}")))
        if ch.pricing == "per_send" and ch.open_rate is not None and ch.click_rate is not None and ch.click_rate > ch.open_rate:
            out.append(ScenarioWarning(name, f"{at}.click_rate", (
                f"{ch.click_rate:g} clicks per send is more than the opens per send ({ch.open_rate:g}): click_rate "
                f"is clicks per email sent, not per email opened (per send: {ch.click_rate * ch.open_rate:g})")))
        budget = getattr(ch, "daily_budget", None)
        if budget:
            for other, m in monthly.items():
                if math.isclose(budget, m):
                    out.append(ScenarioWarning(name, f"{at}.daily_budget", (
                        f"the daily budget {_pretty(budget)} equals channels.{other}.monthly_cost: a daily budget "
                        f"spends about {DAYS_PER_MONTH:.1f} times as much in a month; if {_pretty(budget)} is a "
                        f"monthly budget, the daily one is {_pretty(budget / DAYS_PER_MONTH)}")))
                    break
    rates = [(f"organic.advance.{k}", v) for k, v in sc.organic.advance.items()]
    rates += [(f"organic.lapse.{k}", v) for k, v in sc.organic.lapse.items()]
    rates += [("organic.reactivation", sc.organic.reactivation), ("offers.core.repeat_rate", sc.offers.core.repeat_rate)]
    rates += [(f"offers.upsells.{k}.take_rate", u.take_rate) for k, u in sc.offers.upsells.items()]
    for path, rate in rates:
        # a constant: a profile by days (Piecewise, a shape) is shaped on purpose
        if isinstance(rate, (int, float)) and rate >= MONTHLY_LOOKING and rate < 1:
            month = 1 - (1 - rate) ** 30
            daily = 1 - (1 - rate) ** (1 / DAYS_PER_MONTH)
            out.append(ScenarioWarning(name, path, (
                f"a daily chance of {rate:g} means {100 * month:.1f}% within 30 days: if {rate:g} is a monthly "
                f"rate, the daily one is {daily:.4g}")))
    for stage, r in sc.referrals.rates.items():
        if r >= REFERRALS_MONTHLY_LOOKING:
            out.append(ScenarioWarning(name, f"referrals.rates.{stage}", (
                f"{r:g} new people per person per day is {r * DAYS_PER_MONTH:.1f} a month each: if {r:g} is per "
                f"month, the daily rate is {r / DAYS_PER_MONTH:.4g}")))
    return out


def _audience_size(ch) -> int | None:
    aud = getattr(ch, "audience", None)
    if isinstance(aud, Audience):
        return aud.size
    return aud if isinstance(aud, int) else None


def _audiences(sc: Scenario) -> list[ScenarioWarning]:
    out = []
    market = sc.market.customers
    for n, ch in sc.channels.items():
        size = _audience_size(ch)
        if size is not None and size > market:
            path = f"channels.{n}.audience" + (".size" if isinstance(ch.audience, Audience) else "")
            out.append(ScenarioWarning("audience-capped-by-market", path, (
                f"an audience of {size:,} people is more than the market ({market:,} customers): the channel reaches "
                f"at most the market, so what it buys is capped by the market, not by this size")))
    return out


def _never_acts(sc: Scenario, cm: Compiled, reach: Reachability) -> list[ScenarioWarning]:
    out = []
    name = "push-never-acts"

    def why(stage: int) -> str:
        return f"no one can be in {STAGES[stage]} (no one starts there and nothing moves people into it)"

    for c, (n, ch) in enumerate(sc.channels.items()):
        for key, p in ch.pushes.items():
            if p <= 0:
                continue
            s = STAGE_ID[key.split("->")[0].strip()]
            if s not in reach.stages:
                out.append(ScenarioWarning(name, f"channels.{n}.pushes.{key}", f"this push never acts: {why(s)}"))
            elif not (cm.mask[c][:, reach._cols[s]] > 0).any():
                out.append(ScenarioWarning(name, f"channels.{n}.pushes.{key}", (
                    f"this push never acts: the channel's audience holds no one in {STAGES[s]}")))
        aud = getattr(ch, "audience", None)
        if isinstance(aud, Audience) and aud.stages and reach.channel_active(c):
            ids = [STAGE_ID[x] for x in aud.stages]
            if not any(s in reach.stages for s in ids):
                out.append(ScenarioWarning(name, f"channels.{n}.audience.stages", (
                    f"the channel never reaches anyone: no one can be in {', '.join(aud.stages)} (no one starts "
                    f"there and nothing moves people into them)")))
    if cm.funnel.any():
        for stage, p in sc.shop.conversion.items():
            s = STAGE_ID[stage]
            if p > 0 and s not in reach.stages:
                out.append(ScenarioWarning(name, f"shop.conversion.{stage}", f"this conversion never acts: {why(s)}"))
    return out


def _offers(sc: Scenario, cm: Compiled, reach: Reachability) -> list[ScenarioWarning]:
    out = []
    name = "offer-unreachable"
    for path, stage, what in (
        ("offers.lead_magnet", ENGAGED, "the lead magnet is taken on the move engaged -> subscribed"),
        ("offers.entry", SUBSCRIBED, "the entry offer is bought on the move subscribed -> converted"),
        ("offers.core", EXCITED, "the core offer is first bought on the move excited -> ascended"),
    ):
        if stage not in reach.moves:
            where = f"no one can be in {STAGES[stage]}" if stage not in reach.stages else (
                f"nothing moves people on from {STAGES[stage]}")
            out.append(ScenarioWarning(name, path, f"no one can buy it: {what}, and {where}"))
    seg_sens = {g: s.price_sensitivity for g, s in sc.segments.items()}
    for path, offer in (("offers.entry", sc.offers.entry), ("offers.core", sc.offers.core)):
        worst = max(seg_sens.values())
        best = min(seg_sens.values())
        keep = math.exp(-offer.price_sensitivity * best * offer.price)
        if keep < 1e-3:
            out.append(ScenarioWarning(name, f"{path}.price", (
                f"the price leaves no buyer: the take rate is multiplied by exp(-{offer.price_sensitivity:g} x "
                f"segment price sensitivity x {offer.price:g}) = {keep:.2g} at most "
                f"(and {math.exp(-offer.price_sensitivity * worst * offer.price):.2g} in the most price-sensitive "
                f"segment)")))
    repeat = any(s in reach.stages for s in REPEAT_STAGES)
    for o, u in enumerate(sc.offers.upsells, start=3):
        path = f"offers.upsells.{u}"
        if not repeat:
            out.append(ScenarioWarning(name, path, (
                "no one can buy it: upsells are bought in ascended, advocate and promoter, and no one can be there")))
        elif not (cm.repeat_h[:, o] > 0).any():
            out.append(ScenarioWarning(name, f"{path}.take_rate", "no one buys it: its take rate is 0 on every day"))
    if repeat and ASCENDED in reach.stages and not (cm.repeat_h[:, 2] > 0).any() and sc.offers.core.repeat_rate != 0:
        out.append(ScenarioWarning(name, "offers.core.repeat_rate", "no one buys the core offer again: its rate is 0"))
    return out


def _without_effect(sc: Scenario, cm: Compiled) -> list[ScenarioWarning]:
    out = []
    for c, (n, ch) in enumerate(sc.channels.items()):
        if ch.pricing == "commission" or not cm.budget[1:, c].max() > 0:
            continue
        if cm.funnel[c]:
            if cm.effect[c].max() > 0:
                continue
            why = "its funnel figures move no one (no click-through or click rate, or the shop converts no session)"
        else:
            if cm.push[c].max() > 0:
                continue
            why = "it has no push above 0 and no funnel figures (ctr, open_rate, click_rate) with a shop conversion"
        out.append(ScenarioWarning("channel-without-effect", f"channels.{n}",
                                   f"the channel spends money but moves no one: {why}"))
    return out


def _cannot_bind(sc: Scenario, cm: Compiled) -> list[ScenarioWarning]:
    """Budgets larger than the channel could spend even if the whole market were its audience."""
    out = []
    for c, (n, ch) in enumerate(sc.channels.items()):
        if ch.pricing in ("commission", "fixed"):
            continue
        people = cm.audience[c] if cm.audience[c] > 0 else cm.customers
        most = people * cm.max_units[c] * cm.per_unit[c]
        top = float(cm.budget[1:, c].max())
        if top > most * (1 + 1e-9):
            up = 1.0 / cm.scale  # a sample's figures, told for the whole market
            out.append(ScenarioWarning("budget-not-binding", f"channels.{n}.daily_budget", (
                f"a budget of {_pretty(top * up)} a day can never be spent: even with all {_pretty(people * up)} "
                f"people it can reach, {_cap(ch, cm, c)} {_pretty(most * up)} a day")))
    return out


def _cap(ch, cm: Compiled, c: int) -> str:
    if ch.pricing == "per_send":
        if ch.max_per_week is not None and ch.max_per_week / 7.0 <= ch.max_units_per_person:
            return f"at most {ch.max_per_week:g} emails a person a week (max_per_week) cost"
        return f"at most {ch.max_units_per_person:g} emails a person a day (max_units_per_person) cost"
    unit = {"cpm": "impressions", "cpc": "clicks"}[ch.pricing]
    return f"at most {ch.max_units_per_person:g} {unit} a person a day (max_units_per_person) cost"


# --------------------------------------------------------------------------- a run


def combine(static: list[ScenarioWarning], found: list[ScenarioWarning]) -> list[ScenarioWarning]:
    """A scenario's warnings and its run's: a run's warning about a key path replaces
    the scenario's of the same kind (it says the same with the run's figures)."""
    seen = {(w.name, w.path) for w in found}
    return [w for w in static if (w.name, w.path) not in seen] + found


def check_run(sc: Scenario, tables: dict[str, pa.Table], cm: Compiled | None = None) -> list[ScenarioWarning]:
    """The warnings a run shows: budgets that did not bind, and why.

    ``tables`` are the run's (``finance`` and ``channels``, any number of replications).
    """
    cm = cm if cm is not None else compile_scenario(sc)
    fin = tables.get("finance")
    chan = tables.get("channels")
    if fin is None or chan is None or not cm.n_channels:
        return []
    out = []
    f = fin.filter(pc.equal(fin.column("kind").cast(pa.string()), "channel"))
    items = f.column("item").cast(pa.string()).to_pylist()
    budget = np.nan_to_num(np.asarray(f.column("budget").to_numpy(zero_copy_only=False), np.float64))
    spend = np.asarray(f.column("spend"), np.float64)
    labels = chan.column("channel").cast(pa.string()).to_pylist()
    audience = np.asarray(chan.column("audience"), np.float64)
    ch_spend = np.asarray(chan.column("spend"), np.float64)
    reps = max(1, len(set(fin.column("replication").to_pylist())))
    up = 1.0 / (cm.scale * reps)  # per replication, for the whole market
    for c, (n, ch) in enumerate(sc.channels.items()):
        if ch.pricing in ("commission", "fixed"):
            continue
        mine = np.array([x == n for x in items])
        b, s = float(budget[mine].sum()), float(spend[mine].sum())
        if b <= 0 or s >= BINDING_SHARE * b:
            continue
        rows = np.array([x == n for x in labels])
        short = rows & (ch_spend < BINDING_SHARE * _per_day_budget(cm, c, chan, rows))
        people = float(audience[short].mean()) if short.any() else 0.0
        per_run = " per replication" if reps > 1 else ""
        days = short.sum() / reps
        when = "on any day" if days >= cm.days else f"on {days:,.0f} of its {cm.days} days{' (mean)' if reps > 1 else ''}"
        out.append(ScenarioWarning("budget-not-binding", f"channels.{n}.daily_budget", (
            f"the budget does not bind {when}: the channel spent {100 * s / b:.1f}% of its budget "
            f"({_pretty(s * up)} of {_pretty(b * up)}{per_run}), and more budget buys nothing on those days; "
            f"{_why(ch, cm, c, people)}")))
    return out


def _audience_words(aud) -> str:
    """An audience's filters in words: ``in subscribed, 0, 2, 5 or 9 days after their last activity``."""
    if not isinstance(aud, Audience):
        return ""
    parts = []
    if aud.stages:
        parts.append(f"in {', '.join(aud.stages)}")
    if aud.days is not None:
        parts.append(f"{', '.join(str(d) for d in aud.days)} days after their last activity")
    if aud.within_days is not None:
        parts.append(f"active in the last {aud.within_days} days")
    if aud.after_days is not None:
        parts.append(f"inactive for {aud.after_days} days or more")
    if aud.age_bands is not None:
        parts.append(f"aged {', '.join(aud.age_bands)}")
    return ", ".join(parts)


def _per_day_budget(cm: Compiled, c: int, chan: pa.Table, rows: np.ndarray) -> np.ndarray:
    day = np.asarray(chan.column("day"), np.int64)
    return np.where(rows, cm.budget[np.clip(day, 0, cm.days), c], np.inf)


def _why(ch, cm: Compiled, c: int, people: float) -> str:
    """Why a channel could not spend: what ``people`` (its mean audience on the days it
    fell short, as simulated) allowed it to buy."""
    most = people * cm.max_units[c] * cm.per_unit[c] / cm.scale
    people = people / cm.scale
    lead = f"on the days it fell short, {_pretty(people)} people a day were in its audience"
    if ch.pricing == "per_send":
        who = _audience_words(ch.audience) or "(customers who may be emailed)"
        return (f"sends are capped by the list and the frequency cap: {_pretty(people)} people a day were on the list "
                f"{who}, and {_cap(ch, cm, c)} {_pretty(most)} a day")
    words = _audience_words(ch.audience)
    if words:
        lead += f" ({words})"
    size = _audience_size(ch)
    if size is not None:
        return f"{lead} (audience size {size:,}), and {_cap(ch, cm, c)} {_pretty(most)} a day"
    return f"{lead}, and {_cap(ch, cm, c)} {_pretty(most)} a day"


__all__ = [
    "ALL",
    "CHECKS",
    "Reachability",
    "ScenarioWarning",
    "check_names",
    "check_run",
    "check_scenario",
    "combine",
    "manifest_entry",
    "shown",
]

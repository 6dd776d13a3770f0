"""Scenario files: TOML documents with ``format = 2`` (or 1), validated once into a frozen model.

Format 2 is format 1 plus per-customer memory (rates that depend on the days since a
customer's last activity, repeat chances by order number), channels written in the
figures their dashboards report (CPM and CTR, CPC, open, click and unsubscribe rates,
sessions and conversion per session), audiences by stage, recency, age band and email
permission, age bands and a calendar. A format-1 file is upgraded on load
(:func:`upgrade`): its meaning is unchanged and its runs are identical.

A scenario is data. It is read and validated by the document layer shared with
studies and marketer settings (:mod:`cvj.documents`: unknown keys are errors, types are
strict); nothing in it is evaluated or executed. Every validation failure raises
:class:`~cvj.errors.ScenarioError`, whose message names the key path
(``channels.paid_social.daily_budget``), the value and what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from .documents import At, Label, Name, Strict, apply_overrides, read_toml, validate
from .errors import ScenarioError
from .stages import JOURNEY, PERMISSION_STAGES, PROMOTER, STAGE_ID, STAGES

FORMAT = 2
FORMATS = (1, 2)
MAX_SEGMENTS = 16  # segment and responsiveness level share one byte per customer
RESPONSIVENESS_LEVELS = 16
MAX_CHANNELS = 200
RESERVED_CAUSES = ("organic", "referral")

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]
Day = Annotated[int, Field(ge=1, le=65_534)]
DayCount = Annotated[int, Field(ge=0, le=511)]
MAX_AGE_BANDS = 8
#: bucket boundaries (first days) used to discretise a named waiting-time shape
SHAPE_BREAKS = (1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270, 365)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Piecewise(Strict):
    """A daily probability that depends on the days since the customer's last activity
    (a stage move or an order): ``daily[i]`` from day ``from_days[i]`` on."""

    from_days: list[DayCount]
    daily: list[Probability]

    @model_validator(mode="after")
    def _check(self) -> Piecewise:
        if len(self.from_days) != len(self.daily) or not self.daily:
            raise ValueError("from_days and daily must be lists of the same, non-zero length")
        if self.from_days[0] != 0:
            raise ValueError("from_days must start at 0")
        if any(b <= a for a, b in zip(self.from_days, self.from_days[1:])):
            raise ValueError("from_days must increase")
        return self

    def breaks(self) -> tuple[int, ...]:
        return tuple(self.from_days[1:])

    def daily_at(self, day: int) -> float:
        j = max(i for i, d in enumerate(self.from_days) if d <= day)
        return self.daily[j]


class Shape(Strict):
    """A named waiting-time distribution: of the customers who ever do it (``share``),
    the wait in days after the last activity is Weibull(``scale_days``, ``k``) or
    gamma(``k``, ``scale_days``). Used as a daily probability per bucket of
    :data:`SHAPE_BREAKS` that keeps each bucket's survival exact."""

    shape: Literal["weibull", "gamma"]
    scale_days: Annotated[float, Field(gt=0.0, le=10_000.0)]
    k: Annotated[float, Field(gt=0.0, le=50.0)]
    share: Probability = 1.0

    def breaks(self) -> tuple[int, ...]:
        return SHAPE_BREAKS

    def survival(self, t: float) -> float:
        if self.shape == "weibull":
            cdf = -math.expm1(-((t / self.scale_days) ** self.k))
        else:
            from scipy.special import gammainc  # the regularised lower incomplete gamma: gamma's CDF

            cdf = float(gammainc(self.k, t / self.scale_days))
        return 1.0 - self.share * cdf

    def daily_at(self, day: int) -> float:
        """The daily probability in the bucket holding ``day`` (constant within it)."""
        starts = (0, *SHAPE_BREAKS)
        lo = max(b for b in starts if b <= day)
        later = [b for b in starts if b > day]
        hi = later[0] if later else None
        s_lo = self.survival(lo)
        if s_lo <= 0:
            return 1.0
        if hi is None:  # the last bucket runs on: the hazard of its first day
            return 1.0 - self.survival(lo + 1) / s_lo
        return 1.0 - (self.survival(hi) / s_lo) ** (1.0 / (hi - lo))


#: a daily chance: a constant, a piecewise profile by days since the last activity, or a shape
Rate = Probability | Piecewise | Shape


def rate_breaks(rate) -> tuple[int, ...]:
    return () if isinstance(rate, (int, float)) else rate.breaks()


def rate_at(rate, day: int) -> float:
    return float(rate) if isinstance(rate, (int, float)) else rate.daily_at(day)


def _stage_keys(mapping: dict[str, float], allowed: tuple[str, ...], what: str) -> dict[str, float]:
    for key in mapping:
        if key not in STAGE_ID:
            raise ValueError(f"unknown stage {key!r}; stages are {', '.join(STAGES)}")
        if key not in allowed:
            raise ValueError(f"{what} is not defined for stage {key!r}; allowed: {', '.join(allowed)}")
    return mapping


# --------------------------------------------------------------------------- market


class Market(Strict):
    """The market the scenario describes (``customers`` people) and how many of them to
    simulate (``sample``, default all): a sample simulates the same business at a
    smaller size, with budgets, audience sizes and retainer sessions scaled by
    ``sample / customers``; the KPIs are reported for the whole market."""

    customers: Annotated[int, Field(gt=0)] = 1_000_000
    sample: Annotated[int, Field(gt=0)] | None = None
    days: Annotated[int, Field(gt=0, le=65_534)] = 365
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 2026
    initial_stages: dict[str, Probability] = Field(default_factory=lambda: {"unaware": 1.0})

    @model_validator(mode="after")
    def _sample(self) -> Market:
        if self.sample is not None and self.sample > self.customers:
            raise At("market.sample", self.sample, f"a sample cannot be larger than the market ({self.customers:,} customers)")
        return self

    @property
    def simulated(self) -> int:
        """Customers the kernel simulates."""
        return self.sample if self.sample is not None else self.customers

    @field_validator("initial_stages")
    @classmethod
    def _initial(cls, v: dict[str, float]) -> dict[str, float]:
        _stage_keys(v, STAGES, "a starting share")
        total = sum(v.values())
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(f"starting stage shares must sum to 1, they sum to {total:.6g}")
        return v


class Segment(Strict):
    share: Probability
    responsiveness_spread: Annotated[float, Field(ge=0.0, le=3.0)] = 0.5
    advance_multiplier: NonNegative = 1.0
    lapse_multiplier: NonNegative = 1.0
    price_sensitivity: NonNegative = 1.0
    age_shares: dict[Name, Probability] = Field(default_factory=dict)
    description: str = ""


class Organic(Strict):
    advance: dict[str, Rate] = Field(default_factory=dict)
    lapse: dict[str, Rate] = Field(default_factory=dict)
    reactivation: Probability = 0.0

    @field_validator("advance")
    @classmethod
    def _adv(cls, v: dict[str, float]) -> dict[str, float]:
        return _stage_keys(v, JOURNEY[:PROMOTER], "an organic advance rate")

    @field_validator("lapse")
    @classmethod
    def _lapse(cls, v: dict[str, float]) -> dict[str, float]:
        return _stage_keys(v, JOURNEY[1:], "a lapse rate")


#: most contacts a person can have in the network model
MAX_CONTACTS = 10_000


class Network(Strict):
    """The social graph word of mouth travels on with ``referrals.model = "network"``
    (docs/model.md, "Word of mouth"): each person's ``contacts``; the share of the
    contacts in the person's own segment that are neighbours on a ring of that segment
    (``clustering``: friends of friends are friends); and how strongly contacts keep to
    the person's own segment and age band (``segment_homophily``, ``age_homophily``:
    0 mixes in proportion to the population, 1 keeps to one's own)."""

    contacts: Annotated[int, Field(ge=0, le=MAX_CONTACTS)] = 20
    clustering: Probability = 0.0
    segment_homophily: Probability = 0.0
    age_homophily: Probability = 0.0


class Referrals(Strict):
    #: ``mean_field``: every unaware person has the same daily chance of hearing of the
    #: brand; ``network``: referrers tell their own contacts (``network``)
    model: Literal["mean_field", "network"] = "mean_field"
    #: new ``aware`` people brought in per day by each person in the stage (word of mouth);
    #: with the network model, each person's daily chance of telling one contact
    rates: dict[str, NonNegative] = Field(default_factory=dict)
    network: Network = Network()
    #: a referred person (acquired by referral) is a warm lead: its chances of moving on
    #: from aware, engaged and subscribed are multiplied by this
    referred_conversion: Annotated[float, Field(ge=0.0, le=100.0)] = 1.0

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        return _stage_keys(v, JOURNEY, "a referral rate")


# --------------------------------------------------------------------------- channels


class BudgetPeriod(Strict):
    from_day: Day
    to_day: Day
    daily_budget: NonNegative


class FixedPeriod(Strict):
    from_day: Day
    to_day: Day
    monthly_cost: NonNegative


def _parse_push(key: str) -> tuple[int, int]:
    parts = [p.strip() for p in key.split("->")]
    if len(parts) != 2:
        raise ValueError(f"push {key!r} must be written 'from->to', e.g. 'aware->engaged'")
    a, b = parts
    for name in (a, b):
        if name not in STAGE_ID:
            raise ValueError(f"unknown stage {name!r} in push {key!r}; stages are {', '.join(STAGES)}")
    ia, ib = STAGE_ID[a], STAGE_ID[b]
    if ia >= PROMOTER or ib != ia + 1:
        nxt = STAGES[ia + 1] if ia < PROMOTER else None
        hint = f" (the next stage after {a} is {nxt})" if nxt else f" ({a} is the last stage)"
        raise ValueError(f"transition {key!r} skips or reverses stages; a push moves people one stage on{hint}")
    return ia, ib


class Audience(Strict):
    """Who a channel can reach. Without stages: everyone a channel of its kind reaches
    (email: customers who gave permission, in subscribed..promoter)."""

    size: Annotated[int, Field(gt=0)] | None = None  # people the platform can reach at most
    stages: list[str] | None = None
    within_days: DayCount | None = None  # last activity at most this many days ago (retargeting)
    after_days: DayCount | None = None  # last activity at least this many days ago (win-back)
    days: list[DayCount] | None = None  # exactly these days after the last activity (a nurture sequence)
    age_bands: list[Name] | None = None
    permission: bool | None = None  # only customers who may be emailed (True) or who may not (False)

    @field_validator("stages")
    @classmethod
    def _stages(cls, v):
        if v is not None:
            for name in v:
                if name not in STAGE_ID:
                    raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
            if not v:
                raise ValueError("an audience needs at least one stage")
        return v

    def breaks(self) -> tuple[int, ...]:
        out = []
        if self.within_days is not None:
            out.append(self.within_days + 1)
        if self.after_days is not None:
            out.append(self.after_days)
        for d in self.days or ():
            out += [d, d + 1]
        return tuple(b for b in out if 0 < b <= 511)

    def admits_days(self, lo: int, hi: int) -> bool:
        """Whether a bucket of days [lo, hi] since the last activity is in the audience
        (buckets never straddle one of :meth:`breaks`, so the whole bucket is in or out)."""
        if self.within_days is not None and lo > self.within_days:
            return False
        if self.after_days is not None and lo < self.after_days:
            return False
        if self.days is not None and not any(lo <= d <= hi for d in self.days):
            return False
        return True


class _ChannelBase(Strict):
    pushes: dict[str, Probability] = Field(default_factory=dict)
    affinity: dict[str, Probability] = Field(default_factory=dict)
    band_affinity: dict[Name, NonNegative] = Field(default_factory=dict)
    description: str = ""

    @field_validator("pushes")
    @classmethod
    def _pushes(cls, v: dict[str, float]) -> dict[str, float]:
        for key in v:
            _parse_push(key)
        return v

    def push_from(self) -> dict[int, float]:
        """Push strength by the stage it moves people on from."""
        return {_parse_push(k)[0]: p for k, p in self.pushes.items()}


class _Reach(_ChannelBase):
    saturation: Positive = 1.0
    carryover: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


class _Bought(_Reach):
    unit_cost: Positive
    daily_budget: NonNegative
    schedule: list[BudgetPeriod] = Field(default_factory=list)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: list[BudgetPeriod]) -> list[BudgetPeriod]:
        return _check_periods(v)


def _check_periods(periods):
    spans = sorted((p.from_day, p.to_day) for p in periods)
    for a, b in spans:
        if a > b:
            raise ValueError(f"a period runs from day {a} to day {b}: from_day must not be after to_day")
    for (a1, b1), (a2, b2) in itertools.pairwise(spans):
        if a2 <= b1:
            raise ValueError(f"periods {a1}-{b1} and {a2}-{b2} overlap")
    return periods


AudienceField = Annotated[int, Field(gt=0)] | Audience | None


class CpmChannel(_Bought):
    """Impressions bought per thousand. Format 2: ``ctr`` turns impressions into
    clicks, ``landing_rate`` clicks into sessions; an impression makes an unaware
    person aware with ``aware_per_impression``."""

    pricing: Literal["cpm"]
    audience: AudienceField = None
    max_units_per_person: Positive = 5.0
    ctr: Probability | None = None
    aware_per_impression: Probability = 0.0
    landing_rate: Probability = 0.85


class CpcChannel(_Bought):
    """Clicks bought one by one. Format 2: ``ctr`` says how many impressions were shown
    for them (reported), ``landing_rate`` turns clicks into sessions."""

    pricing: Literal["cpc"]
    audience: AudienceField = None
    max_units_per_person: Positive = 0.2
    ctr: Probability | None = None
    landing_rate: Probability = 0.85


class PerSendChannel(_Bought):
    """Emails paid per send. Format 2: ``open_rate``, ``click_rate`` (clicks per send)
    and ``unsubscribe_rate`` (per send; an unsubscribe removes the permission, not the
    customer), at most ``max_per_week`` emails a person."""

    pricing: Literal["per_send"]
    audience: Audience | None = None
    max_units_per_person: Positive = 1.0
    open_rate: Probability | None = None
    click_rate: Probability | None = None
    unsubscribe_rate: Probability = 0.0
    max_per_week: Annotated[float, Field(gt=0.0, le=70.0)] | None = None
    landing_rate: Probability = 1.0


class FixedChannel(_Reach):
    """A retainer (SEO, content). Format 2: ``contacts_per_day`` are sessions a day at
    full strength, built up by ``carryover``."""

    pricing: Literal["fixed"]
    monthly_cost: NonNegative
    contacts_per_day: NonNegative
    audience: AudienceField = None
    schedule: list[FixedPeriod] = Field(default_factory=list)
    landing_rate: Probability = 1.0  # contacts that are sessions on the shop

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: list[FixedPeriod]) -> list[FixedPeriod]:
        return _check_periods(v)


class CommissionChannel(_ChannelBase):
    pricing: Literal["commission"]
    commission: NonNegative
    #: what the programme pays for: a referred customer's entry-offer sale, or (with a
    #: subscription) a referred subscriber's first payment
    commission_on: Literal["entry_sale", "first_payment"] = "entry_sale"
    #: two-sided programmes: money off the entry offer for a referred friend, paid by the
    #: programme per referred sale (with the commission: the referrer's reward)
    friend_discount: NonNegative = 0.0
    #: how much the reward raises every referrer's daily chance of telling someone
    referral_lift: Annotated[float, Field(ge=1.0, le=100.0)] = 1.0


Channel = Annotated[
    CpmChannel | CpcChannel | PerSendChannel | FixedChannel | CommissionChannel,
    Field(discriminator="pricing"),
]
PRICING_MODELS = ("cpm", "cpc", "per_send", "fixed", "commission")


# --------------------------------------------------------------------------- offers


class LeadMagnet(Strict):
    name: Label = "lead magnet"
    unit_cost: NonNegative = 0.0


class EntryOffer(Strict):
    name: Label = "entry-point offer"
    price: NonNegative
    unit_cost: NonNegative = 0.0
    price_sensitivity: NonNegative = 0.0


#: days in a billing period (a month is billed every 30 days; MRR counts the price per month)
BILLING_DAYS = {"month": 30, "year": 365}
MAX_CHURN_PERIODS = 6


class Subscription(Strict):
    """The core offer billed per period: ``offers.core.price`` is the price of a period.

    A customer who buys the core offer signs up; with ``trial_days`` the sign-up is a
    free trial and the first bill falls when it ends (``trial_conversion`` of trials
    pay it, the rest leave); then a bill falls every period and ``churn`` of the
    subscribers due leave instead of paying (one value, or one per renewal: the 1st,
    2nd, ..., the last value for every later one)."""

    period: Literal["month", "year"] = "month"
    trial_days: Annotated[int, Field(ge=0, le=365)] = 0
    trial_conversion: Probability | None = None
    churn: Probability | list[Probability] = 0.0

    @field_validator("churn")
    @classmethod
    def _churn(cls, v):
        if isinstance(v, list) and not 1 <= len(v) <= MAX_CHURN_PERIODS:
            raise ValueError(f"give 1 to {MAX_CHURN_PERIODS} churn rates (one per renewal, the last for every later one)")
        return v

    @property
    def period_days(self) -> int:
        return BILLING_DAYS[self.period]

    @property
    def churn_by_renewal(self) -> tuple[float, ...]:
        return tuple(self.churn) if isinstance(self.churn, list) else (float(self.churn),)


class CoreOffer(Strict):
    name: Label = "core offer"
    price: NonNegative
    unit_cost: NonNegative = 0.0
    price_sensitivity: NonNegative = 0.0
    repeat_rate: Rate = 0.0
    #: multiplier on repeat chances by the number of the next order ("3", "4", ..., "6+")
    order_multipliers: dict[str, NonNegative] = Field(default_factory=dict)
    #: billed per period instead of bought once (``price`` is then the price of a period)
    subscription: Subscription | None = None

    @field_validator("order_multipliers")
    @classmethod
    def _orders(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            return v
        keys = list(v)
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            want = f"{3 + i}+" if last else str(3 + i)
            if key != want and not (last and key == str(3 + i) and len(keys) == 1):
                raise ValueError(
                    f"order numbers must run '3', '4', ... and the last end in '+' (e.g. '3', '4', '5+'); got {key!r}"
                )
        if len(keys) > 7:
            raise ValueError("at most 7 order classes ('3' .. '9+')")
        return v


class Upsell(Strict):
    price: NonNegative
    unit_cost: NonNegative = 0.0
    take_rate: Rate


class Shop(Strict):
    """What a session on the shop does: per stage moved on from, the share of sessions
    that move a person on (aware: engages, engaged: opts in for the lead magnet,
    subscribed: buys the entry offer, excited: buys the core offer). A session always
    makes an unaware person aware."""

    conversion: dict[str, Probability] = Field(default_factory=dict)

    @field_validator("conversion")
    @classmethod
    def _conv(cls, v: dict[str, float]) -> dict[str, float]:
        return _stage_keys(v, JOURNEY[1:PROMOTER], "a conversion per session")


class Event(Strict):
    name: Label
    start: Annotated[date, Field(strict=False)]  # TOML dates, or ISO text in stored JSON
    end: Annotated[date, Field(strict=False)]
    lift: Annotated[float, Field(ge=0.0, le=100.0)]


class Calendar(Strict):
    """Multipliers on sessions and purchases by weekday and on dated events (a season,
    Black Friday). Needs the scenario's ``start_date``."""

    weekday: dict[str, Annotated[float, Field(ge=0.0, le=100.0)]] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)

    @field_validator("weekday")
    @classmethod
    def _wd(cls, v):
        for k in v:
            if k not in WEEKDAYS:
                raise ValueError(f"unknown weekday {k!r}; weekdays are {', '.join(WEEKDAYS)}")
        return v


class Offers(Strict):
    lead_magnet: LeadMagnet = LeadMagnet()
    entry: EntryOffer
    core: CoreOffer
    upsells: dict[Name, Upsell] = Field(default_factory=dict)


# --------------------------------------------------------------------------- scenario


def _default_segments() -> dict[str, Segment]:
    return {"all": Segment(share=1.0)}


class Scenario(Strict):
    """A validated scenario (format 1). Immutable; build it with :func:`load_scenario`."""

    format: Literal[2]
    name: Label = "scenario"
    description: str = ""
    currency: Label = "USD"
    start_date: Annotated[date | None, Field(strict=False)] = None
    market: Market = Market()
    age_bands: list[Name] = Field(default_factory=list)
    segments: dict[Name, Segment] = Field(default_factory=_default_segments)
    organic: Organic = Organic()
    referrals: Referrals = Referrals()
    shop: Shop = Shop()
    calendar: Calendar = Calendar()
    channels: dict[Name, Channel] = Field(default_factory=dict)
    offers: Offers

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if not self.segments:
            raise At("segments", None, "at least one segment is needed")
        if len(self.segments) > MAX_SEGMENTS:
            raise At("segments", len(self.segments), f"at most {MAX_SEGMENTS} segments are supported")
        total = sum(s.share for s in self.segments.values())
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            shares = {k: s.share for k, s in self.segments.items()}
            raise At("segments", shares, f"segment shares must sum to 1, they sum to {total:.6g}")
        if len(self.channels) > MAX_CHANNELS:
            raise At("channels", len(self.channels), f"at most {MAX_CHANNELS} channels are supported")
        bands = self.age_bands
        if len(bands) > MAX_AGE_BANDS:
            raise At("age_bands", bands, f"at most {MAX_AGE_BANDS} age bands are supported")
        if len(set(bands)) != len(bands):
            raise At("age_bands", bands, "age band names must be distinct")
        for seg_name, seg in self.segments.items():
            for band in seg.age_shares:
                if band not in bands:
                    raise At(
                        f"segments.{seg_name}.age_shares.{band}", seg.age_shares[band], _unknown_band(band, bands)
                    )
            if seg.age_shares and not math.isclose(sum(seg.age_shares.values()), 1.0, abs_tol=1e-9):
                raise At(
                    f"segments.{seg_name}.age_shares",
                    dict(seg.age_shares),
                    f"age shares must sum to 1, they sum to {sum(seg.age_shares.values()):.6g}",
                )
        if (self.calendar.weekday or self.calendar.events) and self.start_date is None:
            raise At("start_date", None, "a calendar needs the scenario's start_date (e.g. start_date = 2026-01-05)")
        for i, ev in enumerate(self.calendar.events):
            if ev.end < ev.start:
                raise At(f"calendar.events.{i}.end", str(ev.end), "an event cannot end before it starts")
        self._check_subscription()
        self._check_referrals()
        n_commission = 0
        for name, ch in self.channels.items():
            for band in ch.band_affinity:
                if band not in bands:
                    raise At(f"channels.{name}.band_affinity.{band}", ch.band_affinity[band], _unknown_band(band, bands))
            aud = getattr(ch, "audience", None)
            if isinstance(aud, Audience):
                for band in aud.age_bands or ():
                    if band not in bands:
                        raise At(f"channels.{name}.audience.age_bands", band, _unknown_band(band, bands))
                if ch.pricing == "per_send" and aud.permission is False:
                    raise At(f"channels.{name}.audience.permission", False, "email reaches only people who gave permission")
                if aud.within_days is not None and aud.after_days is not None and aud.after_days > aud.within_days:
                    raise At(f"channels.{name}.audience", None, "after_days is more than within_days: nobody is in it")
            if ch.pricing == "commission":
                for key, p in ch.pushes.items():
                    if _parse_push(key)[0] < STAGE_ID["advocate"]:
                        raise At(
                            f"channels.{name}.pushes.{key}",
                            p,
                            "a referral programme pays per referred sale and reaches no one by itself; it can only "
                            "move advocates on to promoters (word of mouth brings new people: see referrals.rates)",
                        )
            if name in RESERVED_CAUSES:
                raise At(f"channels.{name}", None, f"{name!r} is a reserved cause name; rename the channel")
            for seg in ch.affinity:
                if seg not in self.segments:
                    raise At(
                        f"channels.{name}.affinity.{seg}",
                        ch.affinity[seg],
                        f"unknown segment {seg!r}; segments are {', '.join(self.segments)}",
                    )
            if ch.pricing == "per_send":
                for key in ch.pushes:
                    if _parse_push(key)[0] not in PERMISSION_STAGES:
                        raise At(
                            f"channels.{name}.pushes.{key}",
                            ch.pushes[key],
                            "email (per_send) reaches only subscribed-or-later customers; "
                            "it cannot push people who gave no permission",
                        )
            if ch.pricing == "commission" and ch.commission_on == "first_payment" and self.offers.core.subscription is None:
                raise At(f"channels.{name}.commission_on", ch.commission_on, "a first payment needs offers.core.subscription")
            if ch.pricing == "commission":
                n_commission += 1
                if n_commission > 1:
                    raise At(f"channels.{name}", None, "only one commission (referral) programme is supported")
            for p in getattr(ch, "schedule", ()):
                if p.from_day > self.market.days:
                    raise At(
                        f"channels.{name}.schedule",
                        p.from_day,
                        f"a period starts after the horizon ({self.market.days} days)",
                    )
        return self

    def _check_subscription(self) -> None:
        sub = self.offers.core.subscription
        if sub is None:
            return
        core = self.offers.core
        if sub.trial_conversion is not None and sub.trial_days == 0:
            raise At("offers.core.subscription.trial_conversion", sub.trial_conversion,
                     "a trial conversion needs trial_days > 0")
        if core.repeat_rate != 0.0:
            raise At("offers.core.repeat_rate", _shown(core.repeat_rate),
                     "a subscription bills every period by itself; remove the repeat rate")
        if core.order_multipliers:
            raise At("offers.core.order_multipliers", core.order_multipliers,
                     "a subscription bills every period; churn by renewal is offers.core.subscription.churn")
        for stage in ("ascended", "advocate", "promoter"):
            if stage in self.organic.lapse:
                raise At(f"organic.lapse.{stage}", _shown(self.organic.lapse[stage]),
                         "subscribers leave at a bill: use offers.core.subscription.churn")
        if sub.trial_days and "core_trial" in self.offers.upsells:
            raise At("offers.upsells.core_trial", None, "'core_trial' names the subscription's free trial; rename the upsell")
        if sub.period_days > 510:
            raise At("offers.core.subscription.period", sub.period, "a billing period must be shorter than 511 days")

    def _check_referrals(self) -> None:
        ref = self.referrals
        lift = 1.0
        for name, ch in self.channels.items():
            if ch.pricing == "commission":
                lift = ch.referral_lift
                if ch.friend_discount > self.offers.entry.price:
                    raise At(f"channels.{name}.friend_discount", ch.friend_discount,
                             f"more than the entry offer's price ({self.offers.entry.price:g})")
        if ref.model != "network":
            # a resolved scenario (every default written out, as studies and --set
            # re-validate it) carries the default settings: only a changed one is an error
            if "network" in ref.model_fields_set and ref.network != Network():
                raise At("referrals.network", None, 'the network settings need referrals.model = "network"')
            return
        for stage, r in ref.rates.items():
            if r * lift > 1.0:
                what = f" times the programme's referral_lift {lift:g}" if lift != 1.0 else ""
                raise At(f"referrals.rates.{stage}", r, "with the network model a rate is a person's daily chance of "
                         f"telling one contact{what}: it must be at most 1")
        n = self.market.simulated
        if ref.network.contacts > n - 1:
            raise At("referrals.network.contacts", ref.network.contacts,
                     f"a person can know at most the {n - 1:,} other people of a market of {n:,} simulated")

    # -- derived, read-only views ------------------------------------------------
    def canonical_json(self) -> str:
        """The fully-resolved scenario (defaults filled in) as canonical JSON.

        Keys keep the document's order: the order of segments and channels fixes
        their ids (segments are contiguous blocks of customers), so sorting them
        would describe a different simulation.
        """
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(self.segments)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.channels)

    @property
    def offer_names(self) -> tuple[str, ...]:
        sub = self.offers.core.subscription
        trial = ("core_trial",) if sub is not None and sub.trial_days else ()
        return ("lead_magnet", "entry", "core", *self.offers.upsells, *trial)

    @property
    def cause_names(self) -> tuple[str, ...]:
        return (*RESERVED_CAUSES, *self.channels)

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(self.age_bands) or ("all",)


def _shown(rate):
    """A rate as a plain value for an error message."""
    return rate.model_dump() if hasattr(rate, "model_dump") else rate


def _unknown_band(band: str, bands) -> str:
    if not bands:
        return f"unknown age band {band!r}; the scenario declares no age_bands"
    return f"unknown age band {band!r}; age bands are {', '.join(bands)}"


# --------------------------------------------------------------------------- upgrading

#: keys a format-1 document cannot have (they came with format 2)
_FORMAT2_TOP = ("start_date", "age_bands", "shop", "calendar")
_FORMAT2_CHANNEL = (
    "band_affinity", "ctr", "aware_per_impression", "landing_rate", "open_rate", "click_rate",
    "unsubscribe_rate", "max_per_week",
)


def upgrade(raw: dict, source: str | None = None) -> dict:
    """A scenario document in the current format (the pyhf way: documents are upgraded,
    the model only reads the newest format).

    Format 1 -> 2: format 2 is format 1 plus new, optional keys, so a format-1 document
    means the same as format 2. One thing changed meaning: a commission (referral)
    programme can no longer push people before ``advocate`` (it "acquired" people for
    nothing); such a push becomes an organic advance of the same daily chance,
    combined as independent chances with any organic advance already there, which is
    the same hazard the format-1 model used. Returns a new dict; ``raw`` is untouched.
    """
    if not isinstance(raw, dict) or raw.get("format") != 1:
        return raw
    out = copy.deepcopy(raw)
    for key in _FORMAT2_TOP:
        if key in out:
            raise ScenarioError("unknown key (not part of scenario format 1; write format = 2 to use it)", key, out[key], source)
    for name, ch in (out.get("channels") or {}).items():
        if not isinstance(ch, dict):
            continue
        for key in _FORMAT2_CHANNEL:
            if key in ch:
                raise ScenarioError(
                    "unknown key (not part of scenario format 1; write format = 2 to use it)",
                    f"channels.{name}.{key}", ch[key], source,
                )
        if ch.get("pricing") != "commission" and not ch.get("pushes"):
            # format 1: a channel without pushes moves nobody (it only spends); in format
            # 2 it would bring sessions, so it keeps moving nobody: no sessions land
            ch["landing_rate"] = 0.0
        if isinstance(ch.get("audience"), dict):
            raise ScenarioError(
                "an audience table is not part of scenario format 1; write format = 2 to use it",
                f"channels.{name}.audience", None, source,
            )
        if ch.get("pricing") == "commission" and isinstance(ch.get("pushes"), dict):
            for key in list(ch["pushes"]):
                try:
                    frm = _parse_push(key)[0]
                except ValueError:
                    continue  # validation reports it
                p = ch["pushes"][key]
                if frm < STAGE_ID["advocate"] and isinstance(p, (int, float)) and not isinstance(p, bool):
                    organic = out.setdefault("organic", {})
                    adv = organic.setdefault("advance", {})
                    stage = STAGES[frm]
                    before = adv.get(stage, 0.0)
                    if isinstance(before, (int, float)):
                        adv[stage] = 1.0 - (1.0 - float(before)) * (1.0 - float(p))
                        del ch["pushes"][key]
    out["format"] = 2
    return out


def upgrade_file(path, text: str) -> str:
    """The text of a scenario file in the current format, comments kept.

    The file is validated first (an invalid file is refused with its error). A format-1
    file whose meaning the upgrade keeps as it is gets its ``format = 1`` line
    rewritten; one whose upgrade moves a value (a referral programme's push before
    ``advocate``) is refused, naming the key to edit by hand."""
    import re
    import tomllib

    source = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"malformed TOML: {exc}", source=source) from None
    validate_scenario(copy.deepcopy(raw), source=source)
    if raw.get("format") == FORMAT:
        return text
    up = upgrade(raw, source)
    if {k: v for k, v in up.items() if k != "format"} != {k: v for k, v in raw.items() if k != "format"}:
        for name, ch in (raw.get("channels") or {}).items():
            if ch.get("pricing") != "commission" and "landing_rate" in up["channels"][name]:
                raise ScenarioError(
                    "this channel has no pushes: in format 1 it only spends, in format 2 it would bring sessions; "
                    "add landing_rate = 0.0 to it to keep it moving nobody (format 2 still reads this file as it is)",
                    f"channels.{name}",
                    source=source,
                )
            if ch.get("pricing") == "commission" and ch.get("pushes") != up["channels"][name].get("pushes"):
                raise ScenarioError(
                    "a referral programme can no longer push people before advocate in format 2; move the push "
                    "to organic.advance by hand (format 2 still reads this file as it is)",
                    f"channels.{name}.pushes",
                    source=source,
                )
    new, n = re.subn(r"(?m)^(\s*format\s*=\s*)1(\s*(#.*)?)$", r"\g<1>2\2", text, count=1)
    if n != 1:
        raise ScenarioError("cannot find the line 'format = 1' to rewrite", "format", source=source)
    return new


# --------------------------------------------------------------------------- loading


def default_scenario_path() -> Path:
    """Path of the bundled default scenario (works from a checkout and from a wheel)."""
    here = Path(__file__).resolve().parent.parent / "scenarios" / "default.toml"
    if here.is_file():
        return here
    return Path(str(resources.files("cvj.scenarios").joinpath("default.toml")))


def validate_scenario(raw: dict, source: str | None = None) -> Scenario:
    """Validate plain data (as read from TOML) into a :class:`Scenario`; a format-1
    document is upgraded first (:func:`upgrade`)."""
    raw = upgrade(raw, source)
    return validate(Scenario, raw, kind="scenario", source=source, format=FORMAT, labels={"pricing": "pricing model"})


def load_scenario(
    path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> Scenario:
    """Load and validate a scenario file.

    Parameters
    ----------
    path : path-like, optional
        A TOML scenario file; ``None`` loads the bundled default scenario.
    overrides : dict, optional
        Dotted key paths to replace before validation, e.g. ``{"market.seed": 7}``.

    Returns
    -------
    Scenario
        The frozen, fully-resolved scenario.

    Raises
    ------
    ScenarioError
        With the key path and value of the first problem found.
    """
    p = default_scenario_path() if path is None else Path(path)
    raw = read_toml(p)
    raw = apply_overrides(raw, overrides)
    return validate_scenario(raw, source=str(p))


def override(sc: Scenario, overrides: dict[str, Any] | None, source: str | None = None) -> Scenario:
    """``sc`` with dotted-path overrides, validated again: the rules of a study's
    overrides (and of ``cvj run --set``). Every path must name a field the scenario has
    once its defaults are filled in (``channels.email.daily_budget``, ``market.seed``),
    so a typo is an error rather than a new key.

    Raises
    ------
    ScenarioError
        With the override's path when it names no field or its value is invalid.
    """
    if not overrides:
        return sc
    # model_dump keeps the file's order of segments and channels (it changes the run)
    resolved = sc.model_dump(mode="json")
    for key, value in overrides.items():
        try:
            apply_overrides(resolved, {key: value}, must_exist=True)
        except ScenarioError as exc:
            raise ScenarioError(exc.reason, key, value, source) from None
    return validate_scenario(apply_overrides(resolved, overrides, must_exist=True), source=source)


def scenario_from_json(text: str) -> Scenario:
    """Rebuild a scenario from its canonical JSON (as stored in Parquet metadata)."""
    return validate_scenario(json.loads(text), source="<json>")


__all__ = [
    "FORMAT",
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "default_scenario_path",
    "load_scenario",
    "override",
    "read_toml",
    "scenario_from_json",
    "upgrade",
    "upgrade_file",
    "validate_scenario",
]

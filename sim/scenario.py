"""Scenario files: TOML documents with ``format = 1``, validated once into a frozen model.

A scenario is data. It is read and validated by the document layer shared with
studies and marketer settings (:mod:`cvj.documents`: unknown keys are errors, types are
strict); nothing in it is evaluated or executed. Every validation failure raises
:class:`~cvj.errors.ScenarioError`, whose message names the key path
(``channels.paid_social.daily_budget``), the value and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from .documents import At, Label, Name, Strict, apply_overrides, read_toml, validate
from .errors import ScenarioError
from .stages import JOURNEY, PERMISSION_STAGES, PROMOTER, STAGE_ID, STAGES

FORMAT = 1
MAX_SEGMENTS = 16  # segment and responsiveness level share one byte per customer
RESPONSIVENESS_LEVELS = 16
MAX_CHANNELS = 200
RESERVED_CAUSES = ("organic", "referral")

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]
Day = Annotated[int, Field(ge=1, le=65_534)]


def _stage_keys(mapping: dict[str, float], allowed: tuple[str, ...], what: str) -> dict[str, float]:
    for key in mapping:
        if key not in STAGE_ID:
            raise ValueError(f"unknown stage {key!r}; stages are {', '.join(STAGES)}")
        if key not in allowed:
            raise ValueError(f"{what} is not defined for stage {key!r}; allowed: {', '.join(allowed)}")
    return mapping


# --------------------------------------------------------------------------- market


class Market(Strict):
    customers: Annotated[int, Field(gt=0)] = 1_000_000
    days: Annotated[int, Field(gt=0, le=65_534)] = 365
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 2026
    initial_stages: dict[str, Probability] = Field(default_factory=lambda: {"unaware": 1.0})

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
    description: str = ""


class Organic(Strict):
    advance: dict[str, Probability] = Field(default_factory=dict)
    lapse: dict[str, Probability] = Field(default_factory=dict)
    reactivation: Probability = 0.0

    @field_validator("advance")
    @classmethod
    def _adv(cls, v: dict[str, float]) -> dict[str, float]:
        return _stage_keys(v, JOURNEY[:PROMOTER], "an organic advance rate")

    @field_validator("lapse")
    @classmethod
    def _lapse(cls, v: dict[str, float]) -> dict[str, float]:
        return _stage_keys(v, JOURNEY[1:], "a lapse rate")


class Referrals(Strict):
    #: new ``aware`` people brought in per day by each person in the stage (word of mouth)
    rates: dict[str, NonNegative] = Field(default_factory=dict)

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


class _ChannelBase(Strict):
    pushes: dict[str, Probability] = Field(default_factory=dict)
    affinity: dict[str, Probability] = Field(default_factory=dict)
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
    for (a1, b1), (a2, b2) in zip(spans, spans[1:]):
        if a2 <= b1:
            raise ValueError(f"periods {a1}-{b1} and {a2}-{b2} overlap")
    return periods


class CpmChannel(_Bought):
    pricing: Literal["cpm"]
    audience: Annotated[int, Field(gt=0)] | None = None
    max_units_per_person: Positive = 5.0


class CpcChannel(_Bought):
    pricing: Literal["cpc"]
    audience: Annotated[int, Field(gt=0)] | None = None
    max_units_per_person: Positive = 0.2


class PerSendChannel(_Bought):
    pricing: Literal["per_send"]
    max_units_per_person: Positive = 1.0


class FixedChannel(_Reach):
    pricing: Literal["fixed"]
    monthly_cost: NonNegative
    contacts_per_day: NonNegative
    audience: Annotated[int, Field(gt=0)] | None = None
    schedule: list[FixedPeriod] = Field(default_factory=list)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: list[FixedPeriod]) -> list[FixedPeriod]:
        return _check_periods(v)


class CommissionChannel(_ChannelBase):
    pricing: Literal["commission"]
    commission: NonNegative


Channel = Annotated[
    Union[CpmChannel, CpcChannel, PerSendChannel, FixedChannel, CommissionChannel],
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


class CoreOffer(Strict):
    name: Label = "core offer"
    price: NonNegative
    unit_cost: NonNegative = 0.0
    price_sensitivity: NonNegative = 0.0
    repeat_rate: Probability = 0.0


class Upsell(Strict):
    price: NonNegative
    unit_cost: NonNegative = 0.0
    take_rate: Probability


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

    format: Literal[1]
    name: Label = "scenario"
    description: str = ""
    currency: Label = "USD"
    market: Market = Market()
    segments: dict[Name, Segment] = Field(default_factory=_default_segments)
    organic: Organic = Organic()
    referrals: Referrals = Referrals()
    channels: dict[Name, Channel] = Field(default_factory=dict)
    offers: Offers

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
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
        n_commission = 0
        for name, ch in self.channels.items():
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
        return ("lead_magnet", "entry", "core", *self.offers.upsells)

    @property
    def cause_names(self) -> tuple[str, ...]:
        return (*RESERVED_CAUSES, *self.channels)


# --------------------------------------------------------------------------- loading


def default_scenario_path() -> Path:
    """Path of the bundled default scenario (works from a checkout and from a wheel)."""
    here = Path(__file__).resolve().parent.parent / "scenarios" / "default.toml"
    if here.is_file():
        return here
    return Path(str(resources.files("cvj.scenarios").joinpath("default.toml")))


def validate_scenario(raw: dict, source: str | None = None) -> Scenario:
    """Validate plain data (as read from TOML) into a :class:`Scenario`."""
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
    "read_toml",
    "scenario_from_json",
    "validate_scenario",
]

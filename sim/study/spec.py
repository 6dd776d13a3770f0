"""The study document: a strategist's comparison of variants of a scenario.

A study file is TOML with ``format = 1``, read and validated by the document layer
shared with scenarios (:mod:`cvj.documents`: unknown keys are errors; every error is a
:class:`~cvj.errors.ScenarioError` naming the key path and the value)::

    format = 1
    name = "compare-entry-offers"
    scenario = "default.toml"          # the base scenario, relative to this file
    replications = 20
    days = 365                         # horizon (optional: the scenario's)
    customers = 1_000_000              # optional: the scenario's market
    sample = 200_000                   # optional: simulate a sample of the market
    baseline = "price_9"
    kpis = ["profit", "conversions", "cac", "roas"]

    [marketer]                         # every variant's marketer (cvj.mesa_model.MarketerSettings)
    policy = "fixed"

    [variants.free]
    overrides = { "offers.entry.price" = 0.0 }
    [variants.price_9]
    [variants.price_27]
    overrides = { "offers.entry.price" = 27.0 }
    marketer = { policy = "shift" }    # merged onto the study's [marketer]

Overrides name fields of the scenario by dotted path; a path that the scenario (with
its defaults filled in) does not have is an error, so a typo cannot become a new key.
:func:`load_study` returns a frozen :class:`Study` holding every variant's
fully-resolved scenario and marketer; everything after trusts it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..documents import Label, Name, Strict, apply_overrides, flatten, read_toml, validate
from ..errors import ScenarioError
from ..mesa_model import MarketerSettings
from ..registry import kpi_names
from ..scenario import Scenario, validate_scenario

FORMAT = 1


class VariantSpec(Strict):
    description: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    marketer: dict[str, Any] = Field(default_factory=dict)


class StudySpec(Strict):
    format: Literal[1]
    name: Label = "study"
    description: str = ""
    scenario: str
    replications: int = Field(ge=1, le=100_000)
    days: int | None = Field(default=None, ge=1, le=65_534)
    customers: int | None = Field(default=None, ge=1)
    #: simulate this many of the market's customers (``market.sample``): budgets,
    #: audiences and the marketer's caps scale with it, the KPIs are the market's
    sample: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    common_random_numbers: bool = True
    baseline: str
    kpis: list[str] = Field(min_length=1)
    rank_by: str | None = None
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    overrides: dict[str, Any] = Field(default_factory=dict)
    marketer: dict[str, Any] = Field(default_factory=dict)
    variants: dict[Name, VariantSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    scenario: Scenario
    marketer: MarketerSettings
    overrides: dict


@dataclass(frozen=True)
class Study:
    """A validated study: every variant's fully-resolved scenario and marketer."""

    name: str
    description: str
    replications: int
    baseline: str
    kpis: tuple[str, ...]
    rank_by: str
    confidence: float
    common_random_numbers: bool
    variants: dict[str, Variant]
    source: str = ""
    #: variants whose runs also return their touch paths (``touch_paths``: the
    #: customers table reduced by :func:`cvj.touch.path_counts`), and, with
    #: ``keep_customers``, the customers table itself (set by library callers such as
    #: :func:`cvj.attribution.attribute`; a study file has neither)
    tracked: tuple[str, ...] = ()
    keep_customers: bool = False

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(self.variants)

    def stream(self, variant: str, replication: int) -> int:
        """The random stream (replication number passed to the engine) of a run.

        With common random numbers every variant's replication ``r`` uses stream ``r``;
        without, variant ``i`` (in file order) uses ``r + i * replications``.
        """
        if self.common_random_numbers:
            return int(replication)
        return int(replication) + self.variant_names.index(variant) * self.replications

    def to_json(self) -> str:
        """Everything a task needs, as canonical JSON (no file is read again)."""
        doc = {
            "format": FORMAT,
            "name": self.name,
            "description": self.description,
            "replications": self.replications,
            "baseline": self.baseline,
            "kpis": list(self.kpis),
            "rank_by": self.rank_by,
            "confidence": self.confidence,
            "common_random_numbers": self.common_random_numbers,
            "variants": {
                n: {
                    "description": v.description,
                    "overrides": v.overrides,
                    "marketer": v.marketer.model_dump(mode="json"),
                    "scenario": v.scenario.model_dump(mode="json"),
                }
                for n, v in self.variants.items()
            },
        }
        if self.tracked:  # only when set, so a study file's JSON (and SHA-256) stays as it was
            doc["tracked"] = list(self.tracked)
            doc["keep_customers"] = self.keep_customers
        # not sort_keys: the order of segments and channels is part of a scenario
        return json.dumps(doc, separators=(",", ":"))


@functools.lru_cache(maxsize=8)
def study_from_json(text: str) -> Study:
    """Rebuild a study from :meth:`Study.to_json` (as a task receives it)."""
    doc = json.loads(text)
    variants = {}
    for n, v in doc["variants"].items():
        variants[n] = Variant(
            name=n,
            description=v["description"],
            scenario=validate_scenario(v["scenario"], source=f"<study variant {n}>"),
            marketer=MarketerSettings.model_validate(v["marketer"]),
            overrides=v["overrides"],
        )
    return Study(
        name=doc["name"],
        description=doc["description"],
        replications=doc["replications"],
        baseline=doc["baseline"],
        kpis=tuple(doc["kpis"]),
        rank_by=doc["rank_by"],
        confidence=doc["confidence"],
        common_random_numbers=doc["common_random_numbers"],
        variants=variants,
        source="<json>",
        tracked=tuple(doc.get("tracked", ())),
        keep_customers=bool(doc.get("keep_customers", False)),
    )


def _marketer(common: dict, own: dict, variant_path: str, source: str) -> MarketerSettings:
    """The study's [marketer] with the variant's keys on top."""
    try:
        return validate(MarketerSettings, {**common, **own}, kind="marketer")
    except ScenarioError as err:
        head = err.path.split(".", 1)[0]
        path = f"{variant_path}.marketer" if head in own else "marketer"
        raise ScenarioError(err.reason, f"{path}.{err.path}", err.value, source) from None


def load_study(path: str | os.PathLike, replications: int | None = None) -> Study:
    """Load and validate a study file.

    Parameters
    ----------
    path : path-like
        The study (TOML, ``format = 1``).
    replications : int, optional
        Replace the file's number of replications.

    Returns
    -------
    Study

    Raises
    ------
    ScenarioError
        Naming the study file, the key path and the value of the first problem.
    """
    p = Path(path)
    source = str(p)
    raw = read_toml(p)  # the same "no such file" and "malformed TOML" errors as a scenario
    if replications is not None and isinstance(raw, dict) and "format" in raw:
        raw = dict(raw, replications=replications)
    spec = validate(StudySpec, raw, kind="study", source=source, format=FORMAT)

    base_path = (p.parent / spec.scenario).resolve() if not Path(spec.scenario).is_absolute() else Path(spec.scenario)
    if not base_path.is_file():
        raise ScenarioError(f"no such scenario file ({base_path})", "scenario", spec.scenario, source)
    try:
        base = validate_scenario(read_toml(base_path), source=str(base_path))
    except ScenarioError as exc:
        raise ScenarioError(f"the base scenario is invalid: {exc}", "scenario", spec.scenario, source) from None
    # defaults filled in, so every real field exists; model_dump keeps the file's order of
    # segments and channels (canonical JSON sorts them, and the order changes the run)
    resolved = base.model_dump(mode="json")

    common = {}
    for key, value in (
        ("market.days", spec.days),
        ("market.customers", spec.customers),
        ("market.sample", spec.sample),
        ("market.seed", spec.seed),
    ):
        if value is not None:
            common[key] = value
    common.update(flatten(spec.overrides))

    if spec.baseline not in spec.variants:
        raise ScenarioError(f"not one of the variants ({', '.join(spec.variants)})", "baseline", spec.baseline, source)

    variants = {}
    for name, v in spec.variants.items():
        where = f"variants.{name}"  # a valid name (cvj.names): checked by the document's Name type
        own = flatten(v.overrides)
        overrides = {**common, **own}

        for key, value in overrides.items():
            try:
                apply_overrides(resolved, {key: value}, must_exist=True)
            except ScenarioError as exc:
                at = _where(key, own, where, spec.overrides)
                raise ScenarioError(f"{exc.reason} ({base_path.name})", at, value, source) from None
        try:
            sc = validate_scenario(apply_overrides(resolved, overrides, must_exist=True), source=source)
        except ScenarioError as exc:
            if exc.path in overrides:
                raise ScenarioError(exc.reason, _where(exc.path, own, where, spec.overrides), exc.value, source) from None
            raise ScenarioError(f"{exc.path}: {exc.reason}" if exc.path else exc.reason, where, None, source) from None
        settings = _marketer(spec.marketer, v.marketer, where, source)
        _check_marketer(settings, sc, lambda key, w=where, m=v.marketer: f"{w}.marketer" if key in m else "marketer", source)
        variants[name] = Variant(name, v.description, sc, settings, overrides)

    def _names(sc):
        return kpi_names(sc.segments, sc.offers.core.subscription is not None)

    known = _names(variants[spec.baseline].scenario)
    for i, k in enumerate(spec.kpis):
        if k not in known:
            raise ScenarioError(f"unknown KPI; KPIs are {', '.join(known)}", f"kpis.{i}", k, source)
    rank_by = spec.rank_by or spec.kpis[0]
    if rank_by not in spec.kpis:
        raise ScenarioError("must be one of the study's kpis", "rank_by", rank_by, source)
    for name, v in variants.items():
        if _names(v.scenario) != known:
            raise ScenarioError(
                "variants must keep the base scenario's segments and whether the core offer is a subscription",
                f"variants.{name}.overrides", None, source,
            )
    return Study(
        name=spec.name,
        description=spec.description,
        replications=spec.replications,
        baseline=spec.baseline,
        kpis=tuple(spec.kpis),
        rank_by=rank_by,
        confidence=spec.confidence,
        common_random_numbers=spec.common_random_numbers,
        variants=variants,
        source=source,
    )


def _where(key: str, own: dict, variant_path: str, common: dict) -> str:
    """The key path in the study file of the override ``key`` of a variant."""
    if key in own:
        return f"{variant_path}.overrides.{key}"
    short = {"market.days": "days", "market.customers": "customers", "market.sample": "sample", "market.seed": "seed"}
    return short[key] if key in short and key not in flatten(common) else f"overrides.{key}"


def _check_marketer(s: MarketerSettings, sc: Scenario, path: Callable[[str], str], source: str) -> None:
    """The marketer's channels must be the scenario's channels with a budget.
    ``path(key)`` is where the key was written (the study's or the variant's table)."""
    budgeted = [n for n, ch in sc.channels.items() if ch.pricing != "commission"]
    for i, n in enumerate(s.channels or ()):
        if n not in budgeted:
            raise ScenarioError(
                f"not a channel with a budget; those are {', '.join(budgeted)}", f"{path('channels')}.channels.{i}", n, source
            )
    for n, cap in s.channel_caps.items():
        where = f"{path('channel_caps')}.channel_caps.{n}"
        if n not in budgeted:
            raise ScenarioError(f"not a channel with a budget; those are {', '.join(budgeted)}", where, cap, source)
        if cap < 0:
            raise ScenarioError("a cap cannot be negative", where, cap, source)


def study_of(
    base: Scenario,
    variants: dict[str, dict[str, Any]],
    *,
    name: str,
    replications: int,
    baseline: str,
    kpis: tuple[str, ...],
    confidence: float = 0.95,
    common_random_numbers: bool = True,
    tracked: tuple[str, ...] = (),
    keep_customers: bool = False,
) -> Study:
    """A study built in code rather than read from a file: every variant is ``base``
    with its overrides (dotted paths that must exist, as in a study file) and the
    ``fixed`` marketer (the scenario's plan), so replication ``r`` of a variant equals
    ``cvj run --replication r`` of its scenario.

    Raises
    ------
    ScenarioError
        An override names no field of the scenario or makes it invalid (the path is
        the override's).
    """
    from ..scenario import override

    if baseline not in variants:
        raise ScenarioError(f"not one of the variants ({', '.join(variants)})", "baseline", baseline)
    built = {
        n: Variant(n, "", override(base, o), MarketerSettings(), dict(o)) for n, o in variants.items()
    }
    return Study(
        name=name,
        description="",
        replications=replications,
        baseline=baseline,
        kpis=tuple(kpis),
        rank_by=kpis[0],
        confidence=confidence,
        common_random_numbers=common_random_numbers,
        variants=built,
        source="<code>",
        tracked=tuple(tracked),
        keep_customers=keep_customers,
    )


def check_study(study: Study) -> list:
    """The warnings the study's variants show without running (as ``cvj validate``
    gives for one scenario): a warning every variant has once, as it is; one only some
    variants have with their names before its path (``variant social_heavy:
    channels.search_ads``).

    Returns
    -------
    list of cvj.checks.ScenarioWarning
    """
    from ..checks import ScenarioWarning, check_scenario

    found: dict[tuple[str, str, str], list[str]] = {}
    for name, v in study.variants.items():
        for w in check_scenario(v.scenario):
            found.setdefault((w.name, w.path, w.message), []).append(name)
    out = []
    for (kind, path, message), names in found.items():
        if len(names) < len(study.variants):
            path = f"variant{'s' if len(names) > 1 else ''} {', '.join(names)}: {path}"
        out.append(ScenarioWarning(kind, path, message))
    return out


def tasks_of(study: Study) -> list[tuple[str, int]]:
    """Every (variant, replication), replication-major so an early stop leaves pairs."""
    return [(v, r) for r in range(study.replications) for v in study.variant_names]


__all__ = [
    "FORMAT", "Study", "StudySpec", "Variant", "VariantSpec", "check_study", "load_study", "study_from_json", "study_of",
    "tasks_of",
]

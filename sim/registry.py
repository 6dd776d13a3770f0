"""Registries: the one place where the KPIs and the output tables are listed.

Every other module asks here instead of writing the names out again: the run's
``summary`` table takes its column types from :func:`summary_schema`, a study checks
its ``kpis`` against :func:`kpi_names` and ranks by :attr:`Kpi.lower_is_better`, the
CLI formats money by :attr:`Kpi.money`, the study output writes the tables of
:data:`STUDY_RUN_TABLES` and :data:`STUDY_TABLES`. Tests tie the registry to what the
code computes (``tests/test_registry.py``).

Stage and cause ids are in :mod:`cvj.stages` (the kernels keep a mirror of them,
since ``cvj.kernels`` imports nothing from ``cvj``; a test ties the two).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from .stages import LAPSED, STAGES, UNAWARE


@dataclass(frozen=True)
class Kpi:
    """One KPI of a run (a numeric column of ``summary``).

    Attributes
    ----------
    name : str
    type : pyarrow.DataType
        Its column type in ``summary``.
    lower_is_better : bool
        The direction in which a variant is better (cost, CAC, payback day: lower).
    money : bool
        In the scenario's currency.
    defined_as : str
        What a run whose value is defined did (``"pays back"``), for "pays back in 6
        of 10 replications"; empty for a KPI that is always defined.
    undefined_as : str
        Why a value is undefined, as the answer ("never pays back within the horizon").
    """

    name: str
    type: pa.DataType
    lower_is_better: bool = False
    money: bool = False
    defined_as: str = ""
    undefined_as: str = ""


#: the identifying columns of ``summary``, before the KPIs
SUMMARY_KEYS = {
    "scenario": pa.string(),
    "seed": pa.int64(),
    "replication": pa.int32(),
    "customers": pa.int64(),
    "simulated": pa.int64(),
    "days": pa.int32(),
}

_F, _I = pa.float64(), pa.int64()
#: the KPIs every run reports, in column order (then ``ltv_<segment>``, ``end_<stage>``)
FIXED_KPIS = (
    Kpi("spend", _F, lower_is_better=True, money=True),
    Kpi("revenue", _F, money=True),
    Kpi("cost", _F, lower_is_better=True, money=True),
    Kpi("profit", _F, money=True),
    Kpi("conversions", _I),
    Kpi("cac", _F, lower_is_better=True, defined_as="has conversions", undefined_as="no conversions"),
    Kpi("roas", _F, defined_as="spends", undefined_as="no spend"),
    Kpi(
        "payback_day", pa.int32(), lower_is_better=True, defined_as="pays back",
        undefined_as="never pays back within the horizon",
    ),
    Kpi("front_end_profit", _F, money=True),
    Kpi("back_end_profit", _F, money=True),
    Kpi("referral_share", _F, defined_as="has conversions", undefined_as="no conversions"),
    Kpi("viral_coefficient", _F, defined_as="has word of mouth on a network and buyers",
        undefined_as="no network model or no buyers"),
    Kpi("buyers_who_refer", _F, defined_as="has word of mouth on a network and buyers",
        undefined_as="no network model or no buyers"),
)
#: the KPIs of a scenario whose core offer is a subscription, after ``end_<stage>``
SUBSCRIPTION_KPIS = (
    Kpi("subscribers_end", _I),
    Kpi("mrr_end", _F, money=True),
    Kpi("arr_end", _F, money=True),
    Kpi("first_payments", _I),
    Kpi("cac_first_payment", _F, lower_is_better=True, defined_as="has first payments",
        undefined_as="no first payments"),
    Kpi("trial_conversion", _F, defined_as="has trials that ended", undefined_as="no trial ended"),
    Kpi("churn_per_renewal", _F, lower_is_better=True, defined_as="has renewals due", undefined_as="no renewal due"),
)
#: stages where more customers at the end is worse
_BAD_END = (STAGES[UNAWARE], STAGES[LAPSED])


def kpis(segments: Iterable[str], subscription: bool = False) -> tuple[Kpi, ...]:
    """Every KPI of a run of a scenario with these segments (and a subscription core
    offer, if ``subscription``), in column order."""
    return (
        *FIXED_KPIS,
        *(_ltv(f"ltv_{g}") for g in segments),
        *(Kpi(f"end_{s}", _I, lower_is_better=s in _BAD_END) for s in STAGES),
        *(SUBSCRIPTION_KPIS if subscription else ()),
    )


def _ltv(name: str) -> Kpi:
    return Kpi(name, _F, defined_as="has conversions in the segment", undefined_as="no conversions in the segment")


def kpi_names(segments: Iterable[str], subscription: bool = False) -> tuple[str, ...]:
    """The names of :func:`kpis`."""
    return tuple(k.name for k in kpis(segments, subscription))


def kpi(name: str) -> Kpi:
    """The KPI called ``name`` (``ltv_<segment>`` for any segment name)."""
    for k in (*FIXED_KPIS, *SUBSCRIPTION_KPIS):
        if k.name == name:
            return k
    if name.startswith("ltv_"):
        return _ltv(name)
    if name.startswith("end_") and name[4:] in STAGES:
        return Kpi(name, _I, lower_is_better=name[4:] in _BAD_END)
    raise KeyError(f"no KPI {name!r}")


def summary_schema(segments: Iterable[str], subscription: bool = False) -> pa.Schema:
    """The schema of a run's ``summary`` table: the keys, then every KPI."""
    return pa.schema([*SUMMARY_KEYS.items(), *((k.name, k.type) for k in kpis(segments, subscription))])


#: the marketer's moves of one run: the ``budget_moves`` table
MOVE_SCHEMA = pa.schema(
    [
        ("day", pa.int32()),
        ("from_channel", pa.string()),
        ("to_channel", pa.string()),
        ("amount", pa.float64()),
        ("reason", pa.string()),
    ]
)

#: one row per variant x KPI: the ``contrasts`` table of a study
CONTRASTS_SCHEMA = pa.schema(
    [
        ("variant", pa.string()),
        ("baseline", pa.string()),
        ("kpi", pa.string()),
        ("n", pa.int32()),
        ("variant_mean", pa.float64()),
        ("baseline_mean", pa.float64()),
        ("mean_difference", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("halfwidth", pa.float64()),
        ("p_value", pa.float64()),
        ("significant", pa.bool_()),
        ("var_paired", pa.float64()),
        ("var_independent", pa.float64()),
        ("crn_variance_factor", pa.float64()),
        ("target_halfwidth", pa.float64()),
        ("replications_needed", pa.int64()),
        # censoring: a KPI can be undefined in a run (never pays back, no conversions);
        # ``n`` counts the pairs where both are defined, these say how many each had
        ("replications", pa.int32()),
        ("variant_defined", pa.int32()),
        ("baseline_defined", pa.int32()),
        ("defined_share_difference", pa.float64()),
        ("defined_p_value", pa.float64()),
    ]
)


@dataclass(frozen=True)
class TableInfo:
    """One output table: its name, what one of its rows is and, for a table whose
    columns do not depend on the scenario, its schema."""

    name: str
    row: str
    schema: pa.Schema | None = None


#: the tables of ``cvj run`` (``customers`` only with ``--customers-table``,
#: ``subscriptions`` only when the core offer is a subscription)
RUN_TABLES = (
    TableInfo("daily_stages", "replication, day, segment, age_band, stage"),
    TableInfo("transitions", "replication, day, segment, age_band, from_stage, to_stage, cause"),
    TableInfo("finance", "replication, day, item"),
    TableInfo("channels", "replication, day, channel"),
    TableInfo("orders", "replication, order_number, days_since_previous"),
    TableInfo("summary", "replication"),
    TableInfo("customers", "replication, customer"),
    TableInfo("subscriptions", "replication, day, segment, age_band"),
    TableInfo("referrals", "replication, referral (network model only)"),
)
#: the tables of one run of a study (one partition each, ``variant=V/replication=R``)
STUDY_RUN_TABLES = (
    TableInfo("daily_stages", "day, segment, age_band, stage"),
    TableInfo("transitions", "day, segment, age_band, from_stage, to_stage, cause"),
    TableInfo("finance", "day, item"),
    TableInfo("channels", "day, channel"),
    TableInfo("orders", "order_number, days_since_previous"),
    TableInfo("kpis_daily", "day"),
    TableInfo("summary", "run"),
    TableInfo("budget_moves", "move of the marketer", MOVE_SCHEMA),
)
#: the tables of a whole study, computed from all its runs at the end
STUDY_TABLES = (
    TableInfo("runs", "variant, replication"),
    TableInfo("contrasts", "variant, kpi", CONTRASTS_SCHEMA),
)


def names(tables: Iterable[TableInfo]) -> tuple[str, ...]:
    """The names of ``tables``, in order."""
    return tuple(t.name for t in tables)


__all__ = [
    "CONTRASTS_SCHEMA",
    "FIXED_KPIS",
    "MOVE_SCHEMA",
    "RUN_TABLES",
    "STUDY_RUN_TABLES",
    "STUDY_TABLES",
    "SUBSCRIPTION_KPIS",
    "SUMMARY_KEYS",
    "Kpi",
    "TableInfo",
    "kpi",
    "kpi_names",
    "kpis",
    "names",
    "summary_schema",
]

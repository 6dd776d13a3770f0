"""Numbers for people: thousands separators, the scenario's currency, no raw floats.

The same rules give the page's text (Python) and the charts' axes and tooltips
(d3-format strings, which Vega applies in the browser and in the PNGs).
"""

from __future__ import annotations

import math

from .. import registry

#: d3-format of counts and money on axes and in tooltips
AXIS_COUNT = ",.0f"
AXIS_MONEY = ",.0f"
AXIS_RATIO = ",.3~r"  # three significant digits: 0.00798, 4.82, 20.1, 15,000
AXIS_SHARE = ".0%"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def count(v) -> str:
    """``12,780``; fractions (means over replications) to one decimal below 100."""
    if _missing(v):
        return "-"
    v = float(v)
    if abs(v) < 100 and not v.is_integer():
        return f"{v:,.1f}"
    return f"{v:,.0f}"


def money(v, currency: str = "") -> str:
    """``1,237,990 USD``, ``-194,236 USD``; two decimals below 1,000 (``20.08 USD``)."""
    if _missing(v):
        return "-"
    v = float(v)
    if math.isinf(v):
        return "inf"
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"
    return f"{text} {currency}".rstrip()


def ratio(v) -> str:
    """``4.82``."""
    if _missing(v):
        return "-"
    v = float(v)
    return "inf" if math.isinf(v) else f"{v:,.2f}"


def share(v) -> str:
    """``12.3%``."""
    if _missing(v):
        return "-"
    return f"{100 * float(v):.1f}%"


def day(v) -> str:
    """``day 164``, or ``not reached``."""
    if _missing(v):
        return "not reached"
    v = float(v)
    return f"day {v:,.0f}" if v.is_integer() else f"day {v:,.1f}"


def number(v) -> str:
    """Any KPI value without a unit: separators, at most 3 significant digits below 1."""
    if _missing(v):
        return "-"
    v = float(v)
    if math.isinf(v):
        return "inf"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1 or a == 0:
        return f"{v:,.2f}"
    return f"{v:.3g}"


def _is_money(name: str) -> bool:
    """In the scenario's currency, as the KPI registry says (LTV too: revenue per customer)."""
    try:
        return registry.kpi(name).money or name.startswith("ltv_")
    except KeyError:
        return False


def kpi(name: str, v, currency: str = "") -> str:
    """A KPI value as a person reads it (money with the currency, days, counts, ratios)."""
    if _is_money(name):
        return money(v, currency)
    if name == "payback_day":
        return day(v)
    if name == "conversions" or name.startswith("end_"):
        return count(v)
    return number(v)


def kpi_axis(name: str) -> str:
    """The d3-format of a KPI on an axis."""
    if name in ("roas", "cac"):
        return AXIS_RATIO
    return AXIS_MONEY if _is_money(name) else AXIS_COUNT


def kpi_title(name: str, currency: str = "") -> str:
    """An axis title: ``profit (USD)``, ``payback day``, ``ROAS``."""
    label = {"roas": "ROAS", "cac": "CAC", "payback_day": "payback day"}.get(name, name.replace("_", " "))
    unit = currency if _is_money(name) and currency else ""
    return f"{label} ({unit})" if unit else label


__all__ = ["count", "day", "kpi", "kpi_axis", "kpi_title", "money", "number", "ratio", "share"]

"""Statistical checks and scenario helpers shared by the engine-correctness tests.

Every test here controls its family-wise error: a family of ``m`` tests at level
``FAMILY_ALPHA`` runs each one at ``FAMILY_ALPHA / m`` (Bonferroni; valid whatever the
dependence between the tests). Tolerances are computed from sample sizes, never typed in.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cvj.scenario import read_toml, validate_scenario
from cvj.stages import STAGES

#: the handbag shop in scenario format 1 (memoryless customers, channels as daily
#: pushes): the model the closed forms and the Mesa reference are written for
CLASSIC = Path(__file__).resolve().parents[1] / "scenarios" / "handbag_shop_format1.toml"

#: family-wise error rate of every statistical family in these tests
FAMILY_ALPHA = 0.001

#: True when the kernels run as plain Python (the coverage run): heavy tests shrink
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"


def per_test_alpha(m: int, family_alpha: float = FAMILY_ALPHA) -> float:
    """Bonferroni: level of each of ``m`` tests so the family errs with prob <= family_alpha."""
    return family_alpha / m


def two_sided_z(alpha: float) -> float:
    """z with P(|Z| > z) = alpha."""
    return float(stats.norm.isf(alpha / 2.0))


# --------------------------------------------------------------------------- goodness of fit


@dataclass
class GoF:
    statistic: float
    df: int
    p_value: float
    critical: float  # chi-square quantile at the level asked for


def chi_square_gof(observed, expected, alpha: float, min_expected: float = 5.0) -> GoF:
    """Pearson chi-square of observed counts against expected counts (same total).

    Cells whose expected count is below ``min_expected`` are pooled into one cell (and
    that cell into the smallest other one while it is still below), the usual rule
    under which the chi-square approximation holds. ``df`` = cells - 1.
    """
    o = np.asarray(observed, dtype=np.float64).ravel()
    e = np.asarray(expected, dtype=np.float64).ravel()
    assert abs(o.sum() - e.sum()) < 1e-6 * max(1.0, e.sum()), (o.sum(), e.sum())
    small = e < min_expected
    oo, ee = list(o[~small]), list(e[~small])
    if small.any():
        ro, re_ = o[small].sum(), e[small].sum()
        while re_ < min_expected and ee:
            j = int(np.argmin(ee))
            ro, re_ = ro + oo.pop(j), re_ + ee.pop(j)
        oo.append(ro)
        ee.append(re_)
    oo, ee = np.array(oo), np.array(ee)
    keep = ee > 0
    assert np.all(oo[~keep] == 0), "a count where the law puts probability 0"
    x2 = float(((oo[keep] - ee[keep]) ** 2 / ee[keep]).sum())
    df = int(keep.sum()) - 1
    return GoF(x2, df, float(stats.chi2.sf(x2, df)), float(stats.chi2.isf(alpha, df)))


# --------------------------------------------------------------------------- two samples


@dataclass
class TwoSample:
    statistic: float  # Hotelling T^2
    dims: int  # rank used
    df2: int
    p_value: float
    columns: list  # indices of the columns tested
    mean_x: np.ndarray
    mean_y: np.ndarray


def hotelling_two_sample(x, y, *, min_mean: float = 5.0, names=None) -> TwoSample:
    """Two-sample Hotelling T^2 test of equal mean vectors (replicates in rows).

    Used for "R replications of the kernel vs R' of the reference": each row is one
    replication's vector (stage counts on a day, or KPIs). Under H0 both programs
    simulate the same law, so both samples share one covariance and the pooled
    estimate applies. With ``p`` the rank of the pooled covariance,

        F = (n1 + n2 - p - 1) / (p (n1 + n2 - 2)) * T^2  ~  F(p, n1 + n2 - p - 1).

    Replicate means of counts of thousands of customers are close to normal. Counts
    whose pooled mean is below ``min_mean`` (rare stages, e.g. 0-3 promoters) are left
    out, as in the chi-square rule, because their means are far from normal at these
    replication counts. Counts always add up to the population, so the covariance is
    singular: the test works in the span of the pooled correlation matrix's
    eigenvectors with eigenvalue above 1e-9 of the largest (rank-revealing).

    Columns constant in both samples carry no noise; they must be equal (1e-9
    relative), else the p-value is 0.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n1, n2 = x.shape[0], y.shape[0]
    assert x.shape[1] == y.shape[1] and n1 >= 2 and n2 >= 2
    mx, my = x.mean(axis=0), y.mean(axis=0)
    # exactly constant (np.var of equal floats can be a few ulps above 0)
    both_constant = (np.ptp(x, axis=0) == 0) & (np.ptp(y, axis=0) == 0)
    if both_constant.any():
        a, b = mx[both_constant], my[both_constant]
        if not np.allclose(a, b, rtol=1e-9, atol=1e-9):
            bad = np.flatnonzero(both_constant)[~np.isclose(a, b, rtol=1e-9, atol=1e-9)]
            label = [names[i] for i in bad] if names is not None else list(bad)
            return TwoSample(math.inf, 0, 0, 0.0, label, mx, my)
    pooled_mean = (n1 * mx + n2 * my) / (n1 + n2)
    cols = np.flatnonzero(~both_constant & (np.abs(pooled_mean) >= min_mean))
    if cols.size == 0:
        return TwoSample(0.0, 0, 0, 1.0, [], mx, my)
    xs, ys = x[:, cols], y[:, cols]
    S = ((n1 - 1) * np.cov(xs, rowvar=False, ddof=1).reshape(cols.size, cols.size)
         + (n2 - 1) * np.cov(ys, rowvar=False, ddof=1).reshape(cols.size, cols.size)) / (n1 + n2 - 2)
    sd = np.sqrt(np.diag(S))
    R = S / np.outer(sd, sd)
    diff = (mx[cols] - my[cols]) / sd
    w, v = np.linalg.eigh(R)
    keep = w > 1e-9 * w.max()
    p = int(keep.sum())
    proj = v[:, keep].T @ diff
    t2 = float(n1 * n2 / (n1 + n2) * np.sum(proj**2 / w[keep]))
    df2 = n1 + n2 - p - 1
    assert df2 > 0, "too few replications for this many dimensions"
    f = df2 / (p * (n1 + n2 - 2)) * t2
    return TwoSample(t2, p, df2, float(stats.f.sf(f, p, df2)), list(cols), mx, my)


# --------------------------------------------------------------------------- scenarios


def default_raw() -> dict:
    return read_toml(CLASSIC)


def shrunk_default(customers: int, days: int, seed: int = 2026) -> dict:
    """The bundled default scenario at ``customers`` people, every channel scaled with it.

    Budgets, contacts and audiences shrink by customers / 1e6 so every channel buys the
    same contacts per person as at full size (an audience larger than the market would
    not mean anything; see the report on audiences above N).
    """
    raw = default_raw()
    f = customers / raw["market"]["customers"]
    raw["market"].update(customers=customers, days=days, seed=seed)
    for ch in raw["channels"].values():
        for key in ("daily_budget", "monthly_cost", "contacts_per_day"):
            if key in ch:
                ch[key] = ch[key] * f
        if "audience" in ch:
            ch["audience"] = max(1, round(ch["audience"] * f))
    return raw


def scenario(raw: dict):
    return validate_scenario(copy.deepcopy(raw), source="<test>")


# --------------------------------------------------------------------------- money


def recompute_kpis(sc, tables) -> dict:
    """The KPIs of docs/model.md from finance, transitions, daily_stages and customers."""
    fin = tables["finance"].to_pandas()
    fin["item"] = fin["item"].astype(str)
    fin["kind"] = fin["kind"].astype(str)
    tr = tables["transitions"].to_pandas()
    for c in ("segment", "from_stage", "to_stage", "cause"):
        tr[c] = tr[c].astype(str)
    spend = float(fin.loc[fin.kind == "channel", "spend"].sum())
    revenue = float(fin.loc[fin.kind == "offer", "revenue"].sum())
    cost = float(fin.loc[fin.kind == "offer", "cost"].sum())
    conv = tr[(tr.from_stage == "subscribed") & (tr.to_stage == "converted")]
    conversions = int(conv.customers.sum())
    daily = fin.groupby("day")[["revenue", "cost", "spend"]].sum()
    cum = (daily.revenue - daily.cost - daily.spend).cumsum()
    hit = cum.index[cum.values >= 0]
    front = fin[fin.item.isin(["lead_magnet", "entry"])]
    back = fin[(fin.kind == "offer") & ~fin.item.isin(["lead_magnet", "entry"])]
    out = {
        "spend": spend,
        "revenue": revenue,
        "cost": cost,
        "profit": revenue - cost - spend,
        "conversions": conversions,
        "cac": spend / conversions if conversions else None,
        "roas": revenue / spend if spend > 0 else None,
        "payback_day": int(hit[0]) if len(hit) else None,
        "front_end_profit": float(front.revenue.sum() - front.cost.sum()) - spend,
        "back_end_profit": float(back.revenue.sum() - back.cost.sum()),
    }
    if "customers" in tables:
        cu = tables["customers"].to_pandas()
        cu["segment"] = cu["segment"].astype(str)
        for seg in sc.segments:
            n = int(conv.loc[conv.segment == seg, "customers"].sum())
            rev = float(cu.loc[cu.segment == seg, "revenue"].sum())
            out[f"ltv_{seg}"] = rev / n if n else None
    ds = tables["daily_stages"].to_pandas()
    last = ds[ds.day == ds.day.max()]
    for s in STAGES:
        out[f"end_{s}"] = int(last.loc[last.stage.astype(str) == s, "customers"].sum())
    return out


#: a few ulps: the relative error of one float64 sum or product, written out
FLOAT_REL = 4 * np.finfo(float).eps


def assert_money_adds_up(sc, tables, rel=FLOAT_REL):
    """Every money identity of docs/model.md on one run's tables.

    Amounts are sums of products of float64s; two ways of adding the same numbers
    differ by a few ulps per term, so the relative tolerance is ``4 eps`` per value
    and ``4 eps * (number of terms)`` on sums (``rel`` is that per-term bound)."""
    fin = tables["finance"].to_pandas()
    fin["item"] = fin["item"].astype(str)
    ch = fin[fin.kind.astype(str) == "channel"]
    # spend never exceeds the budget in force (budget / price * price may round up by an
    # ulp); a commission channel has no budget, it pays per referred sale
    bought = ch[~ch.item.isin([n for n, c in sc.channels.items() if c.pricing == "commission"])]
    assert np.all(bought.spend <= bought.budget * (1 + rel))
    for name, c in sc.channels.items():
        rows = ch[ch.item == name]
        if c.pricing == "cpm":
            np.testing.assert_allclose(rows.spend, rows.units / 1000 * c.unit_cost, rtol=rel)
        elif c.pricing in ("cpc", "per_send"):
            np.testing.assert_allclose(rows.spend, rows.units * c.unit_cost, rtol=rel)
        elif c.pricing == "fixed":
            np.testing.assert_array_equal(rows.spend, rows.budget)
        else:
            np.testing.assert_allclose(rows.spend, rows.units * c.commission, rtol=rel)
            assert np.all(rows.units == np.round(rows.units))  # whole referred sales
    off = sc.offers
    prices = {"lead_magnet": 0.0, "entry": off.entry.price, "core": off.core.price}
    costs = {"lead_magnet": off.lead_magnet.unit_cost, "entry": off.entry.unit_cost, "core": off.core.unit_cost}
    for name, u in off.upsells.items():
        prices[name], costs[name] = u.price, u.unit_cost
    of = fin[fin.kind.astype(str) == "offer"]
    for name in sc.offer_names:
        rows = of[of.item == name]
        assert np.all(rows.units == np.round(rows.units)) and np.all(rows.units >= 0)
        np.testing.assert_array_equal(rows.revenue, rows.units * prices[name])
        np.testing.assert_array_equal(rows.cost, rows.units * costs[name])
    got = tables["summary"].to_pylist()
    assert len(got) == 1
    got = got[0]
    want = recompute_kpis(sc, tables)
    n_terms = max(1, len(fin))
    for key, value in want.items():
        if value is None or got[key] is None:
            assert value is None and got[key] is None, (key, value, got[key])
        elif isinstance(value, int):
            assert got[key] == value, (key, value, got[key])
        else:
            assert got[key] == pytest.approx(value, rel=rel * n_terms, abs=1e-9), key
    assert got["profit"] == pytest.approx(got["revenue"] - got["cost"] - got["spend"], rel=rel, abs=1e-9)
    assert got["front_end_profit"] + got["back_end_profit"] == pytest.approx(got["profit"], rel=rel * n_terms, abs=1e-6)

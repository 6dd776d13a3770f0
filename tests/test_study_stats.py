"""The statistics of a study: paired t intervals, their coverage, replications needed.

Coverage: two identical variants run WITHOUT common random numbers (each variant has
its own random streams) have a true difference of exactly 0 in every KPI. Over ``M``
independent studies (different seeds) the 95 % confidence intervals must cover 0 in
about 95 % of them. The number of covering studies is Binomial(M, 0.95) when the
intervals are right; the test accepts it within a two-sided binomial band of level
FAMILY_ALPHA / (number of KPIs checked) (Bonferroni), i.e. a correct implementation
fails with probability below 0.001 (and the studies are seeded, so a run is
reproducible). With identical variants AND common random numbers the difference is
0 in every replication, which is checked separately.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cvj.study import compare, load_study, paired_contrast, replications_needed
from tests.conftest import DEFAULT_SCENARIO as DEFAULT
from tests.stat_checks import FAMILY_ALPHA, per_test_alpha

STUDIES = 300  # M
REPLICATIONS = 3  # pairs per study
COVERAGE_KPIS = ("conversions", "profit")


def identical_study(tmp_path: Path, seed: int, crn: bool) -> Path:
    p = tmp_path / f"identical-{seed}-{crn}.toml"
    p.write_text(
        f"""
format = 1
scenario = "{DEFAULT}"
replications = {REPLICATIONS}
days = 20
customers = 20000
seed = {seed}
common_random_numbers = {"true" if crn else "false"}
baseline = "a"
kpis = {list(COVERAGE_KPIS)!r}
[variants.a]
[variants.b]
""".replace("'", '"')
    )
    return p


def binomial_band(m: int, p: float, alpha: float) -> tuple[int, int]:
    """Smallest and largest count k with P(K < lo) <= alpha/2 and P(K > hi) <= alpha/2."""
    lo = int(stats.binom.ppf(alpha / 2, m, p))
    hi = int(stats.binom.isf(alpha / 2, m, p))
    return lo, hi


@pytest.mark.slow
def test_paired_ci_covers_a_known_zero_difference_at_the_nominal_rate(tmp_path):
    covered = {k: 0 for k in COVERAGE_KPIS}
    for seed in range(STUDIES):
        st = load_study(identical_study(tmp_path, seed, crn=False))
        rows = {r["kpi"]: r for r in compare(st, workers=1, threads=1).contrasts.to_pylist()}
        for k in COVERAGE_KPIS:
            covered[k] += rows[k]["ci_low"] <= 0.0 <= rows[k]["ci_high"]
    alpha = per_test_alpha(len(COVERAGE_KPIS), FAMILY_ALPHA)
    lo, hi = binomial_band(STUDIES, 0.95, alpha)
    # M = 300, p = 0.95, alpha = 0.0005 each: the band is about 0.95 +- 3.5 sd, sd = sqrt(p(1-p)/M) = 0.0126
    for k in COVERAGE_KPIS:
        assert lo <= covered[k] <= hi, f"{k}: {covered[k]}/{STUDIES} intervals cover 0, expected {lo}..{hi}"


def test_identical_variants_with_crn_differ_by_exactly_zero(tmp_path):
    st = load_study(identical_study(tmp_path, 3, crn=True))
    res = compare(st, workers=1)
    for r in res.contrasts.to_pylist():
        assert r["mean_difference"] == 0.0 and r["var_paired"] == 0.0 and r["p_value"] == 1.0
        assert r["var_independent"] > 0 and r["crn_variance_factor"] == math.inf


def test_paired_contrast_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, 12)
    y = x - 0.7 + rng.normal(0, 0.5, 12)
    c = paired_contrast(x, y, 0.95)
    t = stats.ttest_rel(x, y)
    assert c["p_value"] == pytest.approx(t.pvalue, rel=1e-10)
    ci = t.confidence_interval(0.95)
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(ci.low, rel=1e-10), pytest.approx(ci.high, rel=1e-10))
    # unknown values (a CAC with no conversions) drop the pair
    c2 = paired_contrast([1.0, None, 3.0, 4.0], [0.0, 5.0, 2.5, 3.0], 0.95)
    assert c2["n"] == 3 and c2["mean_difference"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert paired_contrast([1.0], [2.0])["ci_low"] is None


def test_replications_needed_reaches_the_target_and_no_fewer_do():
    sd, h = 3.0, 0.5
    n = replications_needed(sd, h, 0.95)
    half = lambda m: stats.t.ppf(0.975, m - 1) * sd / math.sqrt(m)
    assert half(n) <= h < half(n - 1)
    assert replications_needed(0.0, 1.0) == 2 and replications_needed(None, 1.0) is None

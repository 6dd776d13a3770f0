"""cvj calibrate: the loss in closed form, the fitted file, bad input, and scaled-down
versions of the proofs in benchmarks/calibration.py (recovery, parameters the data
cannot pin down apart).

The small fits run on the default shop scaled to a market of 20,000 people for 9 or
13 weeks (benchmarks.calibration.small_shop), in this process, so together they take
a few tens of seconds.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from benchmarks.calibration import make_case, small_shop
from cvj.calibrate import calibrate, load_calibration
from cvj.calibrate.fit import deviance_terms, residuals
from cvj.calibrate.output import scenario_toml, write_result
from cvj.output import AtomicDir
from cvj.scenario import load_scenario, validate_scenario


def cvj(*args, **kw):
    return subprocess.run([sys.executable, "-m", "cvj", *map(str, args)], capture_output=True, text=True, **kw)


# --------------------------------------------------------------------------- closed forms


def test_poisson_deviance_is_twice_the_log_likelihood_ratio():
    rng = np.random.default_rng(1)
    mu = rng.uniform(0.5, 50, 200)
    y = rng.poisson(mu).astype(float)
    d = deviance_terms(y, mu, "poisson", 0.0)
    want = 2 * (stats.poisson.logpmf(y, y) - stats.poisson.logpmf(y, mu))  # saturated minus fitted
    np.testing.assert_allclose(d, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose((residuals(y, mu, "poisson", 0.0) ** 2).sum(), d.sum(), rtol=1e-12)
    assert np.all(np.sign(residuals(y, mu, "poisson", 0.0)) == np.sign(y - mu))


def test_negative_binomial_deviance_is_twice_the_log_likelihood_ratio():
    rng = np.random.default_rng(2)
    a = 0.3  # variance = mu + a mu^2: scipy's nbinom with n = 1/a, p = n / (n + mu)
    mu = rng.uniform(0.5, 50, 200)
    n = 1 / a
    y = rng.negative_binomial(n, n / (n + mu)).astype(float)
    d = deviance_terms(y, mu, "negative_binomial", a)
    ll = lambda m: stats.nbinom.logpmf(y, n, n / (n + m))
    np.testing.assert_allclose(d, 2 * (ll(np.maximum(y, 1e-300)) - ll(mu)), rtol=1e-7, atol=1e-7)


# --------------------------------------------------------------------------- the fitted file


@pytest.mark.parametrize("name", ["default.toml", "starter.toml", "handbag_shop_format1.toml"])
def test_scenario_toml_gives_back_the_same_scenario(name):
    sc = load_scenario(Path(__file__).parent.parent / "scenarios" / name)
    text = scenario_toml(sc, "a header\nof two lines")
    assert validate_scenario(tomllib.loads(text)).sha256() == sc.sha256()


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "base.toml").write_text(scenario_toml(load_scenario(None, {"market.days": 28})), encoding="utf-8")
    return d


GOOD_ROWS = "period_start,metric,value\n2026-01-05,sessions,100\n2026-01-12,entry_sales,3\n"
GOOD_PARAM = '[parameters."shop.conversion.subscribed"]\nbounds = [0.02, 0.15]\n'


@pytest.mark.parametrize(
    ("case", "rows", "params", "fragment"),
    [
        ("unknown metric", GOOD_ROWS + "2026-01-05,cliks,4\n", GOOD_PARAM, 'row 3 metric = "cliks": unknown metric'),
        ("period outside the horizon", GOOD_ROWS + "2026-02-02,sessions,4\n", GOOD_PARAM,
         'row 3 period_start = "2026-02-02": outside the horizon'),
        ("period before day 1", GOOD_ROWS + "2025-12-29,sessions,4\n", GOOD_PARAM, "outside the horizon"),
        ("not a period start", GOOD_ROWS + "2026-01-06,sessions,4\n", GOOD_PARAM, "not the start of a week"),
        ("negative count", GOOD_ROWS + "2026-01-19,sessions,-4\n", GOOD_PARAM, "row 3 value = -4.0: value must not be negative"),
        ("no such parameter", GOOD_ROWS, '[parameters."shop.conversion.subscibed"]\nbounds = [0.02, 0.15]\n',
         'parameters.shop.conversion.subscibed: no such field in the scenario'),
        ("bounds reversed", GOOD_ROWS, '[parameters."shop.conversion.subscribed"]\nbounds = [0.15, 0.02]\n',
         "bounds = [0.15, 0.02]: bounds must be [lower, upper] with lower < upper"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(bad_dir, case, rows, params, fragment):
    d = bad_dir / case.replace(" ", "_")
    d.mkdir()
    (d / "observed.csv").write_text(rows, encoding="utf-8")
    (d / "cal.toml").write_text(
        f'format = 1\nscenario = "../base.toml"\nobserved = "observed.csv"\n\n{params}', encoding="utf-8"
    )
    before = sorted(p.name for p in d.iterdir())
    p = cvj("calibrate", d / "cal.toml", "--out", d / "fit", "-q")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert sorted(p.name for p in d.iterdir()) == before  # nothing written: no DIR, no journal


@pytest.mark.parametrize("planted", ["file", "symlink"])
def test_a_file_at_the_journals_name_that_cvj_did_not_write_is_left_alone(bad_dir, planted):
    """The journal lives beside DIR (``.DIR.cvj-calibrate.jsonl``): a file of the user's
    at that name is neither truncated nor removed, nor a symbolic link followed; the
    command stops with one line, exit 2, and writes nothing."""
    d = bad_dir / f"planted_{planted}"
    d.mkdir()
    (d / "observed.csv").write_text(GOOD_ROWS, encoding="utf-8")
    (d / "cal.toml").write_text(
        f'format = 1\nscenario = "../base.toml"\nobserved = "observed.csv"\n\n{GOOD_PARAM}', encoding="utf-8"
    )
    precious = d / "notes.txt"
    precious.write_text("mine\n", encoding="utf-8")
    journal = d / ".fit.cvj-calibrate.jsonl"
    if planted == "file":
        journal.write_text("mine too\n", encoding="utf-8")
    else:
        journal.symlink_to(precious)
    before = sorted(p.name for p in d.iterdir())
    p = cvj("calibrate", d / "cal.toml", "--out", d / "fit", "-q")
    assert p.returncode == 2 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "journal" in lines[0], lines
    assert sorted(p.name for p in d.iterdir()) == before
    assert precious.read_text(encoding="utf-8") == "mine\n"
    if planted == "file":
        assert journal.read_text(encoding="utf-8") == "mine too\n"
    else:
        assert journal.is_symlink()


def test_simulate_observed_refuses_an_unknown_metric(tmp_path):
    p = cvj("simulate-observed", Path(__file__).parent.parent / "scenarios" / "default.toml", "--metrics", "cliks",
            "--out", tmp_path / "o.csv")
    assert p.returncode == 2 and "'cliks' is not a metric" in p.stderr and not (tmp_path / "o.csv").exists()


# --------------------------------------------------------------------------- small fits


CTR = "channels.paid_social.ctr"


def test_recovers_a_click_through_rate_resumes_and_writes_a_runnable_scenario(tmp_path):
    """Data made at ctr = 0.02 (stream 10,000): the estimate is within 4 bootstrap
    standard deviations of the truth (a miss has probability < 1e-4 if the interval is
    right; the scaled-down form of the 30-data-set proof), the 90% interval holds it at
    that scale, the fit is deterministic (a second call replays the journal and runs
    nothing), and fitted.toml loads with the estimate in it."""
    base = small_shop(20_000, 63)
    f = make_case(tmp_path / "c", base, {CTR: 0.02}, ["clicks.paid_social", "sessions"], {CTR: (0.005, 0.03)},
                  replication=10_000, bootstrap=20, max_simulations=60)
    cal = load_calibration(f)
    journal = tmp_path / "journal.jsonl"
    res = calibrate(cal, workers=1, journal=journal)
    sd = res.draws[:, 0].std(ddof=1)
    assert sd > 0
    assert abs(res.estimate[0] - 0.02) < 4 * sd, (res.estimate, sd)
    assert res.interval[0, 0] < res.estimate[0] < res.interval[0, 1]
    assert res.p_value > 0.001 and not [w for w in res.warnings if w.name == "bad-fit"]
    again = calibrate(cal, workers=1, journal=journal)
    assert again.simulations == 0 and again.reused > 0
    np.testing.assert_array_equal(again.estimate, res.estimate)
    out = write_result(res, AtomicDir(tmp_path / "fit", kind="calibration"))
    fitted = load_scenario(out / "fitted.toml")
    assert math.isclose(fitted.channels["paid_social"].ctr, res.estimate[0], rel_tol=1e-12)
    params = pq.read_table(out / "parameters").to_pylist()
    assert params[0]["parameter"] == CTR and params[0]["interval_low"] < params[0]["estimate"] < params[0]["interval_high"]
    assert pq.read_table(out / "fit").num_rows == 2 * 9
    assert (out / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_rates_seen_only_through_their_sum_are_flagged(tmp_path):
    """Paid social's and retargeting's click-through rates when only the total clicks
    are observed: the refits move along the ridge (r near -1) and the warning says so."""
    base = small_shop(20_000, 63)
    params = {CTR: (0.005, 0.03), "channels.retargeting.ctr": (0.005, 0.03)}
    f = make_case(tmp_path / "u", base, {CTR: 0.012, "channels.retargeting.ctr": 0.015}, ["clicks"], params,
                  replication=30_000, bootstrap=20, max_simulations=60)
    res = calibrate(load_calibration(f), workers=1)
    kinds = {w.name for w in res.warnings}
    assert "strong-correlation" in kinds, res.warnings
    assert res.correlation[0, 1] < -0.9



def test_a_budget_burst_the_scenario_lacks_gives_a_bad_fit(tmp_path):
    """Data from a shop that tripled paid social's budget in weeks 3-5 (a budget
    schedule); the fitted scenario has a flat budget, so no click-through rate can
    match both the burst and the rest: the goodness of fit must say so (the recovery
    test above is the same fit on data without the burst, where it must not)."""
    base = small_shop(20_000, 63)
    budget = base.channels["paid_social"].daily_budget
    burst = {"channels.paid_social.schedule": [{"from_day": 15, "to_day": 35, "daily_budget": 3 * budget}]}
    f = make_case(tmp_path / "b", base, {CTR: 0.02}, ["clicks.paid_social", "sessions"], {CTR: (0.005, 0.03)},
                  replication=10_000, bootstrap=20, max_simulations=60, data_overrides=burst)
    res = calibrate(load_calibration(f), workers=1)
    assert res.p_value < 0.001
    assert [w for w in res.warnings if w.name == "bad-fit" and "clicks.paid_social" in w.message]


# --------------------------------------------------------------------------- the warnings


def _result(cal, estimate, interval, slices, corr, deviance=50.0):
    """A CalibrationResult with the figures the warnings read set by hand (the rest
    inert), so each rule is seen to fire, and not to fire, on its own threshold."""
    from cvj.calibrate.fit import CalibrationResult

    p = len(cal.parameters)
    B = 40
    boot = np.full(B, 48.0)  # a dispersion of 48 / (n - p) per degree of freedom
    metrics = cal.observed.metrics
    return CalibrationResult(
        calibration=cal, estimate=np.asarray(estimate, float), interval=np.asarray(interval, float),
        draws=np.zeros((B, p)), fitted=np.zeros(cal.observed.values.shape), band=np.zeros((2, *cal.observed.values.shape)),
        deviance=deviance, deviance_by_metric={m: deviance / len(metrics) for m in metrics}, boot_deviance=boot,
        boot_by_metric={m: boot / len(metrics) for m in metrics}, p_value=0.5,
        dispersion=float(boot.mean()) / max(1, int(cal.observed.mask.sum()) - p), slices=np.asarray(slices, float),
        correlation=np.asarray(corr, float), simulations=0, reused=0, seconds=0.0, seconds_per_simulation=0.0,
        iterations=0,
    )


def test_each_warning_fires_on_its_rule_and_only_there():
    from cvj.calibrate.fit import FLAT, diagnose

    cal = load_calibration(Path(__file__).resolve().parents[1] / "scenarios" / "calibrate_handbag.toml")
    pars = cal.parameters
    p = len(pars)
    lo = np.array([q.lower for q in pars])
    hi = np.array([q.upper for q in pars])
    mid = (lo + hi) / 2
    w = (hi - lo) / 10
    D = 50.0
    res = _result(cal, mid, np.column_stack([mid - w, mid + w]), np.full((p, 2), D + 1000.0), np.eye(p), D)
    phi = res.dispersion
    assert diagnose(res) == []  # well inside the bounds, steep profiles, no correlation

    # flat profile: a rise just below FLAT x dispersion fires, just above does not
    slices = np.full((p, 2), D + 1000.0)
    slices[1] = [D + 0.99 * FLAT * phi, D + 0.5]
    slices[2] = [D + 1.01 * FLAT * phi, D]
    res.slices = slices
    got = {(x.name, x.path) for x in diagnose(res)}
    assert got == {("flat-profile", pars[1].path)}

    # an interval over both bounds, one running into the upper bound, one clear of both
    res.slices = np.full((p, 2), D + 1000.0)
    iv = np.column_stack([mid - w, mid + w])
    iv[0] = [lo[0] + 0.01 * (hi[0] - lo[0]), hi[0]]
    iv[3] = [mid[3], hi[3] - 0.01 * (hi[3] - lo[3])]
    iv[4] = [lo[4] + 0.03 * (hi[4] - lo[4]), hi[4] - 0.03 * (hi[4] - lo[4])]
    res.interval = iv
    got = {(x.name, x.path) for x in diagnose(res)}
    assert got == {("interval-spans-bounds", pars[0].path), ("interval-at-bound", pars[3].path)}

    # correlation beyond 0.9 in either direction, and not at 0.89
    res.interval = np.column_stack([mid - w, mid + w])
    corr = np.eye(p)
    corr[0, 5] = corr[5, 0] = -0.95
    corr[1, 2] = corr[2, 1] = 0.91
    corr[3, 4] = corr[4, 3] = 0.89
    res.correlation = corr
    got = {(x.name, x.path) for x in diagnose(res)}
    assert got == {("strong-correlation", f"{pars[0].path} ~ {pars[5].path}"),
                   ("strong-correlation", f"{pars[1].path} ~ {pars[2].path}")}

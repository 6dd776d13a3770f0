"""The heavy proofs of ``cvj calibrate`` (docs/model.md quotes what this prints).

    python -m benchmarks.calibration recovery [--datasets 30]   # coverage and bias over synthetic data sets
    python -m benchmarks.calibration misspecified               # a budget burst the fitted scenario lacks
    python -m benchmarks.calibration unidentifiable             # two rates seen only through their sum

Every data set is made with ``cvj simulate-observed``'s function at known parameters
and a replication no fit uses (1,000,000 + k; the fit of data set k uses stream 1000 k
and its bootstrap the next ones; the other proofs use 20,000 and 30,000), on a small
shop: the default shop scaled down to ``--customers`` (budgets, audiences and the
SEO's contacts scaled as ``market.sample`` scales them), so the observed data have the
noise of that whole market, as a real shop's would.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from cvj.calibrate import calibrate, load_calibration
from cvj.calibrate.output import observed_table, scenario_toml, write_observed
from cvj.scenario import Scenario, load_scenario, override

#: identifiable: paid social's click-through rate is seen in its clicks, the organic
#: opt-in of engaged people in new subscribers, email's open rate in opens
RECOVERY = {
    "channels.paid_social.ctr": (0.005, 0.03),
    "organic.advance.engaged": (0.0004, 0.004),
    "channels.email.open_rate": (0.05, 0.4),
}
RECOVERY_METRICS = ["clicks.paid_social", "sessions", "new_subscribers", "opens"]


def small_shop(customers: int = 50_000, days: int = 182) -> Scenario:
    """The bundled default shop as a market of ``customers`` people: every budget,
    monthly cost, audience size and retainer's contacts scaled by customers / market,
    as ``market.sample`` does (docs/model.md), so each person meets the same channels."""
    sc = load_scenario()
    f = customers / sc.market.customers
    o: dict = {"market.customers": customers, "market.days": days}
    for name, ch in sc.channels.items():
        for key in ("daily_budget", "monthly_cost", "contacts_per_day"):
            v = getattr(ch, key, None)
            if v is not None:
                o[f"channels.{name}.{key}"] = float(v) * f
        aud = getattr(ch, "audience", None)
        if aud is not None and aud.size is not None:
            o[f"channels.{name}.audience.size"] = max(1, round(aud.size * f))
    return override(sc, o)


def make_case(root: Path, base: Scenario, truth: dict, metrics: list[str], params: dict, *, replication: int,
              bootstrap: int = 40, max_simulations: int = 120, data_overrides: dict | None = None, seed: int = 0) -> Path:
    """Write base.toml, observed.parquet (made at ``truth``, plus ``data_overrides``) and
    calibration.toml in ``root``; return the calibration file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "base.toml").write_text(scenario_toml(base), encoding="utf-8")
    made = override(base, {**truth, **(data_overrides or {})})
    write_observed(observed_table(made, metrics, "week", replication=replication), root / "observed.parquet")
    lines = [
        "format = 1", 'name = "proof"', 'scenario = "base.toml"', 'observed = "observed.parquet"',
        f"bootstrap = {bootstrap}", f"max_simulations = {max_simulations}", f"seed = {seed}", "",
    ]
    for path, (lo, hi) in params.items():
        lines += [f'[parameters."{path}"]', f"bounds = [{lo}, {hi}]", ""]
    (root / "calibration.toml").write_text("\n".join(lines), encoding="utf-8")
    return root / "calibration.toml"


def recovery(datasets: int, customers: int, days: int, workers: int) -> None:
    from scipy.stats import binom

    base = small_shop(customers, days)
    rng = np.random.default_rng(13)
    names = list(RECOVERY)
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(datasets):
            truth = {p: float(lo + (hi - lo) * rng.uniform(0.2, 0.8)) for p, (lo, hi) in RECOVERY.items()}
            # each data set has its own fit stream (seed 1000 k; the bootstrap's are the next
            # 40): with one stream for all, every fit would share that stream's noise, and
            # the 30 errors would not be independent
            f = make_case(Path(tmp) / f"d{k}", base, truth, RECOVERY_METRICS, RECOVERY, replication=1_000_000 + k,
                          seed=1000 * k)
            res = calibrate(load_calibration(f), workers=workers)
            rows.append((truth, res))
            cov = " ".join(
                f"{p.split('.')[-1]} {truth[p]:.4f} -> {v:.4f} [{a:.4f}, {b:.4f}]{'' if a <= truth[p] <= b else ' MISS'}"
                for p, v, (a, b) in zip(names, res.estimate, res.interval)
            )
            print(f"data set {k:2d}: {cov}; p = {res.p_value:.2f}; {res.simulations} simulations", flush=True)
    K = len(rows)
    lo_band, hi_band = binom.ppf(0.025, K, 0.9), binom.ppf(0.975, K, 0.9)
    print(f"\n{K} data sets, {customers:,} customers x {days} days, {time.perf_counter() - t0:.0f} s")
    print(f"binomial 95% band of covered counts for nominal 90% at K = {K}: {lo_band:.0f} .. {hi_band:.0f}")
    for j, p in enumerate(names):
        covered = sum(r.interval[j, 0] <= t[p] <= r.interval[j, 1] for t, r in rows)
        err = np.array([r.estimate[j] - t[p] for t, r in rows])
        rel = np.array([(r.estimate[j] - t[p]) / t[p] for t, r in rows])
        z = err.mean() / (err.std(ddof=1) / math.sqrt(K))
        verdict = "ok" if lo_band <= covered <= hi_band and abs(z) < 2.58 else "FAIL"
        print(f"{p}: covered {covered}/{K}; bias {err.mean():+.5f} (mean relative {rel.mean():+.2%}), "
              f"z = {z:+.2f} (|z| < 2.58 unbiased at 1%); {verdict}")
    # power: how often the band would catch intervals too narrow (true coverage c instead
    # of 90%), and, on these data sets, the same intervals narrowed to half their width
    # about the estimate (a nominal 59% when the full ones are right) must fall below it
    from scipy.stats import norm

    for c in (0.59, 0.68, 0.8):
        print(f"power: intervals that cover {c:.0%} fall below the band with probability {binom.cdf(lo_band - 1, K, c):.2f}")
    for j, p in enumerate(names):
        narrow = sum(abs(r.estimate[j] - t[p]) <= 0.5 * (r.interval[j, 1] - r.interval[j, 0]) / 2 for t, r in rows)
        print(f"power check, {p}: the intervals at half their width (nominal {2 * norm.cdf(0.5 * norm.ppf(0.95)) - 1:.0%}) "
              f"cover {narrow}/{K}: {'below the band, detected' if narrow < lo_band else 'inside the band, NOT detected'}")
    pvals = np.array([r.p_value for _, r in rows])
    print(f"goodness-of-fit p-values: {np.sum(pvals < 0.01)} of {K} below 0.01 (a correct model: about 1%)")


def misspecified(customers: int, days: int, workers: int) -> None:
    """Data from a shop that ran a four-week burst of paid social (three times the
    budget in weeks 5-8, a budget schedule); the fitted scenario has no such burst."""
    base = small_shop(customers, days)
    truth = {"channels.paid_social.ctr": 0.012, "organic.advance.engaged": 0.0012, "channels.email.open_rate": 0.18}
    budget = base.channels["paid_social"].daily_budget
    burst = {"channels.paid_social.schedule": [{"from_day": 29, "to_day": 56, "daily_budget": 3 * budget}]}
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("correct", None), ("misspecified", burst)):
            f = make_case(Path(tmp) / label, base, truth, RECOVERY_METRICS, RECOVERY, replication=20_000,
                          data_overrides=extra, seed=20_100)
            res = calibrate(load_calibration(f), workers=workers)
            q = np.quantile(res.boot_deviance, [0.05, 0.5, 0.95, 0.99])
            print(f"{label}: deviance {res.deviance:,.1f}; refits on the fitted scenario's data {q[0]:,.1f} / {q[1]:,.1f} / "
                  f"{q[2]:,.1f} / {q[3]:,.1f} (5/50/95/99%); p = {res.p_value:.3f}")
            for m, d in res.deviance_by_metric.items():
                print(f"  {m}: {d:,.1f} (expected about {np.mean(res.boot_by_metric[m]):,.1f})")
            for p_, v, (a, b) in zip(res.calibration.parameters, res.estimate, res.interval):
                print(f"  {p_.path}: {v:.5f} [{a:.5f}, {b:.5f}] truth {truth[p_.path]}")
            for w in res.warnings:
                print(f"  warning [{w.name}] {w.path}: {w.message}")


def unidentifiable(customers: int, days: int, workers: int) -> None:
    """Paid social's and retargeting's click-through rates when only the total clicks are
    observed: the data pin down a weighted sum of the two, not each. Then the same two
    with new subscribers observed too, where retargeting (whose audience is the engaged
    who did not subscribe) is seen a little apart."""
    base = small_shop(customers, days)
    params = {"channels.paid_social.ctr": (0.005, 0.03), "channels.retargeting.ctr": (0.005, 0.03)}
    truth = {"channels.paid_social.ctr": 0.012, "channels.retargeting.ctr": 0.015}
    with tempfile.TemporaryDirectory() as tmp:
        for label, metrics in (("total clicks only", ["clicks"]), ("total clicks and new subscribers",
                                                                   ["clicks", "new_subscribers"])):
            f = make_case(Path(tmp) / label.replace(" ", "_"), base, truth, metrics, params, replication=30_000,
                          seed=30_100)
            res = calibrate(load_calibration(f), workers=workers)
            print(f"{label}: correlation of the refits r = {res.correlation[0, 1]:+.2f}")
            for q, v, (a, b) in zip(res.calibration.parameters, res.estimate, res.interval):
                print(f"  {q.path}: {v:.4f} [{a:.4f}, {b:.4f}] truth {truth[q.path]}")
            for w in res.warnings:
                print(f"  warning [{w.name}] {w.path}: {w.message}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.calibration", description=__doc__.splitlines()[0])
    ap.add_argument("proof", choices=["recovery", "misspecified", "unidentifiable"])
    ap.add_argument("--datasets", type=int, default=30)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=182)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    if a.proof == "recovery":
        recovery(a.datasets, a.customers, a.days, a.workers)
    elif a.proof == "misspecified":
        misspecified(a.customers, a.days, a.workers)
    else:
        unidentifiable(a.customers, a.days, a.workers)


if __name__ == "__main__":
    main()

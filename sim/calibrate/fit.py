"""Fitting a scenario to observed funnel counts, with intervals and diagnostics.

The method (docs/model.md, "Calibrating a scenario"):

1. **Objective.** Every evaluation simulates the scenario with the free parameters set
   and the *same* random stream (common random numbers, replication ``seed``), so the
   deviance between observed and simulated counts is a deterministic function of the
   parameters. The deviance (Poisson, or negative binomial) is a sum of squared
   deviance residuals, plus ``((value - mean) / sd)^2`` for each parameter with a prior.
2. **Search.** ``scipy.optimize.least_squares`` (trust-region reflective, bounds) in
   coordinates scaled to the bounds, with the Jacobian by forward differences of 10% of
   each parameter's range: one simulation per parameter, run in parallel. A step of 10%
   changes many customers' outcomes, so the difference sees the slope and not the
   steps of the common-random-number objective.
3. **Intervals.** Parametric bootstrap: ``bootstrap`` data sets are simulated at the
   estimate with streams ``seed + 1 ..`` (never the fit's), each is refitted by one
   Fisher-scoring (IRLS) step from the estimate with the Jacobian there (central
   differences of 25% of each range, ``2p`` simulations), and the estimate +- 1.645
   standard deviations of the refits is the 90% interval. The fit's own stream is noise too (a
   sample of ``f`` of the market has ``1/f`` times its variance in market units), so the
   simulated deviations are scaled by ``sqrt(1 + f)``: the refits spread as the estimate
   would over new data *and* a new stream.
4. **Diagnostics.** Goodness of fit: the deviance against those of the bootstrap refits
   (data from the fitted scenario itself), as the tail of a scaled chi-square matched to
   them; ``p < 0.001`` means the scenario cannot reproduce the data. Per parameter: a flat profile (moving it to
   either bound changes the deviance by less than ``2.71`` x the dispersion), an
   interval spanning the bounds or running into one, a strong correlation (``|r| > 0.9``)
   with another.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import hashlib
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checks import ScenarioWarning
from ..errors import ArgumentError, ClusterError, OutputError
from .metrics import by_period, daily_metrics
from .spec import Calibration

#: finite-difference step, as a share of each parameter's range: large enough that the
#: difference of two common-random-number runs is the slope, not a few customers' flips
STEP = 0.1
#: the slope the intervals rest on: central differences of this share of each range on
#: either side. A difference of two common-random-number runs carries the noise of the
#: customers whose paths it changed, which stops growing once those paths part, while
#: the signal grows with the step; at 0.1 that noise made the interval of one data set
#: vary 2-fold with the fit's stream (benchmarks.calibration, docs/model.md)
INTERVAL_STEP = 0.25
#: the interval's level (two-sided, percentile bootstrap)
LEVEL = 0.90
#: |correlation| of two parameters' refits above which they are reported
STRONG_CORRELATION = 0.9
#: chi-square(1) 90% quantile: a change of the deviance smaller than this (x dispersion) is noise
FLAT = 2.706
#: a goodness-of-fit p-value below this is a bad fit
BAD_FIT_P = 0.001
#: least_squares' stopping tolerances (relative change of the deviance; step in scaled
#: coordinates, where 1 is the whole range)
FTOL, XTOL = 1e-4, 1e-3

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- one evaluation


@functools.lru_cache(maxsize=4)
def _scenario(scenario_json: str):
    from ..scenario import validate_scenario

    return validate_scenario(json.loads(scenario_json), source="<calibration>")


def simulate_metrics(scenario_json: str, overrides: dict, replication: int, metrics: tuple[str, ...],
                     period: str) -> np.ndarray:
    """float64[P, M]: the metrics by period of one run of the scenario with ``overrides``
    (dotted paths), replication ``replication``, for the whole market. Pure: the same
    arguments give the same values in any process and on any number of threads."""
    from ..engine import Engine
    from ..model import compile_scenario
    from ..scenario import override

    sc = override(_scenario(scenario_json), overrides)
    cm = compile_scenario(sc)
    e = Engine(cm, replication=replication)
    while not e.done:
        e.step()
    return by_period(daily_metrics(cm, e.history, list(metrics)), period)


# --------------------------------------------------------------------------- the journal


#: how every journal begins (then the calibration's SHA-256)
JOURNAL_HEADER = '{"calibration": '


class Journal:
    """Simulations already run, one JSON line each, appended and flushed as they come
    back, so an interrupted calibration starts again where it stopped (the objective is
    deterministic: the search replays the same steps from the journal). The first line
    names the calibration (its SHA-256); a journal of another calibration is started
    afresh; a torn last line (a kill while writing) is ignored."""

    def __init__(self, path: Path | None, sha256: str):
        self.path = path
        self.known: dict[str, np.ndarray] = {}
        if path is None:
            return
        header = json.dumps({"calibration": sha256})
        assert header.startswith(JOURNAL_HEADER)
        lines = []
        if path.is_symlink():
            raise OutputError("is a symbolic link; cvj calibrate keeps its journal only in a file of its own",
                              "journal", str(path))
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            pass
        except UnicodeDecodeError:
            lines = ["(not text)"]
        if lines and not lines[0].startswith(JOURNAL_HEADER):
            # not a journal cvj calibrate wrote: it is never truncated, nor later removed
            raise OutputError(
                "exists and is not a cvj calibrate journal; move it away or choose another --out", "journal", str(path)
            )
        if lines and lines[0] == header:
            for line in lines[1:]:
                try:
                    rec = json.loads(line)
                    self.known[rec["key"]] = np.asarray(rec["values"], dtype=np.float64)
                except (ValueError, KeyError, TypeError):
                    continue
        # O_NOFOLLOW: a symbolic link planted at the journal's name is refused, not followed
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        self._f = os.fdopen(fd, "w", encoding="utf-8")
        self._f.write(header + "\n")
        for k, v in self.known.items():
            self._f.write(json.dumps({"key": k, "values": v.tolist()}) + "\n")
        self._f.flush()

    def add(self, key: str, values: np.ndarray) -> None:
        self.known[key] = values
        if self.path is not None:
            self._f.write(json.dumps({"key": key, "values": values.tolist()}) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if self.path is not None and not self._f.closed:
            self._f.close()


# --------------------------------------------------------------------------- evaluations


class Evaluator:
    """Runs simulations (in parallel local processes, on an executor such as a Dask
    cluster's, or here), remembers them in the journal, counts them."""

    def __init__(self, cal: Calibration, journal: Journal, workers: int | None, threads: int | None,
                 progress: Progress | None, budget: int, executor=None):
        self.cal = cal
        self.journal = journal
        self.payload = json.dumps(cal.scenario.model_dump(mode="json"), separators=(",", ":"))
        self.metrics = cal.observed.metrics
        self.progress = progress
        self.budget = budget
        self.run = 0  # simulations run now
        self.reused = 0  # simulations read from the journal
        self._earlier = set(journal.known)  # those of an interrupted run
        self.seconds = 0.0  # wall time spent in batches that ran something
        cores = os.cpu_count() or 1
        self.workers = workers or cores
        self.threads = threads or max(1, cores // self.workers)
        self.pool: cf.ProcessPoolExecutor | None = None
        #: ``submit(fn, *args)`` returning futures (cvj.study.dask.DaskExecutor), or None
        self.executor = executor

    def overrides(self, values: np.ndarray) -> dict:
        out = {}
        for p, v in zip(self.cal.parameters, values):
            out[p.path] = round(float(v)) if p.integer else float(v)
        return out

    def key(self, values: np.ndarray, replication: int) -> str:
        text = json.dumps([sorted(self.overrides(values).items()), int(replication)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def done(self) -> int:
        return self.run + self.reused

    def __call__(self, points: list[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        """The metrics [P, M] of every (parameter values, replication)."""
        keys = [self.key(v, r) for v, r in points]
        todo = {}
        for k, (v, r) in zip(keys, points):
            if k in self.journal.known:
                continue
            todo.setdefault(k, (v, r))
        if todo:
            t0 = time.perf_counter()
            if self.executor is None and (self.workers == 1 or (len(todo) == 1 and self.pool is None)):
                # one simulation (or one worker): here, on every core
                for k, (v, r) in todo.items():
                    self._done(k, simulate_metrics(self.payload, self.overrides(v), r, self.metrics, self.cal.period))
            else:
                from ..study.runner import _completed

                pool = self.executor if self.executor is not None else self._pool()
                futs = {
                    pool.submit(simulate_metrics, self.payload, self.overrides(v), r, self.metrics, self.cal.period): k
                    for k, (v, r) in todo.items()
                }
                for fut in _completed(futs):
                    self._done(futs[fut], fut.result())
            self.seconds += time.perf_counter() - t0
        found = self._earlier.intersection(keys)
        self.reused += len(found)
        self._earlier -= found
        return [self.journal.known[k] for k in keys]

    def _done(self, key: str, values: np.ndarray) -> None:
        self.journal.add(key, values)
        self.run += 1
        if self.progress is not None:
            self.progress(self.done, self.budget)

    def _pool(self) -> cf.ProcessPoolExecutor:
        if self.pool is None:
            from ..study.runner import _worker_init

            # spawn, not fork: this process may already run Numba's thread pool
            self.pool = cf.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                initargs=(self.threads,),
            )
        return self.pool

    def close(self, now: bool = False) -> None:
        if self.pool is not None:
            if now:
                from ..study.runner import _stop

                _stop(self.pool)
            else:
                self.pool.shutdown()
            self.pool = None


# --------------------------------------------------------------------------- the loss


def deviance_terms(y: np.ndarray, mu: np.ndarray, loss: str, dispersion: float, floor: float = 1e-9) -> np.ndarray:
    """The unit deviance of each observation (>= 0; 0 where ``y == mu``). ``mu`` is
    taken as at least ``floor``: a simulated count of 0 says the mean is below about one
    simulated event, not that it is 0 (whose deviance would be infinite for any y > 0)."""
    mu = np.maximum(mu, floor)
    ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    if loss == "negative_binomial" and dispersion > 0:
        a = dispersion
        d = 2 * (ylogy - (y + 1 / a) * np.log((1 + a * y) / (1 + a * mu)))
    else:
        d = 2 * (ylogy - (y - mu))
    return np.maximum(d, 0.0)


def residuals(y: np.ndarray, mu: np.ndarray, loss: str, dispersion: float, floor: float = 1e-9) -> np.ndarray:
    """Deviance residuals: their squares sum to the deviance."""
    return np.sign(y - np.maximum(mu, floor)) * np.sqrt(deviance_terms(y, mu, loss, dispersion, floor))


# --------------------------------------------------------------------------- the result


@dataclass
class CalibrationResult:
    """What :func:`calibrate` found."""

    calibration: Calibration
    estimate: np.ndarray  # parameter values
    interval: np.ndarray  # [p, 2] the 90% bootstrap interval
    draws: np.ndarray  # [B, p] bootstrap refits (values)
    fitted: np.ndarray  # [P, M] simulated at the estimate (fit's stream)
    band: np.ndarray  # [2, P, M] 5% and 95% of data simulated at the estimate
    deviance: float
    deviance_by_metric: dict[str, float]
    boot_deviance: np.ndarray  # [B] deviances of the bootstrap refits
    boot_by_metric: dict[str, np.ndarray]
    p_value: float
    dispersion: float  # the deviance per degree of freedom expected under the model
    slices: np.ndarray  # [p, 2] deviance with the parameter at its lower and upper bound
    correlation: np.ndarray  # [p, p] of the refits
    simulations: int
    reused: int
    seconds: float
    seconds_per_simulation: float
    iterations: int
    warnings: list[ScenarioWarning] = field(default_factory=list)

    @property
    def n_observations(self) -> int:
        return int(self.calibration.observed.mask.sum())

    def fitted_overrides(self) -> dict:
        out = {}
        for p, v in zip(self.calibration.parameters, self.estimate):
            out[p.path] = round(float(v)) if p.integer else float(v)
        return out


# --------------------------------------------------------------------------- calibrate


def calibrate(
    cal: Calibration,
    *,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    retries: int | None = None,
    journal: str | os.PathLike | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> CalibrationResult:
    """Fit the free parameters of ``cal`` to its observed data.

    Parameters
    ----------
    cal : Calibration
        From :func:`cvj.calibrate.load_calibration`.
    workers : int, optional
        Local worker processes (default: one per core); 1 runs here.
    threads : int, optional
        Kernel threads per worker (default: cores / workers).
    scheduler : str, optional
        Run the simulations on the Dask cluster of this scheduler (``tcp://HOST:PORT``),
        as :func:`cvj.study.compare` does; exclusive with ``workers`` and ``dask_workers``.
    dask_workers : int, optional
        Run them on a local Dask cluster of this many worker processes.
    retries : int, optional
        Dask: how many times a simulation that raised is run again.
    journal : path, optional
        A file that keeps every simulation as it comes back; calling again with the
        same journal and calibration reuses them (an interrupted run continues).
    progress : callable(done, budget), optional
        Called after every simulation.
    log : callable(str), optional
        Told each phase.

    Returns
    -------
    CalibrationResult

    The result does not depend on where the simulations ran: each is a pure function
    of the parameters and its replication.
    """
    where = {"workers": workers, "scheduler": scheduler, "dask_workers": dask_workers}
    given = [n for n, v in where.items() if v]
    if len(given) > 1:
        raise ArgumentError(f"{' and '.join(given)} exclude each other: local processes, a Dask cluster or a local "
                            "Dask cluster", given[1], where[given[1]])
    if retries is not None and scheduler is None and dask_workers is None:
        raise ArgumentError("applies to Dask runs (scheduler or dask_workers)", "retries", retries)
    if scheduler is None and dask_workers is None:
        return _calibrate(cal, workers, threads, None, journal, progress, log)
    from ..study.runner import _dask_cluster

    with _dask_cluster(scheduler, dask_workers, threads, retries, log) as ex:
        try:
            return _calibrate(cal, None, threads, ex, journal, progress, log)
        except cf.CancelledError:
            raise ClusterError("lost the Dask cluster (the scheduler cancelled the simulations or went away); the "
                               "simulations done are kept in the journal: run again to continue") from None


def _calibrate(cal, workers, threads, executor, journal, progress, log) -> CalibrationResult:
    from scipy.optimize import least_squares
    from scipy.special import ndtri

    t_start = time.perf_counter()
    pars = cal.parameters
    p = len(pars)
    lo = np.array([q.lower for q in pars])
    hi = np.array([q.upper for q in pars])
    span = hi - lo
    obs = cal.observed
    mask = obs.mask
    y = obs.values[mask]
    B = cal.bootstrap
    fit_budget = max(2 * (p + 1), cal.max_simulations - B - 4 * p)
    say = log or (lambda _s: None)
    # half a simulated event, in market units: the least mean a simulated 0 stands for
    floor = 0.5 / cal.fraction

    def dev(yy, mm):
        return deviance_terms(yy, mm, cal.loss, cal.dispersion, floor)

    jr = Journal(Path(journal) if journal is not None else None, cal.sha256)
    ev = Evaluator(cal, jr, workers, threads, progress, budget=cal.max_simulations, executor=executor)
    seed = cal.seed

    def values(x):
        return lo + np.clip(x, 0.0, 1.0) * span

    prior_idx = [i for i, q in enumerate(pars) if q.prior is not None]

    def prior_res(x):
        v = values(x)
        return np.array([(v[i] - pars[i].prior[0]) / pars[i].prior[1] for i in prior_idx])

    mu_cache: dict[bytes, np.ndarray] = {}
    jac_cache: dict[bytes, np.ndarray] = {}

    def mu_of(x) -> np.ndarray:
        k = np.asarray(x, np.float64).tobytes()
        if k not in mu_cache:
            mu_cache[k] = ev([(values(x), seed)])[0]
        return mu_cache[k]

    def steps(x):
        hs = np.where(x + STEP <= 1.0, STEP, -STEP)
        pts = []
        for j in range(p):
            xj = np.array(x, np.float64)
            xj[j] += hs[j]
            pts.append(xj)
        return hs, pts

    def jac_mu(x) -> np.ndarray:
        """d mu / d x, [n, p] over the observed cells (forward differences, in parallel)."""
        k = np.asarray(x, np.float64).tobytes()
        if k not in jac_cache:
            hs, pts = steps(x)
            out = ev([(values(pt), seed) for pt in pts] + [(values(x), seed)])
            base = out[-1][mask]
            mu_cache.setdefault(k, out[-1])
            for pt, m in zip(pts, out[:-1]):
                mu_cache.setdefault(np.asarray(pt).tobytes(), m)
            jac_cache[k] = np.column_stack([(m[mask] - base) / h for m, h in zip(out[:-1], hs)])
        return jac_cache[k]

    def fun(x):
        r = residuals(y, mu_of(x)[mask], cal.loss, cal.dispersion, floor)
        return np.concatenate([r, prior_res(x)]) if prior_idx else r

    def prior_jac():
        J = np.zeros((len(prior_idx), p))
        for row, i in enumerate(prior_idx):
            J[row, i] = span[i] / pars[i].prior[1]
        return J

    def jac_central(x) -> np.ndarray:
        """d mu / d x at the estimate by central differences (one-sided at a bound):
        the slope the intervals rest on, with half the error of a forward difference."""
        pts, den = [], []
        for j in range(p):
            a, b = np.array(x, np.float64), np.array(x, np.float64)
            a[j], b[j] = max(0.0, x[j] - INTERVAL_STEP), min(1.0, x[j] + INTERVAL_STEP)
            pts += [(values(a), seed), (values(b), seed)]
            den.append(b[j] - a[j])
        out = ev(pts)
        return np.column_stack([(out[2 * j + 1][mask] - out[2 * j][mask]) / den[j] for j in range(p)])

    def jac(x):
        """d residual / d x by the same forward differences (a secant of the residual, not
        the chain rule: the residual's slope is unbounded where y = 0 and mu -> 0)."""
        hs, pts = steps(x)
        jac_mu(x)  # runs the p simulations in parallel; their mu are cached
        base = fun(x)
        J = np.column_stack([(fun(pt) - base) / h for pt, h in zip(pts, hs)])
        if prior_idx:
            J[y.size:] = prior_jac()
        return J

    x0 = (np.array([q.start for q in pars]) - lo) / span
    try:
        say(f"fitting {p} parameters to {y.size:,} observed values (at most {fit_budget} simulations)")
        nfev = max(2, fit_budget // (p + 1))
        sol = least_squares(fun, x0, jac=jac, bounds=(0.0, 1.0), method="trf", x_scale=1.0, max_nfev=nfev,
                            ftol=FTOL, xtol=XTOL, gtol=1e-8)
        x_hat = np.clip(sol.x, 0.0, 1.0)
        iterations = int(sol.nfev)
        mu_hat = mu_of(x_hat)
        J = jac_central(x_hat)

        say(f"profiles: each parameter at its bounds ({2 * p} simulations)")
        pts = []
        for j in range(p):
            for end in (0.0, 1.0):
                xj = np.array(x_hat)
                xj[j] = end
                pts.append((values(xj), seed))
        ends = ev(pts)
        for j in range(p):
            if not np.any(J[:, j]):
                # not one outcome changed over the difference: the slope is below what a
                # step can see, so take the secant across the bounds (never a zero slope,
                # which would make the interval a point)
                J[:, j] = ends[2 * j + 1][mask] - ends[2 * j][mask]

        say(f"bootstrap: {B} data sets simulated at the estimate, each refitted")
        sims = ev([(values(x_hat), seed + 1 + b) for b in range(B)])
        sims_m = np.stack([s[mask] for s in sims])  # [B, n]
        f = cal.fraction
        c = math.sqrt((1.0 + f) * B / (B - 1))
        e = (sims_m - sims_m.mean(axis=0)) * c
        ystar = np.maximum(mu_hat[mask][None, :] + e, 0.0)
        draws_x = np.empty((B, p))
        boot_dev = np.empty(B)
        mu_fit = mu_hat[mask]
        metric_of = np.nonzero(mask)[1]
        M = len(obs.metrics)
        boot_by = np.zeros((B, M))
        pr0 = prior_res(x_hat) if prior_idx else np.zeros(0)
        PJ = prior_jac() if prior_idx else np.zeros((0, p))
        # Fisher scoring (one IRLS step): weights 1 / variance, the variance of a cell
        # taken as at least that of one simulated event, so an empty cell cannot dominate
        var = np.maximum(mu_hat[mask], 2 * floor)
        if cal.loss == "negative_binomial":
            var = var + cal.dispersion * var * var
        sw = 1.0 / np.sqrt(var)
        A = np.vstack([sw[:, None] * J, PJ])
        for b in range(B):
            rhs = np.concatenate([sw * (ystar[b] - mu_hat[mask]), -pr0])
            dx = np.linalg.lstsq(A, rhs, rcond=None)[0]
            draws_x[b] = x_hat + dx  # unclipped: the spread says how well the data pin it down
            xb = np.clip(draws_x[b], 0.0, 1.0)
            mu_b = np.maximum(mu_fit + J @ (xb - x_hat), 0.0)
            dterms = dev(ystar[b], mu_b)
            boot_dev[b] = dterms.sum()
            boot_by[b] = np.bincount(metric_of, weights=dterms, minlength=M)
        draws = lo + np.clip(draws_x, 0.0, 1.0) * span
        q = (1 - LEVEL) / 2
        # the refits are linear in the simulated deviations, so normal about the estimate:
        # estimate +- z sd uses all B of them (the 5% and 95% quantiles of 40 draws rest on
        # the 2nd and 39th alone), clipped to the bounds
        z = float(ndtri(1 - q))
        sd_x = draws_x.std(axis=0, ddof=1)
        interval = np.column_stack([lo + np.clip(x_hat - z * sd_x, 0.0, 1.0) * span,
                                    lo + np.clip(x_hat + z * sd_x, 0.0, 1.0) * span])
        band = np.zeros((2, *mu_hat.shape))
        band_m = np.quantile(ystar, [q, 1 - q], axis=0)
        band[:, mask] = band_m

        dterms_hat = dev(y, mu_fit)
        D = float(dterms_hat.sum())
        slices = np.array([dev(y, m[mask]).sum() for m in ends]).reshape(p, 2)
    except BaseException:
        ev.close(now=True)
        jr.close()
        raise
    ev.close()
    jr.close()

    dof = max(1, y.size - p)
    phi = float(np.mean(boot_dev)) / dof
    p_value = tail_probability(D, boot_dev)
    by_metric = np.bincount(metric_of, weights=dterms_hat, minlength=M)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(draws_x, rowvar=False) if p > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr))
    res = CalibrationResult(
        calibration=cal,
        estimate=np.array([float(round(v)) if q.integer else v for q, v in zip(pars, values(x_hat))], dtype=float),
        interval=interval,
        draws=draws,
        fitted=mu_hat,
        band=band,
        deviance=D,
        deviance_by_metric={m: float(by_metric[i]) for i, m in enumerate(obs.metrics)},
        boot_deviance=boot_dev,
        boot_by_metric={m: boot_by[:, i] for i, m in enumerate(obs.metrics)},
        p_value=p_value,
        dispersion=phi,
        slices=slices,
        correlation=corr,
        simulations=ev.run,
        reused=ev.reused,
        seconds=time.perf_counter() - t_start,
        seconds_per_simulation=ev.seconds / ev.run if ev.run else float("nan"),
        iterations=iterations,
    )
    res.warnings = diagnose(res)
    return res


def tail_probability(D: float, boot: np.ndarray) -> float:
    """P(deviance >= D) under the fitted scenario: a scaled chi-square ``phi chi2(nu)``
    matched to the refits' deviances by mean and variance (``phi = var / 2 mean``,
    ``nu = 2 mean^2 / var``), so a p-value below ``1 / bootstrap`` can still be told."""
    from scipy.stats import chi2

    m, v = float(np.mean(boot)), float(np.var(boot, ddof=1))
    if not (m > 0 and v > 0):
        return 1.0 if D <= m else 0.0
    phi, nu = v / (2 * m), 2 * m * m / v
    return float(chi2.sf(D / phi, nu))


def diagnose(res: CalibrationResult) -> list[ScenarioWarning]:
    """The warnings a fit gives: a bad fit, and parameters the data cannot pin down."""
    cal = res.calibration
    out = []
    if res.p_value < BAD_FIT_P:
        m, sd = float(np.mean(res.boot_deviance)), float(np.std(res.boot_deviance, ddof=1))
        worst = sorted(res.deviance_by_metric, key=lambda k: -res.deviance_by_metric[k] / max(
            float(np.mean(res.boot_by_metric[k])), 1e-9))
        ratio = ", ".join(
            f"{k} {res.deviance_by_metric[k]:,.0f} (expected about {float(np.mean(res.boot_by_metric[k])):,.0f})"
            for k in worst[:3]
        )
        out.append(ScenarioWarning(
            "bad-fit", "observed",
            f"the scenario cannot reproduce the data: deviance {res.deviance:,.0f} against {m:,.0f} +- {sd:,.0f} for "
            f"data simulated from the fitted scenario (p = {res.p_value:.2g}); worst metrics: {ratio}. Do not trust the "
            "estimates: the scenario lacks something the data have",
        ))
    names = [q.path for q in cal.parameters]
    for j, q in enumerate(cal.parameters):
        rise = float(np.max(res.slices[j]) - res.deviance)
        if rise < FLAT * res.dispersion:
            out.append(ScenarioWarning(
                "flat-profile", q.path,
                f"the data cannot pin it down: at either bound ({q.lower:g}, {q.upper:g}) the deviance rises by only "
                f"{rise:,.1f}, less than noise ({FLAT} x dispersion {res.dispersion:,.2f} = {FLAT * res.dispersion:,.1f})",
            ))
        a, b = res.interval[j]
        tol = 0.02 * (q.upper - q.lower)
        at_lo, at_hi = a <= q.lower + tol, b >= q.upper - tol
        if at_lo and at_hi:
            out.append(ScenarioWarning(
                "interval-spans-bounds", q.path,
                f"the 90% interval {a:g} .. {b:g} spans the bounds [{q.lower:g}, {q.upper:g}]: the data say nothing about it",
            ))
        elif at_lo or at_hi:
            end = q.lower if at_lo else q.upper
            out.append(ScenarioWarning(
                "interval-at-bound", q.path,
                f"the 90% interval {a:g} .. {b:g} runs into the bound {end:g}: the bound, not the data, ends it "
                f"(if values beyond {end:g} are possible, widen the bounds; else read the interval as cut there)",
            ))
    p = len(names)
    for i in range(p):
        for j in range(i + 1, p):
            r = float(res.correlation[i, j])
            if abs(r) > STRONG_CORRELATION:
                out.append(ScenarioWarning(
                    "strong-correlation", f"{names[i]} ~ {names[j]}",
                    f"their estimates move together (r = {r:+.2f} over the bootstrap refits): the data pin down a "
                    "combination of the two, not each",
                ))
    return out


__all__ = ["CalibrationResult", "Evaluator", "Journal", "calibrate", "deviance_terms", "diagnose", "residuals",
           "simulate_metrics"]

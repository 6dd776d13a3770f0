"""Studies on Dask distributed: the same tables as a local run on a LocalCluster and on
real ``dask scheduler`` / ``dask worker`` processes on 127.0.0.1, after a worker is
killed mid-study, and after a stopped study is resumed.

Every process a test starts is killed in a fixture's teardown; every wait is bounded
(process start-up, workers joining, the study itself: a watchdog kills the cluster,
which makes the client fail, and faulthandler ends a run that is stuck anyway).
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pyarrow.parquet as pq
import pytest

import cvj
from cvj.errors import ClusterError
from cvj.study import compare, load_study, tasks_of
from cvj.study.dask import DaskExecutor, _on_worker, dask_executor
from cvj.study.output import MANIFEST, PARTITION_TABLES, StudyDir, partition_path
from tests.conftest import ROOT, two_variant_study

STUDY = two_variant_study(
    "dist",
    replications=3,
    days=40,
    customers=10000,
    kpis=["profit", "conversions", "cac"],
    channels=["paid_social", "search_ads"],
)
RUNS = 6
STUDY_DEADLINE = 120  # s: a watchdog kills the cluster of a study that takes longer


@pytest.fixture(autouse=True)
def _never_hang():
    """Last resort: dump every thread's stack and end pytest if a test is stuck."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def local_out(study_file, tmp_path_factory) -> Path:
    """The reference: the study run in this process."""
    out = tmp_path_factory.mktemp("local") / "out"
    compare(load_study(study_file), out=out, workers=1)
    return out


def assert_same_output(a: Path, b: Path) -> None:
    """Every Parquet file of two study directories: the same files, equal tables and
    equal cvj metadata (scenario hash, seed, version, variant, replication, stream)."""
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.parquet"))
    assert len(files) == RUNS * len(PARTITION_TABLES) + 2  # + runs, contrasts
    for rel in files:
        ta, tb = pq.ParquetFile(a / rel).read(), pq.ParquetFile(b / rel).read()
        assert ta.equals(tb, check_metadata=True), rel
    ma, mb = (json.loads((d / MANIFEST).read_text()) for d in (a, b))
    assert ma == mb and ma["complete"] is True


# --------------------------------------------------------------------------- clusters


def _dask_exe() -> str:
    exe = Path(sys.executable).parent / "dask"
    return str(exe) if exe.exists() else shutil.which("dask")


class LocalhostCluster:
    """A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1: free ports
    chosen by the OS (port 0; the scheduler's address is read from its scheduler file),
    no nanny (a worker's pid is the process we started), one thread each."""

    def __init__(self, tmp: Path, workers: int = 2):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        scheduler_file = tmp / "scheduler.json"
        # --idle-timeout and --death-timeout: even a process this test could not kill ends
        self.scheduler = self._start(
            "scheduler",
            ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file), "--idle-timeout", "600"],
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.address = json.loads(scheduler_file.read_text())["address"]
                break
            except (OSError, ValueError, KeyError):
                pass
            assert self.scheduler.poll() is None, self.log("scheduler")
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        for i in range(workers):
            self.workers.append(
                self._start(
                    f"worker{i}",
                    ["worker", self.address, "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--no-dashboard",
                     "--host", "127.0.0.1", "--name", f"w{i}", "--death-timeout", "60"],
                )
            )

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen([_dask_exe(), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()[-3000:]

    def kill(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass


@pytest.fixture(scope="module")
def localhost_cluster(tmp_path_factory):
    cluster = LocalhostCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.kill()


@pytest.fixture
def watchdog():
    """``watchdog(kill)``: call ``kill`` if the test is still running after
    STUDY_DEADLINE seconds (so a stuck study fails instead of hanging)."""
    timers = []

    def arm(kill):
        t = threading.Timer(STUDY_DEADLINE, kill)
        t.daemon = True
        t.start()
        timers.append(t)

    yield arm
    for t in timers:
        t.cancel()


@pytest.fixture(scope="module")
def local_cluster():
    with dask_executor(workers=2, threads=1) as ex:
        yield ex


# --------------------------------------------------------------------------- same tables


def test_local_cluster_gives_the_local_tables(study_file, local_out, local_cluster, tmp_path, watchdog):
    watchdog(local_cluster.client.close)
    out = tmp_path / "out"
    res = compare(load_study(study_file), executor=local_cluster, out=out)
    assert res.computed == RUNS and res.reused == 0
    assert_same_output(local_out, out)
    link = local_cluster.dashboard_link
    assert link and link.startswith("http://127.0.0.1:")


def test_scheduler_and_workers_give_the_local_tables_through_the_cli(study_file, local_out, localhost_cluster, tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-m", "cvj", "compare", str(study_file), "--out", str(out),
         "--scheduler", localhost_cluster.address, "--threads", "1", "-q"],
        check=False, capture_output=True, text=True, timeout=STUDY_DEADLINE,
    )
    assert p.returncode == 0, p.stderr
    assert f"Dask cluster {localhost_cluster.address}:" in p.stderr
    assert "Dask dashboard" not in p.stderr  # the scheduler runs with --no-dashboard
    assert "Variants ranked by profit" in p.stdout
    assert_same_output(local_out, out)


def test_a_worker_killed_mid_study_changes_nothing(study_file, local_out, localhost_cluster, tmp_path, watchdog):
    watchdog(localhost_cluster.kill)
    out = tmp_path / "out"
    with dask_executor(localhost_cluster.address, threads=1, timeout=60) as ex:
        ex.client.wait_for_workers(2, timeout=60)
        pids = {pid: addr for addr, pid in ex.client.run(os.getpid).items()}
        victim = next(w for w in localhost_cluster.workers if w.poll() is None)
        assert victim.pid in pids
        killed = {}

        def kill_a_busy_worker(done, total):
            if done < 1 or killed:
                return
            # freeze it first, so that what the scheduler says it runs is still running when it dies
            victim.send_signal(signal.SIGSTOP)
            time.sleep(0.3)
            killed["running"] = ex.client.processing(workers=[pids[victim.pid]])[pids[victim.pid]]
            victim.kill()
            victim.wait(timeout=30)
            killed["at"] = done

        res = compare(load_study(study_file), executor=ex, out=out, progress=kill_a_busy_worker)
        lost = ex.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.task_prefixes["run_task"].suspicious)
        assert len(ex.workers()) == 1
    assert killed["running"], "the killed worker was running no task"
    assert killed["at"] < RUNS
    assert lost >= 1  # the scheduler ran again a task whose worker died
    assert res.computed == RUNS
    assert_same_output(local_out, out)


# --------------------------------------------------------------------------- resume


class _Counting:
    """Count the tasks an executor is given."""

    def __init__(self, inner):
        self.inner, self.tasks = inner, []

    def submit(self, fn, *args):
        self.tasks.append(args[1:])
        return self.inner.submit(fn, *args)


def test_resume_after_a_stop_runs_only_the_missing_partitions(study_file, local_out, local_cluster, tmp_path, watchdog):
    watchdog(local_cluster.client.close)
    st = load_study(study_file)
    out = tmp_path / "out"

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt  # Ctrl-C after the second run is written

    with pytest.raises(KeyboardInterrupt):
        compare(st, executor=local_cluster, out=out, progress=stop_after_two)
    assert json.loads((out / MANIFEST).read_text())["complete"] is False
    assert not (out / "runs").exists() and not (out / "contrasts").exists()
    with StudyDir(out, st, resume=True) as d:
        kept = sorted(d.done)
    assert len(kept) == 2
    before = {
        (k, t): (s.st_ino, s.st_mtime_ns)
        for k in kept
        for t in PARTITION_TABLES
        for s in [partition_path(out, t, *k).stat()]
    }

    counting = _Counting(local_cluster)
    res = compare(st, executor=counting, out=out, resume=True)
    assert sorted(counting.tasks) == sorted(set(tasks_of(st)) - set(kept))
    assert (res.reused, res.computed) == (2, RUNS - 2)
    after = {(k, t): (s.st_ino, s.st_mtime_ns) for (k, t) in before for s in [partition_path(out, t, *k).stat()]}
    assert after == before  # the partitions that were done were not rewritten
    assert_same_output(local_out, out)

    counting = _Counting(local_cluster)  # a finished study: nothing to run
    again = compare(st, executor=counting, out=out, resume=True)
    assert counting.tasks == [] and again.reused == RUNS
    assert_same_output(local_out, out)


# --------------------------------------------------------------------------- failures


def _flaky(marker: str) -> int:
    """Raise on the first call, succeed on the second (a transient failure)."""
    p = Path(marker)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n == 0:
        raise OSError("transient")
    return n


def test_retries_run_again_a_task_that_raised(local_cluster, tmp_path):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    try:
        fut = local_cluster.submit(_flaky, str(tmp_path / "calls"))
        assert fut.result(timeout=60) == 1
        assert (tmp_path / "calls").read_text() == "2"
        no_retries = DaskExecutor(local_cluster.client, threads=1, retries=0)
        with pytest.raises(OSError, match="transient"):
            no_retries.submit(_flaky, str(tmp_path / "again")).result(timeout=60)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_kernel_threads_default_to_a_fair_share_of_the_machine(local_cluster):
    from cvj import kernels
    from cvj.study.dask import _cores

    shared = DaskExecutor(local_cluster.client)  # threads=None
    assert shared.host_slots == {"127.0.0.1": 2}
    assert shared.submit(kernels.get_threads).result(timeout=60) == max(1, _cores() // 2)
    assert local_cluster.submit(kernels.get_threads).result(timeout=60) == 1


def test_a_worker_with_another_cvj_version_refuses_tasks():
    with pytest.raises(RuntimeError, match="install the same version everywhere"):
        _on_worker(len, None, "0.0.0-other", {}, "abc")
    assert _on_worker(len, 1, cvj.__version__, {}, "abc") == 3
    assert _on_worker(len, None, cvj.__version__, {}, "abc") == 3


def test_workers_without_this_cvj_or_no_workers_are_clear_errors():
    from cvj.study.dask import _check_workers

    class FakeClient:
        def __init__(self, versions, joined=True):
            self.versions, self.joined = versions, joined

        def wait_for_workers(self, n, timeout):
            if not self.joined:
                raise TimeoutError

        def run(self, fn):
            assert fn() == cvj.__version__  # the probe, run here
            return self.versions

    _check_workers(FakeClient({"tcp://a:1": cvj.__version__}), "tcp://s:1", 1)
    with pytest.raises(ClusterError, match=r"1 of 2 Dask workers do not run cvj .*tcp://b:1: cannot import cvj"):
        _check_workers(FakeClient({"tcp://a:1": cvj.__version__, "tcp://b:1": "cannot import cvj (x)"}), "tcp://s:1", 1)
    with pytest.raises(ClusterError, match="no worker joined the Dask scheduler at tcp://s:1 within 1 s"):
        _check_workers(FakeClient({}, joined=False), "tcp://s:1", 1)


def test_an_unreachable_scheduler_is_a_clear_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = f"tcp://127.0.0.1:{port}"
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"), dask_executor(unreachable, timeout=2):
        pass


def test_cvj_without_dask_options_does_not_import_dask(tmp_path):
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(STUDY.replace("replications = 3", "replications = 2").replace("customers = 10000", "customers = 500"))
    code = (
        "import sys\n"
        "from cvj.cli import main\n"
        f"try:\n    main(['compare', {str(tiny)!r}, '--workers', '1', '--out', {str(tmp_path / 'o')!r}, '-q'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed') or m == 'cvj.study.dask'))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_dask_options_on_the_command_line(study_file, tmp_path):
    from click.testing import CliRunner

    from cvj.cli import main

    for args, message in (
        (["--workers", "2", "--dask-workers", "2"], "--workers and --dask-workers exclude each other"),
        (["--scheduler", "tcp://127.0.0.1:1", "--dask-workers", "2"], "--scheduler and --dask-workers exclude each other"),
        (["--retries", "3"], "--retries applies to Dask runs"),
        (["--resume"], "--resume needs --out"),
        (["--resume", "--force", "--out", str(tmp_path / "o")], "--resume and --force exclude each other"),
    ):
        res = CliRunner().invoke(main, ["compare", str(study_file), *args])
        assert res.exit_code == 2, (args, res.output)
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (args, res.output)
    assert not (tmp_path / "o").exists()


def test_readme_cluster_section_uses_real_options():
    from click.testing import CliRunner

    from cvj.cli import main

    text = (ROOT / "README.md").read_text()
    assert "## Running on a cluster" in text
    section = text.split("## Running on a cluster", 1)[1].split("\n## ", 1)[0]
    help_text = CliRunner().invoke(main, ["compare", "--help"]).output
    used = set(re.findall(r"cvj compare [^\n`]*", section))
    options = {o for line in used for o in re.findall(r"(--[a-z][a-z-]+)", line)}
    assert {"--scheduler", "--resume", "--out"} <= options
    assert all(o in help_text for o in options | {"--dask-workers", "--workers", "--retries", "--force"}), options


# --------------------------------------------------------------------------- calibrate on Dask


def test_calibrate_on_a_dask_cluster_gives_the_local_fit(local_cluster, tmp_path):
    """cvj calibrate's simulations on the cluster the studies use: every simulation is a
    pure function of (parameters, replication), so the fit, its intervals and its
    goodness of fit are the ones a local run gives, value for value."""
    import numpy as np

    from benchmarks.calibration import make_case, small_shop
    from cvj.calibrate import calibrate, load_calibration

    ctr = "channels.paid_social.ctr"
    f = make_case(tmp_path / "c", small_shop(20_000, 42), {ctr: 0.02}, ["clicks.paid_social", "sessions"],
                  {ctr: (0.005, 0.03)}, replication=10_001, bootstrap=20, max_simulations=50)
    cal = load_calibration(f)
    here = calibrate(cal, workers=1)
    there = calibrate(cal, scheduler=local_cluster.scheduler_address)
    assert there.simulations == here.simulations > 0
    for name in ("estimate", "interval", "draws", "fitted", "boot_deviance", "slices"):
        np.testing.assert_array_equal(getattr(there, name), getattr(here, name), err_msg=name)
    assert there.deviance == here.deviance and there.p_value == here.p_value


def test_calibrate_dask_options_on_the_command_line(tmp_path):
    from click.testing import CliRunner

    from cvj.cli import main

    cal = ROOT / "scenarios" / "calibrate_handbag.toml"
    for args, message in (
        (["--workers", "2", "--dask-workers", "2"], "--workers and --dask-workers exclude each other"),
        (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers and --scheduler exclude each other"),
        (["--retries", "3"], "--retries applies to Dask runs"),
    ):
        res = CliRunner().invoke(main, ["calibrate", str(cal), "--out", str(tmp_path / "o"), *args])
        assert res.exit_code == 2, (args, res.output)
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (args, res.output)
    assert not (tmp_path / "o").exists()

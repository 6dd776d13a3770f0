"""The cvj command line, through real subprocesses."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

INVALID = Path(__file__).parent / "invalid"


# The exit status of an interrupted cvj: 130, or death by SIGINT (which a shell also
# shows as 130). CPython turns SystemExit(130) into a SIGINT death when the interrupt
# landed inside a nested PyRun_* call (seen when SIGTERM arrives while numba's first
# compilation imports scipy): run_eval_code_obj sets the "unhandled KeyboardInterrupt"
# flag that Py_RunMain checks after SystemExit was handled.
INTERRUPTED = (130, -signal.SIGINT)


def cvj(*args, **kw):
    return subprocess.run([sys.executable, "-m", "cvj", *map(str, args)], capture_output=True, text=True, **kw)


def assert_user_error(p, fragment):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


def test_validate_default():
    from cvj import default_scenario_path

    p = cvj("validate", default_scenario_path())
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok: ") and "1,000,000 customers" in p.stdout


def test_run_writes_tables_and_prints_kpis(tmp_path):
    out = tmp_path / "res"
    p = cvj("run", "--customers", 20000, "--days", 30, "--out", out, "--threads", 1, "-q")
    assert p.returncode == 0, p.stderr
    assert "KPIs: handbag-shop" in p.stdout and "payback_day" in p.stdout
    assert "customer-days in" in p.stderr
    # stdout is a pipe here: the tables are as wide as they need, no cell is cut to "…"
    # (at rich's 80 columns, paid social's 2,100,000 impressions printed as "2,100…")
    assert "…" not in p.stdout and "| paid_social " in p.stdout.replace("│", "|"), p.stdout
    for name in ("daily_stages", "transitions", "finance", "summary"):
        assert pq.read_table(out / name).num_rows > 0
    assert not (out / "customers").exists()
    p = cvj("run", "--customers", 5000, "--days", 10, "--out", out, "--customers-table", "--force", "-q")
    assert p.returncode == 0, p.stderr
    assert pq.read_table(out / "customers").num_rows == 5000


@pytest.mark.parametrize(
    "name", ["probability_above_one", "negative_budget", "unknown_key", "malformed_toml", "too_many_customers"]
)
def test_invalid_scenarios_exit_2_with_one_line(name, tmp_path):
    path = INVALID / f"{name}.toml"
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    for args in (("validate", path), ("run", path, "--out", tmp_path / "o")):
        p = cvj(*args)
        assert_user_error(p, expect)
    assert list(tmp_path.iterdir()) == []


def test_error_paths(tmp_path):
    assert_user_error(cvj("run", tmp_path / "missing.toml"), "no such file")
    assert_user_error(cvj("run", "--customers", 0), "market.customers = 0")
    assert_user_error(cvj("run", "--days", -1), "market.days = -1")
    existing = tmp_path / "exists"
    existing.mkdir()
    assert_user_error(cvj("run", "--customers", 1000, "--days", 3, "--out", existing), "already exists; use --force")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(cvj("run", "--customers", 1000, "--days", 3, "--out", blocker / "o"), "cannot create the output directory")
    p = cvj("run", "--customers", 1000, "--days", 3, "--threads", 999)
    assert_user_error(p, "threads = 999: must be between 1 and")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["exists", "file"]
    assert list(existing.iterdir()) == []


def _sigint_default():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_killed_run_leaves_nothing_at_dir(tmp_path, sig):
    out = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvj", "run", "--customers", "2000000", "--days", "20000", "--out", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's default action in the child, as in a terminal: tests started in the
        # background by a script (``pytest &`` without job control) inherit SIGINT
        # ignored, and so would cvj, which then rightly went on running
        preexec_fn=_sigint_default,
    )
    # wait until the run has started writing into its temporary directory
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".cvj-tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".cvj-tmp-*")), "the run never started"
    time.sleep(1.0)
    proc.send_signal(sig)
    # a guard, not a speed check: with a cold numba cache the signal can land while the
    # kernels compile, and the run stops once they have (cvj.interrupts; a signal that
    # landed inside the compiler was once lost, and the run went on past this guard)
    _, stderr = proc.communicate(timeout=300)
    assert not out.exists()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        # the stale temporary directory of the dead process is swept by the next run
        p = cvj("run", "--customers", 1000, "--days", 2, "--out", out, "-q")
        assert p.returncode == 0, p.stderr
        assert [x.name for x in tmp_path.iterdir()] == ["res"]
    else:
        assert proc.returncode in INTERRUPTED, stderr
        assert "interrupted: nothing was written" in stderr and "Traceback" not in stderr
        assert list(tmp_path.iterdir()) == []


def test_module_and_console_script_agree():
    p = cvj("--version")
    assert p.returncode == 0 and "cvj, version" in p.stdout
    exe = Path(sys.executable).parent / "cvj"
    if exe.exists():
        q = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
        assert q.stdout == p.stdout

"""What ``--out DIR`` may write and replace: --force replaces only cvj's own output,
dangerous locations are refused, one writer per DIR, leftovers of killed writers are
swept, long names work, and document files are regular files of bounded size."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cvj.cli import main
from cvj.documents import MAX_DOCUMENT_BYTES
from cvj.output import OWNER, DirLock
from tests.conftest import DEFAULT_SCENARIO
from tests.test_cli import INTERRUPTED  # 130, or SIGINT: see there

TINY = ["--customers", "200", "--days", "3", "--threads", "1", "-q"]

STUDY = f"""
format = 1
name = "tiny"
scenario = "{DEFAULT_SCENARIO}"
replications = 1
days = 3
customers = 200
baseline = "a"
kpis = ["profit"]
[variants.a]
[variants.b]
overrides = {{ "offers.entry.price" = 0.0 }}
"""


def invoke(*args: str | os.PathLike, env: dict | None = None):
    return CliRunner().invoke(main, [os.fspath(a) for a in args], env=env)


def assert_refused(res, fragment: str) -> str:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_args(out) -> list:
    return ["run", *TINY, "--out", out]


def compare_args(study_file, out) -> list:
    return ["compare", study_file, "--workers", "1", "-q", "--out", out]


# --------------------------------------------------------------------------- --force


@pytest.mark.parametrize("command", ["run", "compare"])
def test_force_never_replaces_a_directory_cvj_did_not_write(command, study_file, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important.txt").write_text("precious")
    args = run_args(victim) if command == "run" else compare_args(study_file, victim)
    before = listing(tmp_path)
    assert_refused(invoke(*args, "--force"), "is not the output of cvj")
    assert (victim / "important.txt").read_text() == "precious"
    assert listing(tmp_path) == before


def test_force_replaces_only_output_of_the_same_kind(study_file, tmp_path):
    run_out, study_out = tmp_path / "run_out", tmp_path / "study_out"
    assert invoke(*run_args(run_out)).exit_code == 0
    assert invoke(*compare_args(study_file, study_out)).exit_code == 0
    before = listing(tmp_path)
    assert_refused(invoke(*compare_args(study_file, run_out), "--force"), "holds the output of cvj run, not of cvj compare")
    assert_refused(invoke(*run_args(study_out), "--force"), "holds the output of cvj compare, not of cvj run")
    assert listing(tmp_path) == before


@pytest.mark.parametrize("command", ["run", "compare"])
def test_force_keeps_a_file_the_user_put_into_cvj_output(command, study_file, tmp_path):
    out = tmp_path / "out"
    args = run_args(out) if command == "run" else compare_args(study_file, out)
    assert invoke(*args).exit_code == 0
    (out / "summary" / "notes.txt").write_text("mine")
    assert_refused(invoke(*args, "--force"), "holds summary/notes.txt, which cvj did not write")
    assert (out / "summary" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["run", "compare"])
def test_force_replaces_an_empty_directory_and_earlier_output(command, study_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = run_args(out) if command == "run" else compare_args(study_file, out)
    res = invoke(*args, "--force")
    assert res.exit_code == 0, res.output
    first = json.loads((out / "_cvj.json").read_text())
    res = invoke(*args, "--force")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "_cvj.json").read_text())["kind"] == first["kind"]
    assert os.listdir(tmp_path) == ["out"]  # no lock, no temporary, no replaced copy left beside it


@pytest.mark.parametrize("command", ["run", "compare"])
@pytest.mark.parametrize("where", ["", ".", "..", "cwd-absolute", "parent-absolute", "~", "home-parent", "/"])
def test_dangerous_output_locations_are_refused(command, where, study_file, tmp_path, monkeypatch):
    home, work = tmp_path / "users" / "me", tmp_path / "work"
    for d in (home, work):
        d.mkdir(parents=True)
        (d / "precious.txt").write_text("keep")
    monkeypatch.chdir(work)
    out = {
        "cwd-absolute": str(work),
        "parent-absolute": str(tmp_path),
        "~": str(home),
        "home-parent": str(home.parent),
    }.get(where, where)
    before = listing(tmp_path)
    for force in ([], ["--force"]):
        args = run_args(out) if command == "run" else compare_args(study_file, out)
        res = invoke(*args, *force, env={"HOME": str(home)})
        assert_refused(res, "" if where == "" else "directory")
        assert listing(tmp_path) == before


def test_a_symbolic_link_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert_refused(invoke(*run_args(tmp_path / "link"), "--force"), "is a symbolic link")
    assert list(real.iterdir()) == []


# --------------------------------------------------------------------------- one writer


def test_a_second_writer_of_one_dir_is_refused(study_file, tmp_path):
    out = tmp_path / "out"
    lock = DirLock(out)
    lock.acquire()  # what a running `cvj run` or `cvj compare` holds
    try:
        line = assert_refused(invoke(*run_args(out), "--force"), "is being written by another cvj")
        assert f"pid {os.getpid()}" in line
        assert_refused(invoke(*compare_args(study_file, out), "--force"), "is being written by another cvj")
        assert_refused(invoke(*compare_args(study_file, out), "--resume"), "is being written by another cvj")
    finally:
        lock.release()
    assert invoke(*run_args(out), "--force").exit_code == 0
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.slow
def test_two_concurrent_runs_on_one_dir(tmp_path):
    """Two `cvj run --force` on one DIR: the second gets one line and exit 2 while the
    first runs; the first, interrupted, leaves nothing."""
    out = tmp_path / "out"
    first = subprocess.Popen(
        [sys.executable, "-m", "cvj", "run", "--customers", "2000000", "--days", "20000", "--out", str(out), "--force", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".cvj-tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(tmp_path.glob(".cvj-tmp-*")), "the first run never started"
        second = subprocess.run(
            [sys.executable, "-m", "cvj", "run", *TINY, "--out", str(out), "--force"], capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1 and f"being written by another cvj (pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode in INTERRUPTED and os.listdir(tmp_path) == []


def _hammer(lock_target: str, witness: str, seconds: float, queue) -> None:
    """Take and release the lock as fast as possible; inside it, claim a witness file
    with O_EXCL, which fails if another process is inside at the same time."""
    lock = DirLock(Path(lock_target))
    held = overlaps = 0
    end = time.monotonic() + seconds
    from cvj.errors import OutputError

    while time.monotonic() < end:
        try:
            lock.acquire()
        except OutputError:
            continue
        held += 1
        try:
            fd = os.open(witness, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            overlaps += 1
        else:
            os.close(fd)
            os.unlink(witness)
        lock.release()
    queue.put((held, overlaps))


def test_the_lock_admits_one_holder_while_holders_come_and_go(tmp_path):
    """Holders release by removing the lock file, which is where a lock that checks
    'stale, then unlink' lets two processes in; here every acquisition by four
    processes racing for 1.5 s is alone inside."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(str(tmp_path / "out"), str(tmp_path / "witness"), 1.5, queue)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    held = sum(h for h, _ in results)
    assert held > 100, results  # the race was exercised
    assert sum(o for _, o in results) == 0, results
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- leftovers


def _leave_like_a_killed_writer(code: str, cwd: Path) -> None:
    """Run ``code`` in a process that then dies without any clean-up."""
    subprocess.run([sys.executable, "-c", f"import os, pathlib\n{code}\nos._exit(9)"], cwd=cwd, check=False, timeout=120)


def test_what_killed_writers_leave_beside_dir_is_swept_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    assert invoke(*run_args(out)).exit_code == 0
    # killed while building its tables, after parking the old output (as at the
    # commit of --force), and while it also wrote another DIR beside it
    _leave_like_a_killed_writer(
        "from cvj.output import AtomicDir, park\n"
        "d = AtomicDir('out', force=True)\n"
        "(d.path / 'half.parquet').write_text('x')\n"
        "park(d.target, 'run')\n"
        "e = AtomicDir('other')",
        tmp_path,
    )
    left = sorted(p.name for p in tmp_path.glob(".cvj-*"))
    assert [n[:9] for n in left] == [".cvj-lock", ".cvj-lock", ".cvj-old-", ".cvj-tmp-", ".cvj-tmp-"], left
    # not cvj's: no marker, or a marker naming a live process
    foreign = tmp_path / ".cvj-tmp-mine"
    foreign.mkdir()
    (foreign / "data.txt").write_text("mine")
    alive = tmp_path / ".cvj-old-000000000000-alive"
    alive.mkdir()
    (alive / OWNER).write_text(json.dumps({"cvj": "old", "dir": "elsewhere", "host": socket.gethostname(), "pid": os.getpid()}))

    res = invoke(*run_args(out), "--force")
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(tmp_path)) == sorted(["out", foreign.name, alive.name])
    assert (foreign / "data.txt").read_text() == "mine" and (alive / OWNER).exists()


# --------------------------------------------------------------------------- long names


def test_a_dir_name_of_255_bytes_works_and_256_is_refused_naming_dir(study_file, tmp_path):
    longest = "r" * 255
    res = invoke(*run_args(tmp_path / longest))
    assert res.exit_code == 0, res.output
    assert (tmp_path / longest / "_cvj.json").exists()
    res = invoke(*compare_args(study_file, tmp_path / ("s" * 255)))
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(tmp_path)) == sorted([longest, "s" * 255])
    arabic = "ع" * 128  # 128 characters, 256 bytes
    for name in ("r" * 256, arabic):
        line = assert_refused(invoke(*run_args(tmp_path / name)), "the directory name is 256 bytes long")
        assert name in line and "cannot create" not in line
        assert_refused(invoke(*compare_args(study_file, tmp_path / name)), name)
    assert sorted(os.listdir(tmp_path)) == sorted([longest, "s" * 255])


# --------------------------------------------------------------------------- document files


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "fifo", "too_large"])
def test_only_regular_document_files_of_bounded_size_are_read(kind, tmp_path):
    if kind == "fifo":
        path = tmp_path / "scenario.toml"
        os.mkfifo(path)
        fragment = "is not a regular file"
    elif kind == "too_large":
        path = tmp_path / "huge.toml"
        with open(path, "wb") as f:
            f.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: nothing is written
        fragment = "a document file is at most 1 MiB"
    else:
        path = Path(kind)
        fragment = "is not a regular file"
    # every document kind is read by documents.read_text: run and compare are tried on
    # the FIFO, the one that would hang
    commands = [["validate", path]] + ([["run", path, *TINY], ["compare", path]] if kind == "fifo" else [])
    for command in commands:
        # a subprocess with a timeout: reading a FIFO or /dev/zero must not hang the suite
        p = subprocess.run([sys.executable, "-m", "cvj", *map(str, command)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1 and fragment in p.stderr, p.stderr


def test_a_file_put_into_dir_after_the_check_is_not_deleted_with_it(tmp_path):
    """--force checks DIR, then moves it aside (cvj.output.park) and deletes it. A file
    that arrived after the check is found in the parked copy: DIR is moved back whole
    and the replacement refused."""
    from cvj.errors import OutputError
    from cvj.output import park

    out = tmp_path / "out"
    assert invoke(*run_args(out)).exit_code == 0
    (out / "notes.txt").write_text("mine")  # after the caller's check, before the move
    with pytest.raises(OutputError, match=r"notes\.txt"):
        park(out, "run")
    assert (out / "notes.txt").read_text() == "mine" and (out / "_cvj.json").exists()
    assert not list(tmp_path.glob(".cvj-old-*"))

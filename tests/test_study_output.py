"""The output directory of a study: written run by run, validated partitions, resume,
a lock, and what an interrupted or killed study leaves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import cvj.study
import cvj.study.runner
from cvj.cli import main
from cvj.output import DirLock, OutputError, read_metadata
from cvj.study import compare, load_study, tasks_of
from cvj.study.output import MANIFEST, PARTITION_TABLES, StudyDir, partition_path
from tests.conftest import two_variant_study

STUDY = two_variant_study("out", replications=2, days=30, customers=5000, kpis=["profit", "conversions"])


@pytest.fixture(scope="module")
def reference(study_file):
    """The study in memory (every table of every run)."""
    return compare(load_study(study_file), workers=1)


@pytest.fixture
def counted(monkeypatch) -> list:
    """The (variant, replication) of every run, in this process (workers=1)."""
    calls = []
    real = cvj.study.runner.run_task

    def counting(*args):
        calls.append(tuple(args[1:]))
        return real(*args)

    monkeypatch.setattr(cvj.study.runner, "run_task", counting)
    return calls


def assert_matches(out: Path, ref) -> None:
    """DIR holds exactly the reference's tables."""
    for (v, r), part in ref.parts.items():
        for name in PARTITION_TABLES:
            t = pq.ParquetFile(partition_path(out, name, v, r)).read()
            want = part[name].drop_columns(["replication"]) if "replication" in part[name].column_names else part[name]
            assert t.equals(want), (v, r, name)
    assert pq.read_table(out / "runs").equals(ref.runs)
    assert pq.read_table(out / "contrasts").equals(ref.contrasts)
    assert json.loads((out / MANIFEST).read_text())["complete"] is True
    assert not DirLock(out).path.exists() and not list(out.rglob("*.tmp"))


def test_written_in_memory_and_run_by_run_alike(study_file, reference, tmp_path):
    st = load_study(study_file)
    written = reference.write(tmp_path / "a")
    assert_matches(written, reference)
    res = compare(st, workers=1, out=tmp_path / "b")
    assert_matches(tmp_path / "b", reference)
    assert res.parts == {} and res.runs.equals(reference.runs) and res.budget_moves.equals(reference.budget_moves)
    with pytest.raises(ValueError, match="they are in"):
        res.write(tmp_path / "c")  # its per-day tables are on disk only
    meta = read_metadata(partition_path(tmp_path / "b", "summary", "free", 1))
    assert meta["cvj.variant"] == "free" and meta["cvj.replication"] == "1" and meta["cvj.stream"] == "1"
    assert meta["cvj.table"] == "summary" and json.loads(meta["cvj.marketer"])["policy"] == "shift"


def test_resume_redoes_exactly_the_partitions_that_are_not_whole_and_valid(study_file, reference, tmp_path, counted):
    st = load_study(study_file)
    out = tmp_path / "out"
    compare(st, workers=1, out=out)
    counted.clear()
    # free/0: a table is missing; mid/1: a file from another version; free/1: a truncated file
    partition_path(out, "kpis_daily", "free", 0).unlink()
    other = partition_path(out, "finance", "mid", 1)
    t = pq.read_table(other)
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, b"cvj.version": b"0.0.1"}), other)
    broken = partition_path(out, "transitions", "free", 1)
    broken.write_bytes(broken.read_bytes()[:100])
    kept = partition_path(out, "daily_stages", "mid", 0).stat()

    res = compare(st, workers=1, out=out, resume=True)
    assert sorted(counted) == sorted([("free", 0), ("mid", 1), ("free", 1)])
    assert (res.reused, res.computed) == (1, 3)
    assert partition_path(out, "daily_stages", "mid", 0).stat().st_mtime_ns == kept.st_mtime_ns
    assert_matches(out, reference)


def test_resume_refuses_another_study_or_a_foreign_directory(study_file, tmp_path):
    st = load_study(study_file)
    out = tmp_path / "out"
    compare(st, workers=1, out=out)
    more = load_study(study_file, replications=3)
    with pytest.raises(OutputError, match="holds another study"):
        StudyDir(out, more, resume=True)
    with pytest.raises(OutputError, match="already exists; use --resume"):
        StudyDir(out, st)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not the output of a cvj study"):
        StudyDir(foreign, st, resume=True)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputError, match="URLs are not supported"):
        StudyDir("s3://bucket/study", st)
    with StudyDir(tmp_path / "new", st, resume=True) as d:  # --resume also starts a study
        assert d.done == set()
    assert not (tmp_path / "new").exists()  # nothing was written into it: removed



def test_a_study_removes_only_what_it_wrote(study_file, tmp_path):
    """--resume drops a finished study's runs and contrasts before rewriting them, and a
    DIR a study created and wrote nothing into is removed when it closes; neither takes
    a file a person put there, nor the folders holding it."""
    st = load_study(study_file)
    out = tmp_path / "out"
    compare(st, workers=1, out=out)
    (out / "runs" / "notes.txt").write_text("mine")
    with StudyDir(out, st, resume=True):
        assert (out / "runs" / "notes.txt").read_text() == "mine"
        assert not (out / "runs" / "part-0.parquet").exists() and not (out / "contrasts").exists()
    new = tmp_path / "new"
    with StudyDir(new, st) as d:
        assert d.done == set()
        (new / "notes.txt").write_text("mine")  # arrives while the study holds DIR
    assert (new / "notes.txt").read_text() == "mine"
    assert not (new / MANIFEST).exists()

def test_one_writer_at_a_time(study_file, tmp_path):
    st = load_study(study_file)
    out = tmp_path / "out"
    with StudyDir(out, st) as d:
        d.write_partition("mid", 0, cvj.study.run_task(st, "mid", 0))
        with pytest.raises(OutputError, match="being written by another cvj"):
            StudyDir(out, st, resume=True)
        with pytest.raises(OutputError, match="being written by another cvj"):
            StudyDir(out, st, force=True)
    # the lock file of a process that is gone is not a lock (flock ends with its process)
    lock = DirLock(out).path
    lock.write_text(json.dumps({"cvj": "lock", "dir": out.name, "host": socket.gethostname(), "pid": _dead_pid()}))
    with StudyDir(out, st, resume=True) as d:
        assert d.done == {("mid", 0)}
    assert not lock.exists()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_force_replaces_a_finished_study_and_nothing_else(study_file, reference, tmp_path):
    st = load_study(study_file)
    out = tmp_path / "out"
    compare(st, workers=1, out=out)
    (out / "summary" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds summary/notes.txt, which cvj did not write"):
        compare(st, workers=1, out=out, force=True)
    assert (out / "summary" / "notes.txt").read_text() == "mine"
    (out / "summary" / "notes.txt").unlink()
    res = compare(st, workers=1, out=out, force=True)
    assert res.computed == len(tasks_of(st))
    assert_matches(out, reference)
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.slow
def test_a_killed_study_is_finished_by_resume(tmp_path, counted):
    """SIGKILL (no clean-up at all) in the middle of a study, then --resume: only the
    missing runs are run and the tables are those of an uninterrupted study."""
    study = tmp_path / "s.toml"
    study.write_text(STUDY.replace("replications = 2", "replications = 4").replace("customers = 5000", "customers = 40000"))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvj", "compare", str(study), "--out", str(out), "--workers", "1", "--threads", "1", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("summary/variant=*/replication=*/part-0.parquet"))) < 3:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the study never got going"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert json.loads((out / MANIFEST).read_text())["complete"] is False
    assert not (out / "runs").exists()
    assert DirLock(out).path.exists()  # left by the killed process, but no longer locked
    st = load_study(study)
    with StudyDir(out, st, resume=True) as d:
        done = set(d.done)
    assert 3 <= len(done) < len(tasks_of(st))

    res = CliRunner().invoke(main, ["compare", str(study), "--out", str(out), "--workers", "1", "--resume", "-q"])
    assert res.exit_code == 0, res.output
    assert sorted(counted) == sorted(set(tasks_of(st)) - done)
    counted.clear()
    ref = compare(st, workers=1)
    assert_matches(out, ref)
    assert sorted(os.listdir(tmp_path)) == ["out", "s.toml"]

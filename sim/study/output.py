"""The output directory of a study, written run by run and resumable.

One mechanism for every way a study runs (in this process, a local process pool, a
Dask cluster) and for :meth:`cvj.study.StudyResult.write`: the process that calls
:func:`cvj.study.compare` (the *client*) writes every run's tables as soon as the run
comes back, and the study tables at the end. Workers never touch ``DIR``, so they need
no shared storage and no write access. This module reads and writes; it computes
nothing (:mod:`cvj.study.runner` computes the study tables from :meth:`StudyDir.read_runs`).

Layout of ``DIR``::

    _cvj.json                                       manifest: "complete": false until the end
    <table>/variant=<v>/replication=<r>/part-0.parquet
                                                    one partition per run, for every table
                                                    of PARTITION_TABLES
    runs/part-0.parquet, contrasts/part-0.parquet   study tables, from all partitions, at the end

Guarantees:

- every file is written under a hidden temporary name (``.part-0.parquet.<id>.tmp``,
  which neither ``pyarrow.dataset`` nor a ``*.parquet`` glob picks up) and renamed into
  place, so no reader ever sees a half-written file; a run's six files are all written
  before the first is renamed, so a partition is whole except for the few
  microseconds of six renames, and a partition missing any table is not "done";
- ``_cvj.json`` says ``"complete": false`` from before the first partition until the
  study tables are written; ``runs`` and ``contrasts`` exist only in a complete
  directory (a resumed run deletes them first);
- a partition counts as done (and is skipped by a resumed run) only if all its
  tables are there and every file's Parquet metadata names this study (its SHA-256),
  the variant's scenario (SHA-256), seed, variant, replication, random stream,
  marketer and this program's version; anything else is run again and replaced;
- an existing ``DIR`` is refused unless ``resume`` (it must then hold the same study)
  or ``force`` (it is replaced, only if it is empty or holds nothing but an earlier
  study's output: :func:`cvj.output.check_replaceable`); two processes cannot write one
  ``DIR`` at once (:class:`cvj.output.DirLock`, held from opening to :meth:`StudyDir.close`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Self

import pyarrow as pa
import pyarrow.parquet as pq

from .. import registry
from ..output import (
    LEGACY_LOCK,
    MANIFEST,
    DirLock,
    OutputError,
    check_replaceable,
    output_path,
    park,
    read_metadata,
    remove_created,
    show,
    sweep,
    writable_parent,
    write_table,
)
from ..run import metadata
from ..version import __version__
from .spec import tasks_of

#: the tables of one run (one partition each): what ``run_task`` returns
PARTITION_TABLES = registry.names(registry.STUDY_RUN_TABLES)
#: the study tables, computed from all partitions at the end
STUDY_TABLES = registry.names(registry.STUDY_TABLES)
PART = "part-0.parquet"


def study_sha256(study) -> str:
    """SHA-256 of the study's canonical JSON (variants, scenarios, marketers, replications)."""
    return hashlib.sha256(study.to_json().encode()).hexdigest()


def partition_metadata(study, variant: str, replication: int) -> dict[str, str]:
    """The ``cvj.*`` metadata of every file of a run's partition; all of it must match for
    a resumed run to keep the partition."""
    v = study.variants[variant]
    return metadata(
        v.scenario,
        study_name=study.name,
        study_sha256=study_sha256(study),
        variant=variant,
        replication=replication,
        stream=study.stream(variant, replication),
        marketer=json.dumps(v.marketer.model_dump(mode="json"), sort_keys=True, separators=(",", ":")),
    )


def partition_path(root: Path, table: str, variant: str, replication: int) -> Path:
    return root / table / f"variant={variant}" / f"replication={replication}" / PART


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _write_atomic_text(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def _remove_written(top: Path) -> None:
    """Remove what a study writes under ``top`` (its ``_cvj.json``, ``part-0.parquet``
    files and hidden ``.*.tmp`` files) and then the directories left empty, deepest
    first. Anything else, and every directory holding it, stays: nothing is deleted
    that cvj did not write."""
    if top.is_symlink() or not top.is_dir():
        return
    for dirpath, _dirs, files in os.walk(top, topdown=False):
        here = Path(dirpath)
        for f in files:
            if f == PART or (f.startswith(".") and f.endswith(".tmp")) or (here == top and f == MANIFEST):
                (here / f).unlink(missing_ok=True)
        try:
            here.rmdir()  # only if empty
        except OSError:
            pass


def _read(path: Path) -> pa.Table:
    return pq.ParquetFile(path).read().replace_schema_metadata(None)


class StudyDir:
    """``DIR`` of a study: open it, :meth:`write_partition` every run, :meth:`finish`.

    Parameters
    ----------
    root : path
    study : cvj.study.Study
    resume : bool
        ``DIR`` may exist and hold this study (or be empty): partitions already done
        are kept (:attr:`done`) and the others are (re)written. A missing ``DIR`` is
        started.
    force : bool
        Replace an existing ``DIR`` if it is empty or an earlier study's output with
        nothing else in it.

    Raises
    ------
    OutputError
        ``DIR`` must not be used (:func:`cvj.output.output_path`), exists (without
        ``resume`` or ``force``), holds another study or no study (with ``resume``),
        holds more than a study's output (with ``force``), is being written by another
        process, or cannot be written.
    """

    def __init__(self, root: str | os.PathLike, study, *, resume: bool = False, force: bool = False):
        if resume and force:
            raise OutputError("resume and force exclude each other (resume keeps DIR, force deletes it)")
        self.root = output_path(root)
        self.study = study
        self.sha256 = study_sha256(study)
        self._created = False
        self._written = 0
        self._parents: list[Path] = []
        root = self.root
        parent = writable_parent(root, self._parents)
        self._lock = DirLock(root)
        try:
            self._lock.acquire()
            if root.exists():
                if not root.is_dir():
                    raise OutputError(f"{show(root)} exists and is not a directory")
                if resume:
                    self._check_same_study()
                elif force:
                    self._remove()
                else:
                    raise OutputError(
                        f"{show(root)} already exists; use --resume to finish the study in it or --force to replace it"
                    )
            sweep(root)
            if not root.exists():
                try:
                    root.mkdir()
                except OSError as exc:
                    raise OutputError(f"cannot write in {show(parent)}: {exc.strerror or exc}") from None
                self._created = True
            self._sweep()
            for name in STUDY_TABLES:  # only a complete DIR has them
                _remove_written(root / name)
            self._manifest(complete=False)
            #: (variant, replication) of the partitions already done (resume)
            self.done: set[tuple[str, int]] = {key for key in self.tasks() if self.is_done(*key)}
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening

    def tasks(self) -> list[tuple[str, int]]:
        return tasks_of(self.study)

    def _check_same_study(self) -> None:
        root = self.root
        entries = [p.name for p in root.iterdir() if p.name != LEGACY_LOCK]
        if not entries:
            return  # an empty directory: start the study in it
        try:
            info = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError):
            raise OutputError(
                f"{show(root)} is not the output of a cvj study (no readable {MANIFEST}); use another --out"
            ) from None
        if not isinstance(info, dict) or info.get("kind") != "study":
            kind = info.get("kind") if isinstance(info, dict) else None
            raise OutputError(f"{show(root)} is not the output of a cvj study ({MANIFEST} says kind {show(repr(kind))})")
        if info.get("study_sha256") != self.sha256:
            raise OutputError(
                f"{show(root)} holds another study ({show(repr(info.get('study')))}, {info.get('replications')} replications, "
                f"study sha256 {str(info.get('study_sha256'))[:12]}); --resume needs the same study file and "
                "options (--force replaces it)"
            )

    def _remove(self) -> None:
        """``force``: replace ``DIR`` if it is empty or only an earlier study's output.
        It is parked beside ``DIR`` first (:func:`cvj.output.park`), so a kill while it
        is being deleted leaves a marked directory that the next cvj removes."""
        check_replaceable(self.root, "study")
        shutil.rmtree(park(self.root, "study"), ignore_errors=True)

    def _sweep(self) -> None:
        """Temporary files of a run that was killed while writing."""
        for name in PARTITION_TABLES + STUDY_TABLES:
            base = self.root / name
            if base.is_dir():
                for p in base.rglob(".*.tmp"):
                    p.unlink(missing_ok=True)
        for p in self.root.glob(".*.tmp"):
            p.unlink(missing_ok=True)

    def _manifest(self, complete: bool) -> None:
        st = self.study
        info = {
            "kind": "study",
            "complete": complete,
            "study": st.name,
            "study_sha256": self.sha256,
            "baseline": st.baseline,
            "variants": list(st.variant_names),
            "replications": st.replications,
            "runs": len(st.variants) * st.replications,
            "common_random_numbers": st.common_random_numbers,
            "scenario_sha256": {n: v.scenario.sha256() for n, v in st.variants.items()},
            "tables": sorted(PARTITION_TABLES + STUDY_TABLES),
            "partition_tables": list(PARTITION_TABLES),
            "study_tables": list(STUDY_TABLES),
            "partitioning": "hive: <table>/variant=<name>/replication=<r>/part-0.parquet",
            "version": __version__,
        }
        _write_atomic_text(self.root / MANIFEST, json.dumps(info, indent=2, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ partitions

    def is_done(self, variant: str, replication: int) -> bool:
        """All of the run's tables are there, readable, with this run's metadata."""
        want = partition_metadata(self.study, variant, replication)
        for name in PARTITION_TABLES:
            path = partition_path(self.root, name, variant, replication)
            try:
                meta = read_metadata(path)
            except (OSError, pa.ArrowException):
                return False
            if meta.get("cvj.table") != name or any(meta.get(k) != v for k, v in want.items()):
                return False
        return True

    def write_partition(self, variant: str, replication: int, tables: dict[str, pa.Table]) -> None:
        """Write one run's tables: every file under a temporary name first, then
        renamed into place."""
        meta = partition_metadata(self.study, variant, replication)
        staged = []
        try:
            for name in PARTITION_TABLES:
                t = tables[name]
                if "replication" in t.column_names:
                    t = t.drop_columns(["replication"])  # the partition key (its stream is in the metadata)
                final = partition_path(self.root, name, variant, replication)
                tmp = _tmp_name(final)
                staged.append((tmp, final))
                write_table(t, tmp, dict(meta, **{"cvj.table": name}))
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in staged:
            os.replace(tmp, final)
        self.done.add((variant, replication))
        self._written += 1

    def read_partition(self, variant: str, replication: int, tables=("summary", "budget_moves")) -> dict[str, pa.Table]:
        return {name: _read(partition_path(self.root, name, variant, replication)) for name in tables}

    # ------------------------------------------------------------------ the end

    def read_runs(self) -> tuple[dict[tuple[str, int], pa.Table], dict[tuple[str, int], pa.Table]]:
        """Every run's ``summary`` and ``budget_moves``, read back from ``DIR``, keyed by
        (variant, replication). Every run must be done."""
        missing = [key for key in self.tasks() if not self.is_done(*key)]
        if missing:
            v, r = missing[0]
            raise OutputError(
                f"{show(self.root)}: {len(missing)} runs are missing or invalid (e.g. variant {v}, replication {r})"
            )
        summaries, moves = {}, {}
        for v, r in self.tasks():
            part = self.read_partition(v, r)
            summaries[(v, r)], moves[(v, r)] = part["summary"], part["budget_moves"]
        return summaries, moves

    def finish(self, tables: dict[str, pa.Table]) -> Path:
        """Write the study tables (``runs``, ``contrasts``: computed by the caller from
        :meth:`read_runs`), mark ``DIR`` complete and release it. Returns ``DIR``."""
        st = self.study
        base = st.variants[st.baseline].scenario
        meta = metadata(base, study=st.to_json(), study_name=st.name, study_sha256=self.sha256, baseline=st.baseline)
        for name in STUDY_TABLES:
            final = self.root / name / PART
            tmp = _tmp_name(final)
            write_table(tables[name], tmp, dict(meta, **{"cvj.table": name}))
            os.replace(tmp, final)
        self._manifest(complete=True)
        self.close()
        return self.root

    def close(self) -> None:
        """Release ``DIR`` (idempotent). A ``DIR`` this object created and wrote no run
        into is removed (an error before the first run leaves nothing)."""
        if self._lock.held:
            try:
                if self._created and self._written == 0 and not getattr(self, "done", None):
                    _remove_written(self.root)
            finally:
                self._lock.release()
        if not self.root.exists():  # nothing of this study is there: nor the parents it created
            remove_created(self._parents)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["MANIFEST", "PARTITION_TABLES", "STUDY_TABLES", "StudyDir", "partition_metadata", "study_sha256"]

"""Atomic Parquet output: build in a temporary directory next to DIR, rename at the end.

A failed, interrupted or killed run leaves nothing at DIR (at most a hidden
``.DIR.tmp-*`` directory beside it, which the next run to DIR removes if its owner
process is gone).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import OutputError


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writable_parent(target: Path) -> Path:
    """Create ``target``'s parent if needed and check that it is writable."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory {parent}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"the output directory {parent} is not writable")
    return parent


class AtomicDir:
    """A directory that appears at ``target`` only when :meth:`commit` is called.

    Use as a context manager: leaving the block without committing (an error,
    Ctrl-C, SIGTERM) removes the temporary directory.
    """

    def __init__(self, target: str | os.PathLike, force: bool = False):
        self.target = Path(target).absolute()
        self.force = force
        if self.target.exists() and not force:
            raise OutputError(f"{self.target} already exists; use --force to replace it")
        if self.target.exists() and not self.target.is_dir():
            raise OutputError(f"{self.target} exists and is not a directory")
        parent = writable_parent(self.target)
        self._sweep_stale(parent)
        self.path = parent / f".{self.target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.path.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write in {parent}: {exc.strerror or exc}") from None
        self.committed = False

    def _sweep_stale(self, parent: Path) -> None:
        for p in parent.glob(f".{self.target.name}.tmp-*"):
            try:
                pid = int(p.name.rsplit(".tmp-", 1)[1].split("-")[0])
            except (IndexError, ValueError):
                continue
            if not pid_alive(pid):
                shutil.rmtree(p, ignore_errors=True)

    def commit(self) -> Path:
        old = None
        if self.target.exists():
            if not self.force:
                raise OutputError(f"{self.target} appeared while running; use --force to replace it")
            old = self.target.parent / f".{self.target.name}.old-{uuid.uuid4().hex[:8]}"
            self.target.rename(old)
        self.path.rename(self.target)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def abort(self) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "AtomicDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()


def with_metadata(table: pa.Table, metadata: dict[str, str]) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta.update({k.encode(): v.encode() for k, v in metadata.items()})
    return table.replace_schema_metadata(meta)


def write_table(table: pa.Table, path: Path, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(with_metadata(table, metadata), path, compression="zstd")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``cvj.*`` metadata of one Parquet file."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"cvj.")}


def write_manifest(root: Path, info: dict) -> None:
    (root / "_cvj.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")

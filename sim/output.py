"""Output directories: atomic, locked, and never replacing what cvj did not write.

``cvj run --out DIR`` builds its tables in a hidden temporary directory beside ``DIR``
and renames it to ``DIR`` at the end (:class:`AtomicDir`), so a failed, interrupted or
killed run leaves nothing at ``DIR``. ``cvj compare --out DIR`` writes run by run into
``DIR`` itself (:class:`cvj.study.output.StudyDir`). Both share what is here:

- :func:`output_path` refuses an output location that ``--force`` could turn into a
  disaster: an empty path, the current directory or one of its parents, the home
  directory or one of its parents, a symbolic link, a name longer than a file name
  may be, a URL;
- :func:`check_replaceable`: ``--force`` replaces only an empty directory or one that
  ``_cvj.json`` marks as cvj output of the same kind (``run`` or ``study``) and that
  holds nothing cvj did not write;
- :class:`DirLock`: one writer per ``DIR`` at a time, an ``fcntl.flock`` on a small
  file ``.cvj-lock-<hash>`` beside ``DIR`` (released by the kernel when its process
  dies, so a killed run never leaves a lock that blocks the next one);
- temporary and replaced directories are ``.cvj-tmp-<hash>-<id>`` and
  ``.cvj-old-<hash>-<id>`` beside ``DIR`` (short, whatever the length of ``DIR``'s
  name), each holding a marker ``.cvj-owner`` that names its writer; :func:`sweep`
  removes those whose writer is gone.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import OutputError
from .names import escape

MANIFEST = "_cvj.json"
#: the marker inside every temporary or replaced directory: who wrote it, for which DIR
OWNER = ".cvj-owner"
TMP_PREFIX = ".cvj-tmp-"
OLD_PREFIX = ".cvj-old-"
LOCK_PREFIX = ".cvj-lock-"
#: the lock file inside a study's DIR of earlier cvj versions (tolerated, never written)
LEGACY_LOCK = ".cvj.lock"
#: a file name's length limit on Linux and macOS file systems, in bytes
NAME_MAX_BYTES = 255
#: what each kind of output is written by, for messages
WRITER = {
    "run": "cvj run", "study": "cvj compare", "report": "cvj report", "attribution": "cvj attribute",
    "calibration": "cvj calibrate",
}
#: the directory ``cvj report`` writes inside a run's or study's DIR (cvj's own, too)
REPORT_DIR = "report"
#: the marker, lock and manifest are small; a larger file is not cvj's
_SMALL = 1 << 16


def show(path: str | os.PathLike) -> str:
    """A path as printed in a message: escaped (see :func:`cvj.names.escape`)."""
    return escape(os.fspath(path)) if os.fspath(path) != "" else '""'


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _key(name: str) -> str:
    """Short, fixed-length stand-in for a DIR's name in the names of its lock and
    temporary directories (a name of 255 bytes must still fit)."""
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:12]


# --------------------------------------------------------------------------- the location


def output_path(out: str | os.PathLike) -> Path:
    """The absolute path of an output directory, or an :class:`OutputError` if cvj must
    not write (or, with ``--force``, replace) it.

    Refused: an empty path; a URL; the current directory or any parent of it; the home
    directory or any parent of it; a symbolic link; a final name longer than
    :data:`NAME_MAX_BYTES` bytes. The parent directory is resolved (symbolic links
    followed), so the returned path names the real place.

    Parameters
    ----------
    out : str or path-like

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputError
    """
    raw = os.fspath(out)
    if raw == "":
        raise OutputError('the output directory is "" (an empty path); name a new directory, e.g. --out results')
    if "://" in raw:
        raise OutputError(f"{show(raw)}: URLs are not supported; the output is a directory on this machine")
    absolute = Path(os.path.abspath(raw))
    real = Path(os.path.realpath(raw))
    cwd = Path(os.path.realpath(os.getcwd()))
    home = Path(os.path.realpath(Path.home()))
    why = None
    if real == cwd:
        why = "is the current directory"
    elif real in cwd.parents:
        why = "is a parent of the current directory"
    elif real == home:
        why = "is the home directory"
    elif real in home.parents:
        why = "holds the home directory"
    if why is not None:
        raise OutputError(
            f"{show(raw)} {why}; cvj writes (and with --force replaces) the whole output directory, "
            "so name a new one, e.g. --out results"
        )
    name = absolute.name
    size = len(os.fsencode(name))
    if size > NAME_MAX_BYTES:
        raise OutputError(f"{show(absolute)}: the directory name is {size} bytes long; a file name has at most {NAME_MAX_BYTES}")
    if absolute.is_symlink():
        raise OutputError(f"{show(absolute)} is a symbolic link; give the directory itself as the output")
    return Path(os.path.realpath(absolute.parent)) / name


def writable_parent(target: Path, created: list[Path] | None = None) -> Path:
    """Create ``target``'s parent if needed and check that it is writable.

    The directories it creates are appended to ``created`` (outermost first), for
    :func:`remove_created` when nothing gets written after all.
    """
    parent = target.parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()][::-1]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output directory {show(parent)}: {exc.strerror or exc}") from None
    if created is not None:
        created.extend(missing)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"the output directory {show(parent)} is not writable")
    return parent


def remove_created(created: list[Path]) -> None:
    """Remove the directories :func:`writable_parent` created, innermost first, as far
    as they are still empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break
    created.clear()


def _manifest_kind(root: Path) -> str | None:
    try:
        with open(root / MANIFEST, "rb") as f:
            info = json.loads(f.read(_SMALL))
    except (OSError, ValueError):
        return None
    kind = info.get("kind") if isinstance(info, dict) else None
    return kind if isinstance(kind, str) else None


def _manifest_tables(root: Path) -> set[str]:
    try:
        info = json.loads((root / MANIFEST).read_text())
        return {t for t in info.get("tables", ()) if isinstance(t, str)}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def _is_cvj_temporary(name: str) -> bool:
    """A hidden ``.<name>.<id>.tmp`` file cvj writes before renaming it into place."""
    return name.startswith(".") and name.endswith(".tmp")


def _manifest_files(root: Path) -> set[str]:
    try:
        info = json.loads((root / MANIFEST).read_text())
        return {f for f in info.get("files", ()) if isinstance(f, str) and "/" not in f}
    except (OSError, ValueError, AttributeError, TypeError):
        return set()


def foreign_entry(root: Path) -> Path | None:
    """The first file or directory under ``root`` that cvj would not have written
    there, or ``None``: outside the manifest, the manifest's tables and files (a
    report's page, PNGs and CSVs), the hidden temporary files cvj renames into place
    (and an earlier version's lock), a ``report`` directory that is itself cvj report
    output, and inside a table nothing but directories and Parquet files."""
    tables = _manifest_tables(root)
    files = _manifest_files(root)
    for entry in root.iterdir():
        name = entry.name
        if name in (MANIFEST, LEGACY_LOCK) and entry.is_file() and not entry.is_symlink():
            continue
        if name in files and entry.is_file() and not entry.is_symlink():
            continue
        if (
            name == REPORT_DIR
            and entry.is_dir()
            and not entry.is_symlink()
            and _manifest_kind(entry) == "report"
            and foreign_entry(entry) is None
        ):
            continue
        if _is_cvj_temporary(name) and entry.is_file() and not entry.is_symlink():
            continue
        if name in tables and entry.is_dir() and not entry.is_symlink():
            for dirpath, dirnames, filenames in os.walk(entry):
                base = Path(dirpath)
                for d in dirnames:
                    if (base / d).is_symlink():
                        return base / d
                for f in filenames:
                    p = base / f
                    if p.is_symlink() or not (f.endswith(".parquet") or _is_cvj_temporary(f)):
                        return p
            continue
        return entry
    return None


def check_replaceable(root: Path, kind: str) -> None:
    """Raise :class:`OutputError` unless ``--force`` may replace the directory ``root``:
    it is empty, or ``_cvj.json`` marks it as cvj output of ``kind`` (``"run"`` or
    ``"study"``) and it holds nothing that cvj did not write."""
    try:
        if not any(root.iterdir()):
            return
        found = _manifest_kind(root)
        if found is None:
            raise OutputError(
                f"{show(root)} is not the output of {WRITER[kind]} (no readable {MANIFEST}); --force replaces only an "
                f"empty directory or an earlier output of {WRITER[kind]}, so choose another --out"
            )
        if found != kind:
            other = WRITER.get(found, f"kind {found!r}")
            raise OutputError(
                f"{show(root)} holds the output of {escape(other)}, not of {WRITER[kind]}; --force replaces only an "
                f"earlier output of {WRITER[kind]}, so choose another --out"
            )
        extra = foreign_entry(root)
    except OSError as exc:
        raise OutputError(f"cannot read {show(root)}: {exc.strerror or exc}") from None
    if extra is not None:
        raise OutputError(
            f"{show(root)} holds {show(extra.relative_to(root))}, which cvj did not write; --force replaces only "
            "cvj's own output, so move it away or choose another --out"
        )


# --------------------------------------------------------------------------- the lock


class DirLock:
    """An exclusive, non-blocking lock on an output directory ``target``.

    The lock is ``fcntl.flock`` on ``.cvj-lock-<hash of the name>`` beside ``target``.
    The kernel releases it when its process ends, however it ends, so there is no
    stale-lock takeover to get wrong: a second writer's ``flock`` fails as long as
    the first is alive and succeeds once it is gone. The file itself is removed on
    release (while still locked); since a waiting process may then hold a lock on
    the removed file, :meth:`acquire` checks after locking that the path still names
    the file it locked, and starts again if not.
    """

    def __init__(self, target: Path):
        self.target = target
        self.path = target.parent / f"{LOCK_PREFIX}{_key(target.name)}"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`OutputError` if another process holds it."""
        while self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot lock {show(self.target)}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_json(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"cannot lock {show(self.target)}: {exc.strerror or exc}") from None
                who = f" (pid {holder.get('pid')} on {escape(str(holder.get('host')))})" if holder else ""
                raise OutputError(f"{show(self.target)} is being written by another cvj{who}; wait for it to finish") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its previous holder removed it while we waited for it
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            info = {"cvj": "lock", "dir": self.target.name, "host": socket.gethostname(), "pid": os.getpid()}
            os.write(fd, (json.dumps(info) + "\n").encode())
            self._fd = fd

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(self._fd)
                self._fd = None


def _read_json(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, _SMALL) or b"{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- temporaries


def _mark(container: Path, role: str, target: Path) -> None:
    info = {"cvj": role, "dir": target.name, "host": socket.gethostname(), "pid": os.getpid()}
    (container / OWNER).write_text(json.dumps(info) + "\n")


def _owner(container: Path) -> dict | None:
    try:
        with open(container / OWNER, "rb") as f:
            info = json.loads(f.read(_SMALL))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("cvj") in ("tmp", "old") else None


def new_container(target: Path, role: str) -> Path:
    """A new hidden directory ``.cvj-<role>-<hash>-<id>`` beside ``target``, marked as
    written by this process for ``target``. The caller holds ``target``'s lock."""
    prefix = TMP_PREFIX if role == "tmp" else OLD_PREFIX
    container = target.parent / f"{prefix}{_key(target.name)}-{uuid.uuid4().hex[:8]}"
    try:
        container.mkdir()
        _mark(container, role, target)
    except OSError as exc:
        shutil.rmtree(container, ignore_errors=True)
        raise OutputError(f"cannot write beside {show(target)}: {exc.strerror or exc}") from None
    return container


def park(target: Path, kind: str) -> Path:
    """Move ``target`` (being replaced) into a marked ``.cvj-old-*`` directory and return
    that directory (for :func:`shutil.rmtree`). Once parked, a kill cannot leave it for
    good: the next cvj to write beside it removes it (:func:`sweep`).

    The parked copy is checked again (:func:`check_replaceable`): a file put into
    ``target`` between the caller's check and the move would otherwise be deleted with
    it. If the check fails, ``target`` is moved back and :class:`OutputError` raised."""
    container = new_container(target, "old")
    try:
        os.rename(target, container / "d")
    except OSError as exc:
        shutil.rmtree(container, ignore_errors=True)
        raise OutputError(f"cannot replace {show(target)}: {exc.strerror or exc}") from None
    try:
        check_replaceable(container / "d", kind)
    except OutputError:
        os.rename(container / "d", target)
        shutil.rmtree(container, ignore_errors=True)
        check_replaceable(target, kind)  # raises, naming target rather than the parked copy
        raise
    return container


def sweep(target: Path) -> None:
    """Remove what killed cvj processes left beside ``target`` (the caller holds
    ``target``'s lock).

    Removed: ``.cvj-tmp-*`` and ``.cvj-old-*`` directories whose marker names
    ``target`` (no writer of ``target`` is alive: we hold its lock) or names a process
    of this machine that is gone; an unmarked, empty one of ``target`` (its writer was
    killed between creating and marking it); and lock files no process holds. Anything
    without cvj's marker is left alone.
    """
    parent = target.parent
    mine = _key(target.name) + "-"
    host = socket.gethostname()
    try:
        entries = [p for p in parent.iterdir() if p.name.startswith(".cvj-")]
    except OSError:
        return
    for p in entries:
        name = p.name
        if name.startswith(LOCK_PREFIX):
            _sweep_lock(p)
            continue
        prefix = TMP_PREFIX if name.startswith(TMP_PREFIX) else OLD_PREFIX if name.startswith(OLD_PREFIX) else None
        if prefix is None or p.is_symlink() or not p.is_dir():
            continue
        ours = name[len(prefix) :].startswith(mine)
        owner = _owner(p)
        if owner is None:
            if ours:
                try:
                    p.rmdir()  # only if empty
                except OSError:
                    pass
            continue
        pid = owner.get("pid")
        gone = owner.get("host") == host and isinstance(pid, int) and not pid_alive(pid)
        if (ours and owner.get("dir") == target.name) or gone:
            shutil.rmtree(p, ignore_errors=True)


def _sweep_lock(path: Path) -> None:
    """Remove a lock file that no process holds (see :class:`DirLock` for why this is
    safe against a process that is about to lock it)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return
        info = _read_json(fd)
        if os.fstat(fd).st_size == 0 or info.get("cvj") == "lock":
            path.unlink()
    except OSError:
        return
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- run output


class AtomicDir:
    """A directory that appears at ``target`` only when :meth:`commit` is called.

    Opening it checks the location (:func:`output_path`), takes ``target``'s lock
    (:class:`DirLock`, held until :meth:`commit` or :meth:`abort`), refuses an existing
    ``target`` unless ``force`` and :func:`check_replaceable`, removes what killed
    writers left beside it (:func:`sweep`) and creates the temporary directory
    :attr:`path`. Use as a context manager: leaving the block without committing (an
    error, Ctrl-C, SIGTERM) removes the temporary directory.

    Parameters
    ----------
    target : path
        The output directory.
    force : bool
        Replace an existing ``target`` if it is empty or an earlier output of ``kind``.
    kind : str
        What the output is (``"run"``), as ``_cvj.json`` says.

    Raises
    ------
    OutputError
    """

    def __init__(self, target: str | os.PathLike, force: bool = False, kind: str = "run"):
        self.target = output_path(target)
        self.force = force
        self.kind = kind
        self.committed = False
        self._container: Path | None = None
        self._created: list[Path] = []
        parent = writable_parent(self.target, self._created)
        self._lock = DirLock(self.target)
        try:
            self._lock.acquire()
            if self.target.exists():
                if not self.target.is_dir():
                    raise OutputError(f"{show(self.target)} exists and is not a directory")
                if not force:
                    raise OutputError(f"{show(self.target)} already exists; use --force to replace it")
                check_replaceable(self.target, kind)
            sweep(self.target)
            self._container = new_container(self.target, "tmp")
            self.path = self._container / "d"
            try:
                self.path.mkdir()
            except OSError as exc:
                raise OutputError(f"cannot write in {show(parent)}: {exc.strerror or exc}") from None
        except BaseException:
            self.abort()
            raise

    def commit(self) -> Path:
        """Move the finished directory to ``target`` (replacing an earlier output with
        ``force``) and release the lock."""
        old = None
        try:
            if self.target.exists() or self.target.is_symlink():
                if not self.force:
                    raise OutputError(f"{show(self.target)} appeared while running; use --force to replace it")
                if self.target.is_symlink() or not self.target.is_dir():
                    raise OutputError(f"{show(self.target)} appeared while running and is not a directory")
                check_replaceable(self.target, self.kind)  # it may have changed while we ran
                old = park(self.target, self.kind)
            os.rename(self.path, self.target)
            self.committed = True
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            self.abort()
        return self.target

    def abort(self) -> None:
        """Remove the temporary directory (unless committed) and release the lock
        (idempotent). Without a commit, the parent directories it created go too."""
        try:
            if self._container is not None:
                shutil.rmtree(self._container, ignore_errors=True)
                self._container = None
        finally:
            self._lock.release()
            if not self.committed:
                remove_created(self._created)

    def __enter__(self) -> AtomicDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()


# --------------------------------------------------------------------------- files


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
    (root / MANIFEST).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


__all__ = [
    "MANIFEST",
    "AtomicDir",
    "DirLock",
    "OutputError",
    "check_replaceable",
    "output_path",
    "park",
    "pid_alive",
    "read_metadata",
    "remove_created",
    "sweep",
    "writable_parent",
    "write_manifest",
    "write_table",
]

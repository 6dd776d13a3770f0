"""The document layer: how every document cvj reads becomes a frozen, typed object.

Scenario files, study files and the marketer's settings are documents: TOML read into
plain data (:func:`read_toml`), validated once, at the edge, by a pydantic model built
on :class:`Strict` (unknown keys are errors, types are strict, the result is frozen),
with dotted-path overrides (:func:`apply_overrides`). Every failure is a
:class:`~cvj.errors.ScenarioError` that names the key path as written in the document
(``channels.search_ads.daily_budget``), the value and what was expected; the one
translator from pydantic's errors is :func:`translate`.

Two rules live here so that every document kind shares them:

- :data:`Name` is the type of every user-given name (segments, channels, upsells,
  study variants): the rule for names is enforced where this type is defined;
- :func:`read_text` is the one place a document file is opened, so every check on the
  file itself (a regular file, at most :data:`MAX_DOCUMENT_BYTES`) applies to every kind.
"""

from __future__ import annotations

import copy
import os
import stat
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ScenarioError
from .names import Label, Name

M = TypeVar("M", bound=BaseModel)

#: A document file is read whole into memory: anything larger is not a scenario,
#: study or calibration file (the bundled ones are a few KiB)
MAX_DOCUMENT_BYTES = 1 << 20

# ``Name`` is the type of a user-given name (a key of ``segments``, ``channels``,
# ``offers.upsells``, a study's ``variants``) and ``Label`` that of shown free text (a
# document's ``name``, an offer's name, the currency): the rules are in cvj.names


class Strict(BaseModel):
    """Base of every document model: unknown keys are errors, types are strict (no
    ``"5"`` for 5), and a validated document is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class At(ValueError):
    """Raise inside a model validator to point at a key path other than the validator's
    own (a check across fields names the field at fault)."""

    def __init__(self, path: str, value: Any, message: str):
        super().__init__(message)
        self.path, self.value, self.message = path, value, message


# --------------------------------------------------------------------------- reading


def read_text(path: Path) -> str:
    """The text of a document file, or a ScenarioError saying why it cannot be read.

    Only a regular file of at most :data:`MAX_DOCUMENT_BYTES` in UTF-8 is read: a device
    (``/dev/zero``, ``/dev/urandom``), a named pipe or a socket is refused before it is
    read from, so nothing can hang or fill the memory.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ScenarioError(f"no such file: {path}") from None
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_file(path, st)
    try:
        # O_NONBLOCK: if the path was swapped for a pipe since the stat, opening it
        # must not wait for a writer; fstat below then refuses it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        _check_file(path, os.fstat(fd))
        try:
            data = f.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:  # a file that grew, or one whose size the system does not report
        raise ScenarioError(f"{path} is larger than {MAX_DOCUMENT_BYTES >> 20} MiB; a document file is at most that")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _check_file(path: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ScenarioError(f"{path} is a directory, not a document file")
    if not stat.S_ISREG(st.st_mode):
        raise ScenarioError(f"{path} is not a regular file (a device, a pipe or a socket); give a document file")
    if st.st_size > MAX_DOCUMENT_BYTES:
        raise ScenarioError(
            f"{path} is {st.st_size:,} bytes; a document file is at most {MAX_DOCUMENT_BYTES >> 20} MiB"
        )


def read_toml(path: str | os.PathLike) -> dict:
    """Read a TOML document into plain data; every failure is a ScenarioError."""
    p = Path(path)
    text = read_text(p)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"malformed TOML: {exc}", source=str(p)) from None


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"offers": {"entry": {"price": 0}}}`` -> ``{"offers.entry.price": 0}``."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def apply_overrides(raw: dict, overrides: dict[str, Any] | None, *, must_exist: bool = False) -> dict:
    """Return a copy of ``raw`` with dotted-path overrides applied (``market.seed = 3``).

    With ``must_exist`` every path has to name a key that the document (after
    defaults) already has, so a typo in a study is an error rather than a new key.
    """
    out = copy.deepcopy(raw)
    for path, value in (overrides or {}).items():
        keys = path.split(".")
        node = out
        for i, key in enumerate(keys[:-1]):
            if not isinstance(node, dict):
                raise ScenarioError("is not a table", ".".join(keys[: i + 1]))
            if key not in node:
                if must_exist:
                    raise ScenarioError("no such field in the scenario", ".".join(keys[: i + 1]))
                node[key] = {}
            node = node[key]
        if not isinstance(node, dict):
            raise ScenarioError("is not a table", ".".join(keys[:-1]))
        if must_exist and keys[-1] not in node:
            raise ScenarioError("no such field in the scenario", path, value)
        node[keys[-1]] = value
    return out


# --------------------------------------------------------------------------- validating


def validate(
    model: type[M],
    raw: Any,
    *,
    kind: str,
    source: str | None = None,
    format: int | None = None,
    labels: dict[str, str] | None = None,
) -> M:
    """Validate plain data into ``model``; every failure is one :class:`ScenarioError`.

    Parameters
    ----------
    model : subclass of Strict
    raw : object
        The document as plain data (as :func:`read_toml` returns it).
    kind : str
        What the document is (``"scenario"``, ``"study"``, ``"marketer"``), for messages.
    source : str, optional
        The file it came from, put in front of every message.
    format : int, optional
        The format version the document must declare as ``format = N`` (checked first,
        so a document of another format gets that error, not a list of unknown keys).
    labels : dict, optional
        Words for the discriminators of tagged unions, e.g. ``{"pricing": "pricing model"}``.
    """
    if not isinstance(raw, dict):
        raise ScenarioError(f"a {kind} must be a table of keys", source=source)
    if format is not None and "format" not in raw:
        raise ScenarioError(f"required key is missing (write format = {format} at the top)", "format", None, source)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise translate(exc, raw, kind=kind, source=source, format=format, labels=labels) from None


def translate(
    exc: ValidationError,
    raw: Any,
    *,
    kind: str,
    source: str | None = None,
    format: int | None = None,
    labels: dict[str, str] | None = None,
) -> ScenarioError:
    """The first of pydantic's errors as a :class:`ScenarioError` with the key path as
    written in ``raw`` and the offending value (see :func:`validate`)."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    more = len(errors) - 1
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), At):
        at = ctx["error"]
        return ScenarioError(_more(at.message, more), at.path, at.value, source)
    kind_of = err["type"]
    path = key_path(raw, err["loc"], keep_last=kind_of == "missing")
    value = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    if kind_of == "extra_forbidden":
        part = f"{kind} format {format}" if format is not None else f"the {kind} table"
        msg = f"unknown key (not part of {part}; check the spelling)"
    elif kind_of == "missing":
        return ScenarioError(_more("required key is missing", more), path, None, source)
    elif kind_of in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "")).strip("'")
        expected = ", ".join(t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(","))
        what = (labels or {}).get(tag, tag)
        path = f"{path}.{tag}" if path else tag
        if kind_of == "union_tag_not_found":
            return ScenarioError(_more(f"required key is missing (the {what}: one of {expected})", more), path, None, source)
        msg = f"unknown {what}; expected one of {expected}"
        value = value.get(tag) if isinstance(value, dict) else value
    elif kind_of == "literal_error" and path == "format" and format is not None:
        msg = f"unsupported {kind} format; this program reads format = {format}"
    return ScenarioError(_more(msg, more), path, value, source)


def key_path(raw: Any, loc: tuple, keep_last: bool = False) -> str:
    """The dotted key path of a pydantic error location, as written in the document.

    pydantic puts things into a location that are not keys of the document (the tag of
    a tagged-union member, ``[key]`` for a bad mapping key, validator names); walking
    the document along the location keeps only the real keys. The last item is kept
    even when absent if ``keep_last`` (a missing key).
    """
    parts: list[str] = []
    node = raw
    for i, item in enumerate(loc):
        if isinstance(node, dict) and item in node:
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            node = node[item]
        elif keep_last and i == len(loc) - 1:
            node = None
        else:
            continue
        parts.append(str(item))
    return ".".join(parts)


def _more(msg: str, more: int) -> str:
    return f"{msg} (and {more} more problem{'s' if more > 1 else ''})" if more else msg


__all__ = [
    "MAX_DOCUMENT_BYTES",
    "At",
    "Label",
    "Name",
    "Strict",
    "apply_overrides",
    "flatten",
    "key_path",
    "read_text",
    "read_toml",
    "translate",
    "validate",
]

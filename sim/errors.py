"""The errors cvj raises on purpose: one family under :class:`CvjError`.

Every member carries the message, and where it helps the key path of the offending
field (``channels.search_ads.daily_budget``), its value and the file it came from, so
a caller (the CLI, a notebook, a service) can show one line or point at the field::

    CvjError                  anything cvj refuses or cannot do, with .path and .value
    ├── ScenarioError         a document (scenario, study, marketer, override) is invalid
    ├── ArgumentError         an argument of a library call is invalid
    ├── ResourceError         the machine cannot do it (memory, threads)
    ├── OutputError           the output location cannot be used
    └── ClusterError          the Dask cluster cannot run it (a runtime failure)

The CLI (:mod:`cvj.cli`) maps the family to exit statuses in one place: a user's
error (the first four) exits 2, a runtime failure of the cluster exits 1.
Bugs are not in the family: they keep their own exception types and tracebacks.
"""

from __future__ import annotations

import json
from typing import Any

from .names import escape


def short_repr(value: Any, limit: int = 80) -> str:
    """``value`` as JSON, cut to ``limit``; letters of any script are kept and every
    non-printable character is escaped (:func:`cvj.names.escape`)."""
    text = escape(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CvjError(Exception):
    """Base of every error cvj raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong and, where it helps, what was expected.
    path : str, optional
        Dotted key path of the field at fault (``market.customers``).
    value : object, optional
        The offending value (shown as JSON).
    source : str, optional
        The file (or ``<json>``) the field came from.

    Attributes
    ----------
    reason : str
        ``message`` alone, without the path, value and source.
    """

    def __init__(self, message: str, path: str | None = None, value: Any = None, source: str | None = None):
        self.reason = message
        self.path = path or ""
        self.value = value
        self.source = source
        where = f"{source}: " if source else ""
        if self.path:
            shown = f" = {short_repr(value)}" if value is not None else ""
            text = f"{where}{self.path}{shown}: {message}"
        else:
            text = f"{where}{message}"
        # the path and the source may hold a user's name or file name: one printable line
        super().__init__(escape(text))

    @property
    def message(self) -> str:
        """The whole one-line message (as ``str(exc)``), non-printable characters escaped."""
        return str(self)


class ScenarioError(CvjError, ValueError):
    """A document (scenario, study, marketer settings, an override) is malformed or
    inconsistent; ``path`` is the key path inside it."""


class ArgumentError(CvjError, ValueError):
    """An argument of a library call is invalid (a replication number, a variant name,
    a target half-width); ``path`` names the argument."""


class ResourceError(CvjError):
    """This machine cannot do what was asked: not enough memory for the population,
    more threads than it has."""


class OutputError(CvjError):
    """The output location cannot be used (exists, not writable, not a directory, held
    by another process)."""


class ClusterError(CvjError, RuntimeError):
    """The Dask cluster cannot run the study (unreachable, no workers, wrong cvj, workers
    dying, the cluster lost): a runtime failure, not an error in the input."""


__all__ = ["ArgumentError", "ClusterError", "CvjError", "OutputError", "ResourceError", "ScenarioError", "short_repr"]

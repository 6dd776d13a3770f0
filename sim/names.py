"""The one rule for names a user gives, and the one way user text is shown.

A *name* is what a scenario or study calls a segment, a channel, an upsell or a study
variant (and, as the model grows, offers and age bands). Names end up as dictionary
values in every table, in column names (``ltv_<segment>``), in directory names of a
study's output (``variant=<name>``) and on the terminal, so one rule holds for all of
them (:func:`check_name`):

- letters, combining marks and decimal digits of any script (``B2C``, ``عملاء_الجملة``,
  ``顧客``), and ``_``, ``-``, ``.``;
- single spaces between words (no leading, trailing or double space);
- 1 to :data:`NAME_MAX_CHARS` characters and at most :data:`NAME_MAX_BYTES` bytes of
  UTF-8 (so ``variant=<name>`` always fits in a file name);
- not ``.`` or ``..``.

Everything else is refused: control characters, invisible format characters (the
right-to-left override U+202E, zero-width joiners), line and paragraph separators,
``/`` and ``\\``, symbols and markup brackets.

Free text that is only shown (a scenario's or study's ``name``, an offer's name, the
currency) follows a looser rule (:func:`check_label`): any printable characters, at
most :data:`LABEL_MAX_CHARS`.

:func:`escape` is how every piece of user text is printed: printable characters
(Arabic, CJK, ``[`` ``]``) are kept as they are, everything else is written the way
:func:`repr` writes it (``\\x1b``, ``\\n``, ``\\u202e``), so a name can neither
recolour the terminal nor split a one-line message.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

NAME_MAX_CHARS = 64
#: bytes of UTF-8: ``variant=`` plus the name stays far below a file name's 255 bytes
NAME_MAX_BYTES = 192
LABEL_MAX_CHARS = 200
#: what a name may hold besides letters, marks and digits
NAME_PUNCTUATION = "_-. "
_NAME_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd"})
# words of non-space characters separated by single spaces; fullmatch, never `$`
# (which also matches before a final newline)
_SPACING = re.compile(r"[^ ]+(?: [^ ]+)*")


def escape(text: str) -> str:
    """``text`` with every non-printable character escaped as :func:`repr` escapes it.

    Printable characters of any script are kept (``عملاء`` stays ``عملاء``); control
    characters (``\\x1b``, ``\\n``), invisible format characters (``\\u202e``), line
    and paragraph separators, spaces other than U+0020 and lone surrogates (the
    undecodable bytes of a file name) become their escape sequence, so the result is
    one line that shows exactly what was given and sends nothing to the terminal.
    Markup such as ``[/]`` is not touched: print the result with markup off.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def name_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a name, or ``None`` if it is a valid name."""
    if not isinstance(value, str):
        return "a name must be a string"
    if not value:
        return "a name cannot be empty"
    if value in (".", ".."):
        return f"{value!r} cannot be a name"
    if len(value) > NAME_MAX_CHARS:
        return f"a name has at most {NAME_MAX_CHARS} characters, this one has {len(value)}"
    if len(value.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
        return f"a name has at most {NAME_MAX_BYTES} bytes of UTF-8"
    for c in value:
        if c not in NAME_PUNCTUATION and unicodedata.category(c) not in _NAME_CATEGORIES:
            return f"a name cannot hold {_describe(c)}; {RULE}"
    if not _SPACING.fullmatch(value):
        return "a name cannot start or end with a space or hold two spaces in a row"
    return None


RULE = "names hold letters, digits and marks of any script, '_', '-', '.' and single inner spaces"


def check_name(value: str) -> str:
    """Return ``value`` if it is a valid name (see the module docstring).

    Raises
    ------
    ValueError
        Saying what is wrong (pydantic turns it into an error at the key's path).
    """
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_label(value: str) -> str:
    """Return ``value`` if it is acceptable free text that is shown (a scenario's
    ``name``, the currency): printable characters only, at most
    :data:`LABEL_MAX_CHARS`.

    Raises
    ------
    ValueError
    """
    if len(value) > LABEL_MAX_CHARS:
        raise ValueError(f"at most {LABEL_MAX_CHARS} characters, this text has {len(value)}")
    for c in value:
        if not c.isprintable():
            raise ValueError(f"cannot hold {_describe(c)}; only printable characters are allowed")
    return value


def _describe(c: str) -> str:
    """A character by code point and Unicode name: ``U+202E RIGHT-TO-LEFT OVERRIDE``,
    ``U+002F SOLIDUS '/'``, ``U+001B (a control character)``."""
    name = unicodedata.name(c, "")
    if not name:
        return f"U+{ord(c):04X} (a {'control' if unicodedata.category(c) == 'Cc' else 'non-printable'} character)"
    return f"U+{ord(c):04X} {name}" + (f" {c!r}" if c.isprintable() else "")


#: a name in a pydantic model (a dict key or a field): checked by :func:`check_name`
Name = Annotated[str, AfterValidator(check_name)]
#: shown free text in a pydantic model: checked by :func:`check_label`
Label = Annotated[str, AfterValidator(check_label)]

__all__ = [
    "LABEL_MAX_CHARS",
    "NAME_MAX_BYTES",
    "NAME_MAX_CHARS",
    "RULE",
    "Label",
    "Name",
    "check_label",
    "check_name",
    "escape",
    "name_problem",
]

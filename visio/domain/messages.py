"""Sentences as data: a message id from the catalogue and its parameters.

The domain and the services never hold a finished sentence; they hold a ``Message``
that ``visio.i18n`` renders in the reader's language at the edge (API, pages, mails).
The ``_`` constructor is also the marker Babel's extractor looks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Union

#: What a parameter may be: rendered as is, or formatted for the reader's language
#: (an aware datetime in its own zone, a date, a wall-clock time, a nested message).
Param = Union[str, int, float, date, datetime, time, "Message", "Plain"]


@dataclass(frozen=True, slots=True)
class Plain:
    """A value shown as it is in every language (a proper name, a code)."""

    text: str


@dataclass(frozen=True, slots=True)
class Message:
    """A catalogue message id (English source text) and the values it names."""

    msgid: str
    params: Mapping[str, Param] = field(default_factory=lambda: MappingProxyType({}))

    def english(self) -> str:
        """The English source with raw parameters (for logs and tests only)."""
        return self.msgid.format_map({k: _raw(v) for k, v in self.params.items()})


def _raw(value: Param) -> str:
    if isinstance(value, Message):
        return value.english()
    if isinstance(value, Plain):
        return value.text
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _(msgid: str, /, **params: Param) -> Message:
    """Build a message; ``msgid`` is the English source text with ``{name}`` fields."""
    return Message(msgid, MappingProxyType(dict(params)))


def N_(msgid: str, /) -> str:
    """Mark a constant for extraction; it is translated where it is rendered."""
    return msgid

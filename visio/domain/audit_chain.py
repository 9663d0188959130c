"""The audit trail's hash chain: the canonical bytes of an entry, and checking a chain.

Each entry carries ``prev_hash``, the hash of the entry before it (``GENESIS`` for the
first), and ``hash``, the SHA-256 (hex) of its canonical bytes:

    UTF-8 of the JSON array
      [id, at, actor_id, actor_kind, action, appointment_id, target_kind, target_id,
       site_id, request_id, detail, prev_hash]
    with ``at`` written "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC, microseconds), absent values
    as null, objects with sorted keys, no spaces (separators "," and ":"), non-ASCII
    characters as themselves (not escaped).

The order of the chain is carried by ``prev_hash`` alone; ``seq`` (1, 2, 3 ...) is the
position it was appended at, so that readers can walk it in order. A chain head (the last
``seq`` and ``hash``) is kept beside it, so that entries cut off its end are noticed too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Link:
    """What the hash covers, as stored."""

    id: str
    at: datetime
    actor_id: str | None
    actor_kind: str | None
    action: str
    appointment_id: str | None
    target_kind: str | None
    target_id: str | None
    site_id: str | None
    request_id: str | None
    detail: Mapping[str, Any]
    prev_hash: str


def instant(at: datetime) -> str:
    """The canonical text of an instant (UTC, microseconds, a Z)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetimes are never hashed")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(link: Link) -> bytes:
    """The bytes an entry's hash is taken of (see the module's documentation)."""
    document = [link.id, instant(link.at), link.actor_id, link.actor_kind, link.action,
                link.appointment_id, link.target_kind, link.target_id, link.site_id,
                link.request_id, dict(link.detail), link.prev_hash]
    return json.dumps(document, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def digest(link: Link) -> str:
    """SHA-256 (64 hex digits) of the entry's canonical bytes."""
    return hashlib.sha256(canonical(link)).hexdigest()

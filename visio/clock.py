"""The one source of the current instant."""

from __future__ import annotations

from datetime import UTC, datetime

from visio.domain.instants import require_aware


def utcnow() -> datetime:
    """Return the current instant as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def ensure_aware_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC; refuse naive datetimes (see ``require_aware``)."""
    return require_aware(value, "datetime")

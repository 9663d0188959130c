"""Aware instants: the one check that a datetime carries its offset, and its UTC form."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["require_aware"]


def require_aware(value: datetime, what: str) -> datetime:
    """Return ``value`` in UTC; raise ValueError naming ``what`` if it has no offset."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)

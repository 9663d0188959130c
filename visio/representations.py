"""JSON shapes of the API's resources (plain dicts; no web framework here)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from visio import models as m
from visio.domain.slots import Slot


def wall_clock(value: time) -> str:
    """A wall-clock time as HH:MM."""
    return value.strftime("%H:%M")


def instant(value: datetime, zone: str) -> str:
    """RFC 3339 with the offset of ``zone`` (the wall clock people at the site read)."""
    return value.astimezone(ZoneInfo(zone)).isoformat()


def appointment(a: m.Appointment, zone: str) -> dict[str, Any]:
    """An appointment as the API returns it."""
    return {
        "id": a.id,
        "status": a.status,
        "start": instant(a.start, zone),
        "end": instant(a.end, zone),
        "site_id": a.site_id,
        "stop_id": a.stop_id,
        "booth": a.booth,
        "operator_id": a.operator_id,
        "desk_id": a.desk_id,
        "staff_id": a.staff_id,
        "service_id": a.service_id,
        "theme": a.theme,
        "usager": {
            "first_name": a.usager_first_name,
            "last_name": a.usager_last_name,
            "phone": a.usager_phone,
            "email": a.usager_email,
            "language": a.usager_language,
            "consent": a.usager_consent,
        },
        "version": a.version,
        "created_at": a.created_at.isoformat(),
        "updated_at": a.updated_at.isoformat(),
        "cancel_reason": a.cancel_reason,
    }


def slot(s: Slot, zone: str) -> dict[str, Any]:
    """A free slot as the API returns it."""
    return {
        "start": instant(s.start, zone),
        "end": instant(s.end, zone),
        "operator_id": s.operator_id,
        "desk_id": s.desk_id,
        "staff_id": s.staff_id,
        "service_id": s.service_id,
        "stop_id": s.stop_id,
    }

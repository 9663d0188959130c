"""Closing the calls of changed appointments, after their change has committed."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from signaling import close_room
from visio.keys import signaling_app_key


async def close_rooms(request: web.Request, appointment_ids: Iterable[str],
                      reason: str) -> None:
    """Send ``room_closed`` (``cancelled`` or ``rescheduled``) to these rooms everywhere."""
    for appointment_id in appointment_ids:
        await close_room(request.app[signaling_app_key], appointment_id, reason)

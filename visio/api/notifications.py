"""An appointment's notifications and their outcomes."""

from __future__ import annotations

from aiohttp import web

from visio.api import codec
from visio.api.context import caller
from visio.contract import bodies as api
from visio.keys import database_key
from visio.services import outbox


async def list_notifications(request: web.Request) -> web.Response:
    """Every message of the appointment: to whom, when due, and what happened."""
    principal = await caller(request)
    appointment_id = codec.path_id(request)
    rows = await outbox.notifications(db=request.app[database_key], principal=principal,
                                      appointment_id=appointment_id)
    return codec.respond(api.Notifications(appointment_id=appointment_id, items=[
        api.Notification(
            id=r.id, appointment_version=r.appointment_version,
            kind=r.kind,  # type: ignore[arg-type]
            channel=r.channel,  # type: ignore[arg-type]
            audience=r.audience,  # type: ignore[arg-type]
            recipient=r.recipient, language=r.language, due_at=r.due_at,
            status=r.status,  # type: ignore[arg-type]
            attempts=r.attempts, last_error=r.last_error, provider_reference=r.provider_ref,
            finished_at=r.finished_at) for r in rows]))

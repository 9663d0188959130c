"""Calendars at the edge: an appointment's invitation, agenda feeds, imported calendars."""

from __future__ import annotations

from aiohttp import web

from visio.api import codec
from visio.api.context import caller
from visio.i18n import negotiate
from visio.invitations import invitation_ics, load_invitation_facts
from visio.keys import clock_key, database_key, settings_key
from visio.services import appointments

CALENDAR = "text/calendar"


def ics_response(body: bytes, *, filename: str, headers: dict[str, str] | None = None,
                 language: str | None = None) -> web.Response:
    """A text/calendar answer, offered as a file named ``filename``."""
    response = web.Response(body=body, content_type=CALENDAR, charset="utf-8",
                            headers=headers)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if language:
        response.headers["Content-Language"] = language
    return response


async def invitation(request: web.Request) -> web.Response:
    """The appointment's iTIP object: REQUEST while it holds, CANCEL once cancelled."""
    principal = await caller(request)
    appointment_id = codec.path_id(request)
    db = request.app[database_key]
    settings = request.app[settings_key]
    # The access check: out of scope reads as absent.
    await appointments.get_appointment(db=db, principal=principal,
                                       appointment_id=appointment_id)
    facts = await load_invitation_facts(db=db, appointment_id=appointment_id,
                                        base_url=settings.base_url)
    language = negotiate(request.headers.get("Accept-Language"))
    body = invitation_ics(
        facts=facts, method="CANCEL" if facts.status == "cancelled" else "REQUEST",
        language=language, organizer=settings.mail_from, dtstamp=request.app[clock_key]())
    return ics_response(body, filename="invite.ics", language=language)

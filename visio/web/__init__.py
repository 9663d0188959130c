"""The pages people use, served by visio itself at the API's origin (no build step)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from visio.calendars.invitations import CALL_PAGE
from visio.errors import NotAuthenticated, VisioError
from visio.keys import templates_key
from visio.web import (
    agenda,
    appointments,
    audit,
    auth,
    availability,
    booking,
    call,
    figures,
    live,
    passwords,
    proconnect,
    webhooks,
)
from visio.web.common import refusal_page
from visio.web.render import environment

STATIC = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page(handler: Handler) -> Handler:
    """Refusals on a page are a sentence on a page; no session goes to the login."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except NotAuthenticated:
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}") from None
        except VisioError as err:
            return await refusal_page(request, err)

    return wrapped


def mount_pages(app: web.Application) -> None:
    """The pages, their scripts' endpoints and the static files."""
    app[templates_key] = environment()
    p = _page
    app.router.add_routes([
        web.get("/", p(auth.home)),
        web.get("/login", p(auth.login_page)),
        web.post("/login", p(auth.login)),
        web.post("/logout", p(auth.logout)),
        web.get("/lang", p(auth.choose_language)),
        web.get("/login/proconnect", p(proconnect.begin)),
        web.get("/login/proconnect/callback", p(proconnect.callback)),
        web.get("/password/forgot", p(passwords.forgot_page)),
        web.post("/password/forgot", p(passwords.forgot)),
        web.get("/password/new", p(passwords.new_page)),
        web.post("/password/new", p(passwords.choose)),
        web.get("/agent/book", p(booking.booking_page)),
        web.post("/agent/book", p(booking.book)),
        web.get("/agent/appointments", p(appointments.list_page)),
        web.get("/agent/appointments/{id}", p(appointments.appointment_page)),
        web.post("/agent/appointments/{id}/usager", p(appointments.correct)),
        web.post("/agent/appointments/{id}/cancel", p(appointments.cancel)),
        web.post("/agent/appointments/{id}/outcome", p(appointments.set_outcome)),
        web.post("/agent/appointments/{id}/resend", p(appointments.resend)),
        web.get("/agent/appointments/{id}/reschedule", p(appointments.move_page)),
        web.post("/agent/appointments/{id}/reschedule", p(appointments.move)),
        web.get("/agent/appointments/{id}/convocation", p(booking.convocation)),
        web.get("/agent/today", p(agenda.today)),
        web.post("/agent/appointments/{id}/seen", p(agenda.cancellation_seen)),
        web.get("/staff/agenda", p(agenda.staff_agenda)),
        web.get("/staff/availability", p(availability.availability_page)),
        web.post("/staff/feeds", p(availability.create_feed)),
        web.post("/staff/feeds/{id}/revoke", p(availability.revoke_feed)),
        web.post("/staff/calendars", p(availability.import_calendar)),
        web.post("/staff/calendars/{id}/remove", p(availability.remove_calendar)),
        web.get("/network/figures", p(figures.figures_page)),
        web.get("/network/figures.csv", p(figures.figures_csv)),
        web.get("/network/appointments.csv", p(figures.appointments_csv)),
        web.get("/network/figures/{name}.svg", p(figures.chart)),
        web.get("/network/audit", p(audit.audit_page)),
        web.get("/network/audit.csv", p(audit.audit_csv)),
        web.get("/admin/operators/{id}/webhooks", p(webhooks.webhooks_page)),
        web.get(CALL_PAGE, p(call.call_page)),
        web.post("/web/appointments/{id}/join", live.join),
        web.post("/web/test-calls", live.test_call),
        web.get("/web/presence", live.presence),
        web.get("/web/phone", live.check_phone),
        web.get("/web/availability", live.get_availability),
        web.put("/web/availability", live.put_availability),
        web.static("/static", STATIC),
    ])

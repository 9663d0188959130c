"""The usager's page (``/u/{token}``) and the printable convocation.

The link's pages are rendered by the pages' templates (``visio/web``: the same layout,
style sheet and language switch), in the usager's language until they choose another,
readable when printed. The link is not a login: it shows one appointment and lets its
usager cancel it: a second page asks for confirmation, then the cancel is the same use
case as everyone's (``changes.cancel``: messages, the staff member's CANCEL, the call
closed, ``cancelled_by`` usager), and the page says how to book again. A wrong or
expired token gets a plain explanation and nothing else. The cancel form carries a CSRF
field bound to the token (HMAC), and the pages forbid framing, indexing and referrers.
The convocation, printed by the agent, is one self-contained page (inline CSS, no script).
"""

from __future__ import annotations

import contextlib
import hmac
import html
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from visio.access import Principal, usager_may_cancel
from visio.api import codec
from visio.api.context import caller
from visio.calendars.invitations import load_invitation_facts, usager_ics
from visio.db import Database
from visio.domain.messages import Message, Plain, _
from visio.errors import Conflict
from visio.i18n import LANGUAGES, catalogue
from visio.keys import clock_key, database_key, rooms_key, settings_key
from visio.notify.compose import BRING, Facts, advice, load_facts
from visio.services import appointments, changes
from visio.usager_link import LinkKey
from visio.web import session
from visio.web.render import render

STYLE = """
body{font:1.1rem/1.5 system-ui,sans-serif;color:#161616;background:#fff;margin:0}
main{max-width:40rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:0 0 1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.5rem 1rem;margin:0 0 1.5rem}
dt{font-weight:700}dd{margin:0}
a{color:#000091}
.actions{display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
.button{display:inline-block;padding:.6rem 1.2rem;border:2px solid #000091;border-radius:4px;
 background:#000091;color:#fff;font:inherit;text-decoration:none;cursor:pointer}
.button.secondary{background:#fff;color:#000091}
.notice{padding:1rem;border-left:4px solid #000091;background:#f0f0ff}
:focus-visible{outline:3px solid #ce0500;outline-offset:2px}
@media print{.actions,form,.noprint{display:none}body{font-size:12pt}
 main{max-width:none;padding:0}a{color:#000;text-decoration:none}}
"""
CANCELLED = _("This video appointment is cancelled.")
#: Every answer of the link (the pages keep the pages' own content security policy).
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}
#: The convocation's policy: its style is inline, it has no script.
CONVOCATION_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                   "frame-ancestors 'none'")


def _page(language: str, title: str, body: str, *, status: int = 200) -> web.Response:
    document = (f'<!doctype html><html lang="{html.escape(language)}"><head>'
                '<meta charset="utf-8"><meta name="viewport" '
                'content="width=device-width,initial-scale=1">'
                f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
                f"<body><main>{body}</main></body></html>")
    return web.Response(text=document, content_type="text/html", status=status,
                        headers={**HEADERS, "Content-Security-Policy": CONVOCATION_CSP,
                                 "Content-Language": language})


def _details(facts: Facts, language: str) -> str:
    return "<dl>" + "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>"
                            for label, value in _rows(facts, language)) + "</dl>"


def _paragraphs(language: str, messages: Sequence[Message]) -> str:
    cat = catalogue(language)
    return "".join(f"<p>{html.escape(cat.render(m))}</p>" for m in messages)


def _rows(facts: Facts, language: str) -> list[tuple[str, str]]:
    """The appointment's facts as (label, value) sentences in ``language``."""
    cat = catalogue(language)
    rows: list[tuple[Message, str]] = [
        (_("Date and time"), cat.format_value(facts.start)),
        (_("Place"), facts.where(language)),
        (_("With"), facts.operator),
        (_("Subject"), facts.theme(language)),
        (_("What to bring"), cat.render(BRING)),
    ]
    if facts.site_phone:
        rows.append((_("Phone number of the desk"), facts.site_phone))
    return [(cat.render(label), value) for label, value in rows]


def _link_page(request: web.Request, template: str, *, status: int = 200,
               lang: str | None = None, **context: Any) -> web.Response:
    """A page of the usager's link in the pages' look, with the link's stricter headers."""
    response = render(request, template, status=status, lang=lang, **context)
    response.headers.update(HEADERS)
    return response


def _language(request: web.Request, default: str | None = None) -> str:
    """The language chosen with the switch, else ``default``, else the browser's."""
    chosen = request.cookies.get(session.LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    if default is not None and default in LANGUAGES:
        return default
    return session.language(request)


def _problem(request: web.Request, message: Message, *, status: int,
             default: str | None = None) -> web.Response:
    """A plain explanation and nothing else."""
    language = _language(request, default)
    return _link_page(request, "usager_problem.html", status=status, lang=language,
                      message=catalogue(language).render(message))


def _invalid(request: web.Request) -> web.Response:
    return _problem(request, _(
        "This link is wrong or has expired (it stops working when the appointment ends). "
        "For any question, contact your France Services desk."), status=404)


def _key(request: web.Request) -> LinkKey:
    return LinkKey.from_secret(request.app[settings_key].secret_key)


async def _facts_for(request: web.Request) -> tuple[str, Facts] | None:
    token = request.match_info["token"]
    appointment_id = _key(request).verify(token, request.app[clock_key]())
    if appointment_id is None:
        return None
    facts = await load_facts(db=request.app[database_key], appointment_id=appointment_id)
    return (token, facts) if facts is not None else None


async def usager_page(request: web.Request) -> web.Response:
    """The usager's appointment: when, where, what to bring, add to calendar, cancel.

    In the usager's language until they choose another with the pages' language switch.
    """
    found = await _facts_for(request)
    if found is None:
        return _invalid(request)
    token, facts = found
    language = _language(request, facts.usager_language)
    booked = facts.status == "booked"
    said = [catalogue(language).render(sentence) for sentence in advice(facts)]
    return _link_page(request, "usager.html", lang=language, token=token,
                      details=_rows(facts, language), advice=said,
                      cancelled=facts.status == "cancelled",
                      booked=booked, can_cancel=_can_cancel(request, facts),
                      site_phone=facts.site_phone)


def _can_cancel(request: web.Request, facts: Facts) -> bool:
    return usager_may_cancel(status=facts.status, start=facts.start,
                             now=request.app[clock_key]())


async def usager_cancel_page(request: web.Request) -> web.Response:
    """The confirmation step: the appointment again, "yes, cancel" or "keep it"."""
    found = await _facts_for(request)
    if found is None:
        return _invalid(request)
    token, facts = found
    if not _can_cancel(request, facts):
        raise web.HTTPSeeOther(f"/u/{token}")
    language = _language(request, facts.usager_language)
    return _link_page(request, "usager_cancel.html", lang=language, token=token,
                      details=_rows(facts, language), link_csrf=_key(request).csrf(token))


async def usager_calendar(request: web.Request) -> web.Response:
    """The appointment as an .ics file for the usager's own calendar."""
    found = await _facts_for(request)
    if found is None:
        return _invalid(request)
    _token, facts = found
    settings = request.app[settings_key]
    invitation = await load_invitation_facts(db=request.app[database_key],
                                             appointment_id=facts.appointment_id,
                                             base_url=settings.base_url)
    body = usager_ics(facts=invitation, language=facts.usager_language,
                      organizer=settings.mail_from, dtstamp=request.app[clock_key]())
    return web.Response(body=body, content_type="text/calendar", charset="utf-8", headers={
        **HEADERS, "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": 'attachment; filename="rendez-vous.ics"'})


async def usager_cancel(request: web.Request) -> web.Response:
    """Cancel from the link's form (CSRF field bound to the token), then show the page."""
    found = await _facts_for(request)
    if found is None:
        return _invalid(request)
    token, facts = found
    form = await request.post()
    if not hmac.compare_digest(str(form.get("csrf", "")), _key(request).csrf(token)):
        return _problem(request, _("The form was not sent from your appointment's page; "
                                   "nothing was changed."),
                        status=403, default=facts.usager_language)
    # Already cancelled, or begun (a second click, an old page): the page says where it is.
    with contextlib.suppress(Conflict):
        await changes.cancel(
            db=request.app[database_key], principal=changes.UsagerLink(facts.appointment_id),
            appointment_id=facts.appointment_id, reason="usager", expected_version=None,
            now=request.app[clock_key](), rooms=request.app[rooms_key])
    raise web.HTTPSeeOther(f"/u/{token}")


async def convocation(request: web.Request) -> web.Response:
    """A printable convocation in the usager's language, for usagers with no phone or mail."""
    return await convocation_page(db=request.app[database_key],
                                  principal=await caller(request),
                                  appointment_id=codec.path_id(request))


async def convocation_page(*, db: Database, principal: Principal,
                           appointment_id: str) -> web.Response:
    """The convocation of an appointment the caller sees (the API's and the agent page's)."""
    await appointments.get_appointment(db=db, principal=principal,
                                       appointment_id=appointment_id)
    facts = await load_facts(db=db, appointment_id=appointment_id)
    assert facts is not None
    language = facts.usager_language
    cat = catalogue(language)
    title = cat.render(_("Video appointment convocation"))
    body = (f"<h1>{html.escape(title)}</h1>"
            + _paragraphs(language, [_("Usager: {first_name} {initial}.",
                                       first_name=Plain(facts.first_name),
                                       initial=Plain(facts.last_initial))])
            + _details(facts, language)
            + _paragraphs(language, advice(facts)))
    if facts.status == "cancelled":
        body += f'<p class="notice">{html.escape(cat.render(CANCELLED))}</p>'
    return _page(language, title, body)


def usager_routes() -> list[web.RouteDef]:
    """The usager's link pages (outside /api/v1: no bearer token, the link is the key)."""
    return [web.get("/u/{token}", usager_page),
            web.get("/u/{token}/calendar.ics", usager_calendar),
            web.get("/u/{token}/cancel", usager_cancel_page),
            web.post("/u/{token}/cancel", usager_cancel)]

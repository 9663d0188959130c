"""Calendars at the edge: an appointment's invitation, agenda feeds, imported calendars."""

from __future__ import annotations

import hashlib
import re

import msgspec
from aiohttp import web

from visio import models as m
from visio.api import codec
from visio.api.context import caller
from visio.calendars.invitations import invitation_ics, load_invitation_facts
from visio.contract import bodies as api
from visio.domain.kinds import Language
from visio.i18n import negotiate
from visio.keys import clock_key, database_key, settings_key
from visio.services import appointments, feeds, imported_calendars

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


# ---------------------------------------------------------------- agenda feeds

_TOKEN = re.compile(r"^([A-Za-z0-9_-]{20,100})\.ics$")


def _not_found() -> web.Response:
    # Unknown, revoked or malformed: the same bare 404, nothing to learn from it.
    return web.Response(status=404, text="Not Found", headers={"Cache-Control": "no-store"})


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


async def serve_feed(request: web.Request) -> web.Response:
    """GET /calendars/{token}.ics: the feed, or 304 when If-None-Match names it."""
    match = _TOKEN.match(request.match_info["name"])
    if match is None:
        return _not_found()
    settings = request.app[settings_key]
    body = await feeds.render_feed(
        db=request.app[database_key], token=match.group(1), now=request.app[clock_key](),
        base_url=settings.base_url, organizer=settings.mail_from)
    if body is None:
        return _not_found()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache",
               "Referrer-Policy": "no-referrer"}
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return ics_response(body, filename="agenda.ics", headers=headers)


def _feed(feed: m.CalendarFeed) -> api.Feed:
    return api.Feed(id=feed.id, scope=feed.scope, target_id=feed.target_id,  # type: ignore[arg-type]
                    language=Language(feed.language), created_at=feed.created_at)


async def create_feed(request: web.Request) -> web.Response:
    """A new agenda feed; its address is in this answer only."""
    principal = await caller(request)
    data = await codec.body(request, api.FeedCreate)
    created = await feeds.create_feed(
        db=request.app[database_key], principal=principal, scope=data.scope,
        target_id=data.id, language=negotiate(request.headers.get("Accept-Language")),
        now=request.app[clock_key]())
    feed = _feed(created.feed)
    url = request.app[settings_key].base_url + feeds.feed_path(created.token)
    return codec.respond(api.FeedCreated(**msgspec.structs.asdict(feed), url=url), status=201)


async def list_feeds(request: web.Request) -> web.Response:
    """The caller's agenda feeds, without their addresses."""
    principal = await caller(request)
    rows = await feeds.list_feeds(db=request.app[database_key], principal=principal)
    return codec.respond(api.Page(items=[_feed(f) for f in rows]))


async def revoke_feed(request: web.Request) -> web.Response:
    """Revoke an agenda feed: its address answers 404 from now on."""
    principal = await caller(request)
    await feeds.revoke_feed(db=request.app[database_key], principal=principal,
                            feed_id=codec.path_id(request), now=request.app[clock_key]())
    return web.Response(status=204)


# ---------------------------------------------------------------- imported calendars


def _imported(row: m.ImportedCalendar) -> api.ImportedCalendar:
    return api.ImportedCalendar(
        id=row.id, staff_id=row.staff_id, url=row.url,
        has_credentials=row.credentials is not None,
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at, last_attempt_at=row.last_attempt_at,
        last_success_at=row.last_success_at, last_error=row.last_error,
        busy_periods=row.busy_count)


async def import_calendar(request: web.Request) -> web.Response:
    """Register a staff member's calendar; the background job fetches it within a minute."""
    principal = await caller(request)
    data = await codec.body(request, api.CalendarImport)
    row = await imported_calendars.register(
        db=request.app[database_key], principal=principal,
        settings=request.app[settings_key], staff_id=codec.path_id(request), url=data.url,
        username=data.username, password=data.password, now=request.app[clock_key]())
    return codec.respond(_imported(row), status=201)


async def list_imported_calendars(request: web.Request) -> web.Response:
    """A staff member's imported calendars with their state (never their credentials)."""
    principal = await caller(request)
    rows = await imported_calendars.list_calendars(
        db=request.app[database_key], principal=principal, staff_id=codec.path_id(request))
    return codec.respond(api.Page(items=[_imported(r) for r in rows]))


async def remove_imported_calendar(request: web.Request) -> web.Response:
    """Remove an imported calendar and the busy time it brought."""
    principal = await caller(request)
    await imported_calendars.remove(
        db=request.app[database_key], principal=principal, staff_id=codec.path_id(request),
        calendar_id=codec.path_id(request, "calendar_id"))
    return web.Response(status=204)

"""The staff member's availability, agenda feeds and imported calendars."""

from __future__ import annotations

import msgspec
from aiohttp import web

from visio.api import codec
from visio.contract import bodies as api
from visio.domain.messages import _
from visio.errors import InvalidInput, VisioError
from visio.keys import (
    clock_key,
    database_key,
    settings_key,
)
from visio.services import (
    feeds,
    imported_calendars,
)
from visio.web import session
from visio.web.common import (
    signed_in,
    text,
)
from visio.web.render import render


async def availability_page(request: web.Request, *, feed_url: str | None = None,
                            error: str | None = None, status: int = 200) -> web.Response:
    """Weekly rules, closures and absences, edited in the page; feeds and calendars."""
    who = await signed_in(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    db = request.app[database_key]
    my_feeds = [f for f in await feeds.list_feeds(db=db, principal=who) if f.scope == "staff"]
    calendars = await imported_calendars.list_calendars(db=db, principal=who,
                                                        staff_id=who.staff_id)
    reasons = {c.id: text(request, imported_calendars.why_unread(c.last_error))
               for c in calendars if c.status == "error" and c.last_error}
    return render(request, "availability.html", who=who, status=status, feeds=my_feeds,
                  feed_url=feed_url, calendars=calendars, reasons=reasons, error=error)


async def create_feed(request: web.Request) -> web.Response:
    """A new feed of the staff member's appointments; its address is shown this once."""
    who = await signed_in(request)
    await session.checked_form(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    created = await feeds.create_feed(
        db=request.app[database_key], principal=who, scope="staff", target_id=who.staff_id,
        language=session.language(request), now=request.app[clock_key]())
    url = request.app[settings_key].base_url + feeds.feed_path(created.token)
    return await availability_page(request, feed_url=url)


async def revoke_feed(request: web.Request) -> web.Response:
    """Revoke one of the staff member's feeds."""
    who = await signed_in(request)
    await session.checked_form(request)
    await feeds.revoke_feed(db=request.app[database_key], principal=who,
                            feed_id=codec.path_id(request), now=request.app[clock_key]())
    raise web.HTTPSeeOther("/staff/availability#calendars")


async def import_calendar(request: web.Request) -> web.Response:
    """Register the staff member's own calendar (ICS or CalDAV) for its busy times."""
    who = await signed_in(request)
    form = await session.checked_form(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    raw = {"url": str(form.get("url", "")), "username": str(form.get("username", "")) or None,
           "password": str(form.get("password", "")) or None}
    try:
        try:
            data = msgspec.convert(raw, api.CalendarImport)
        except msgspec.ValidationError as err:
            refusal = codec._invalid(err)
            if refusal.extra.get("field") == "url":
                # A person reads what to paste, not the name of a field.
                raise InvalidInput(_("This is not a calendar address: paste the whole "
                                     "https:// address your calendar software gives."),
                                   extra={"field": "url"}) from err
            raise refusal from err
        codec.check_values(data)  # what the patterns cannot say, as for the API
        await imported_calendars.register(
            db=request.app[database_key], principal=who, settings=request.app[settings_key],
            staff_id=who.staff_id, url=data.url, username=data.username,
            password=data.password, now=request.app[clock_key]())
    except VisioError as err:
        return await availability_page(request, error=text(request, err.detail),
                                       status=err.status)
    raise web.HTTPSeeOther("/staff/availability#calendars")


async def remove_calendar(request: web.Request) -> web.Response:
    """Remove an imported calendar and the busy time it brought."""
    who = await signed_in(request)
    await session.checked_form(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    await imported_calendars.remove(db=request.app[database_key], principal=who,
                                    staff_id=who.staff_id,
                                    calendar_id=codec.path_id(request))
    raise web.HTTPSeeOther("/staff/availability#calendars")

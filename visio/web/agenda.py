"""The agent's day and the staff member's agenda."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from visio.access import Principal
from visio.api import codec
from visio.domain.messages import N_
from visio.keys import (
    clock_key,
    database_key,
)
from visio.services import (
    agenda,
    appointments,
    directory,
)
from visio.web import session
from visio.web.common import (
    PARIS,
    joinable,
    local_today,
    parse_day,
    signed_in,
    theme_label,
)
from visio.web.render import render

#: Who cancelled (appointments.cancelled_by) as Today says it; rows of before it: None.
CANCELLED_BY = {
    "agent": N_("Cancelled by the France Services agent"),
    "staff": N_("Cancelled by the operator"),
    "usager": N_("Cancelled by the usager"),
    "admin": N_("Cancelled by an administrator"),
    "closure": N_("Cancelled: the site or the desk is closed that day"),
}


async def _agent_zone(request: web.Request, who: Principal) -> str:
    """The zone of the agent's (first) site: "today" is the site's day, not UTC's."""
    sites = await directory.list_sites(db=request.app[database_key], principal=who,
                                       today=local_today(request))
    return sites[0].site.timezone if sites else PARIS


async def today(request: web.Request) -> web.Response:
    """A day's appointments at the agent's sites, cancelled ones struck through, with a
    Join button 15 min before; previous and next day, or any date."""
    who = await signed_in(request)
    zone = await _agent_zone(request, who)
    today_here = local_today(request, zone)
    day = parse_day(request.query.get("date"), today_here)
    tz = ZoneInfo(zone)
    items = await agenda.agenda(db=request.app[database_key], principal=who,
                                start=datetime.combine(day, time(0), tz),
                                end=datetime.combine(day + timedelta(days=1), time(0), tz),
                                with_cancelled=True)
    lang = session.language(request)
    messages = await agenda.usager_messages(db=request.app[database_key], principal=who,
                                            appointment_ids=[i.id for i in items])
    rows = [TodayRow(item=i, start=i.start.astimezone(ZoneInfo(i.zone)),
                     theme=theme_label(lang, i),
                     joinable=i.status != "cancelled" and joinable(request, i),
                     messages=[(msg, msg.due_at.astimezone(ZoneInfo(i.zone)))
                               for msg in messages.get(i.id, [])],
                     cancelled=CANCELLED_BY.get(i.cancelled_by or "", N_("Cancelled"))
                     if i.status == "cancelled" else "",
                     new_cancellation=(i.status == "cancelled" and i.cancelled_by == "usager"
                                       and i.cancel_seen_at is None))
            for i in items]
    return render(request, "today.html", who=who, day=day, rows=rows, today=today_here,
                  previous=day - timedelta(days=1), following=day + timedelta(days=1))


@dataclass(frozen=True, slots=True)
class TodayRow:
    """One appointment on Today (``cancelled``: who cancelled, in words to translate)."""

    item: agenda.AgendaItem
    start: datetime
    theme: str
    joinable: bool
    messages: list[tuple[agenda.UsagerMessage, datetime]]
    cancelled: str
    new_cancellation: bool


async def cancellation_seen(request: web.Request) -> web.Response:
    """The "seen" button of a usager's cancellation on Today: no longer new."""
    who = await signed_in(request)
    form = await session.checked_form(request)
    await appointments.mark_cancellation_seen(
        db=request.app[database_key], principal=who, appointment_id=codec.path_id(request),
        now=request.app[clock_key]())
    day = parse_day(str(form.get("date", "")), local_today(request))
    raise web.HTTPSeeOther(f"/agent/today?date={day.isoformat()}")


async def staff_agenda(request: web.Request) -> web.Response:
    """Day or week: first name, theme, site or stop; the usager's arrival, live; Join."""
    who = await signed_in(request)
    view = "week" if request.query.get("view") == "week" else "day"
    day = parse_day(request.query.get("date"), local_today(request))
    start_day = day - timedelta(days=day.weekday()) if view == "week" else day
    days = 7 if view == "week" else 1
    tz = ZoneInfo(PARIS)
    items = await agenda.agenda(db=request.app[database_key], principal=who,
                                start=datetime.combine(start_day, time(0), tz),
                                end=datetime.combine(start_day + timedelta(days=days),
                                                     time(0), tz))
    lang = session.language(request)
    by_day: dict[date, list[Any]] = {start_day + timedelta(days=n): [] for n in range(days)}
    for i in items:
        local = i.start.astimezone(ZoneInfo(i.zone))
        by_day.setdefault(local.date(), []).append(
            (i, local, theme_label(lang, i), joinable(request, i)))
    step = timedelta(days=days)
    return render(request, "agenda.html", who=who, view=view, day=day, by_day=by_day,
                  previous=start_day - step, following=start_day + step)

"""The agent's day and the staff member's agenda."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from visio.keys import (
    database_key,
)
from visio.services import (
    agenda,
)
from visio.web import session
from visio.web.common import (
    PARIS,
    join_early,
    join_opens,
    joinable,
    local_today,
    parse_day,
    signed_in,
    theme_label,
)
from visio.web.render import render


async def today(request: web.Request) -> web.Response:
    """The day's appointments at the agent's sites; Join says from when it is possible."""
    who = await signed_in(request)
    day = parse_day(request.query.get("date"), local_today(request))
    tz = ZoneInfo(PARIS)
    items = await agenda.agenda(db=request.app[database_key], principal=who,
                                start=datetime.combine(day, time(0), tz),
                                end=datetime.combine(day + timedelta(days=1), time(0), tz))
    lang = session.language(request)
    messages = await agenda.usager_messages(db=request.app[database_key], principal=who,
                                            appointment_ids=[i.id for i in items])
    rows = [(i, i.start.astimezone(ZoneInfo(i.zone)), theme_label(lang, i),
             joinable(request, i),
             [(msg, msg.due_at.astimezone(ZoneInfo(i.zone))) for msg in messages.get(i.id, [])])
            for i in items]
    return render(request, "today.html", who=who, day=day, rows=rows,
                  opens=_opening(request, items))


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
                  previous=start_day - step, following=start_day + step,
                  opens=_opening(request, items))


def _opening(request: web.Request, items: list[agenda.AgendaItem]) -> dict[str, datetime]:
    """When each call still to open may be joined (said in words next to Join)."""
    return {i.id: join_opens(request, i) for i in items if join_early(request, i)}

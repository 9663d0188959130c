"""The agent's day and the staff member's agenda."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from visio.access import Principal
from visio.api import codec
from visio.domain.kinds import Role
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
    join_early,
    join_opens,
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
                  previous=day - timedelta(days=1), following=day + timedelta(days=1),
                  opens=_opening(request, [r.item for r in rows if not r.cancelled]))


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


@dataclass(frozen=True, slots=True)
class Entry:
    """One appointment as the agenda shows it, in the site's wall-clock time."""

    item: agenda.AgendaItem
    start: datetime
    end: datetime
    theme: str
    joinable: bool


@dataclass(frozen=True, slots=True)
class Free:
    """A stretch of the staff member's free time, in their wall-clock time."""

    start: datetime
    end: datetime


def _week_grid(days: list[date], entries: dict[date, list[Entry]], free: dict[date, list[Free]],
               tz: ZoneInfo) -> list[tuple[int, list[list[Entry | Free]]]]:
    """Hours down, days across: what starts (or is free) in each hour of each day."""
    hours = {e.start.hour for d in days for e in entries[d]}
    for d in days:
        for f in free[d]:
            hours.update(range(f.start.hour, (f.end - timedelta(microseconds=1)).hour + 1))
    if not hours:
        hours = set(range(9, 17))
    grid = []
    for hour in range(min(hours), max(hours) + 1):
        row: list[list[Entry | Free]] = []
        for d in days:
            cell: list[Entry | Free] = [e for e in entries[d] if e.start.hour == hour]
            top = datetime.combine(d, time(hour), tz)
            for f in free[d]:
                start, end = max(f.start, top), min(f.end, top + timedelta(hours=1))
                if start < end:
                    cell.append(Free(start, end))
            cell.sort(key=lambda x: x.start)
            row.append(cell)
        grid.append((hour, row))
    return grid


async def staff_agenda(request: web.Request) -> web.Response:
    """Day or week: first name, theme, site or stop, end, the note; free time; Join."""
    who = await signed_in(request)
    view = "week" if request.query.get("view") == "week" else "day"
    db = request.app[database_key]
    zone, _unused = await agenda.free_time(db=db, principal=who, days=[], booked=[])
    day = parse_day(request.query.get("date"), local_today(request, zone))
    start_day = day - timedelta(days=day.weekday()) if view == "week" else day
    days = [start_day + timedelta(days=n) for n in range(7 if view == "week" else 1)]
    tz = ZoneInfo(zone)
    items = await agenda.agenda(db=db, principal=who,
                                start=datetime.combine(days[0], time(0), tz),
                                end=datetime.combine(days[-1] + timedelta(days=1), time(0), tz))
    lang = session.language(request)
    by_day: dict[date, list[Entry]] = {d: [] for d in days}
    for i in items:
        local = i.start.astimezone(ZoneInfo(i.zone))
        by_day.setdefault(local.date(), []).append(Entry(
            i, local, i.end.astimezone(ZoneInfo(i.zone)), theme_label(lang, i),
            joinable(request, i)))
    _zone, free_utc = await agenda.free_time(db=db, principal=who, days=days, booked=items)
    free = {d: [Free(f.start.astimezone(tz), f.end.astimezone(tz)) for f in spans]
            for d, spans in free_utc.items()}
    step = timedelta(days=len(days))
    return render(request, "agenda.html", who=who, view=view, day=day, by_day=by_day,
                  days=days, free=free, grid=_week_grid(days, by_day, free, tz) if view == "week"
                  else [], previous=start_day - step, following=start_day + step,
                  opens=_opening(request, items),
                  unlinked=who.role is Role.STAFF and who.staff_id is None)


def _opening(request: web.Request, items: list[agenda.AgendaItem]) -> dict[str, datetime]:
    """When each call still to open may be joined (said in words next to Join)."""
    return {i.id: join_opens(request, i) for i in items if join_early(request, i)}

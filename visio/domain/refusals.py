"""Why a start cannot be booked: ``check_start`` and its refusals, as catalogue messages.

``check_start`` reads the same views as ``search_slots``, so it refuses a start exactly
when the search would not offer it. Each refusal is a whole sentence per case (one per
country, one per weekday) so that translators never assemble pieces; dates, times and
counts are parameters that ``visio.i18n`` formats in the reader's language.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from visio.domain.calendars import DailyRange, HolidayCalendar
from visio.domain.instants import require_aware
from visio.domain.intervals import Interval
from visio.domain.messages import N_, Message, Param, Plain, _
from visio.domain.slot_types import ServiceRule, SiteCalendar, StaffCalendar
from visio.domain.views import StaffView, ViewCache, site_view, speaks, staff_view

__all__ = ["Refusal", "check_start"]

_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a start cannot be booked; ``conflict`` means "taken" (409) not "never" (422)."""

    code: str
    message: Message
    conflict: bool


def check_start(
    *,
    start: datetime,
    site: SiteCalendar,
    service: ServiceRule,
    staff: StaffCalendar,
    now: datetime,
    holidays: HolidayCalendar,
    language: str | None = None,
    stop_id: str | None = None,
) -> Refusal | None:
    """Return why ``search_slots`` would not offer ``start`` with ``staff``, or None."""
    if staff.operator_id != service.operator_id:
        raise ValueError(
            f"staff {staff.staff_id} works for {staff.operator_id}, "
            f"not for the service's operator {service.operator_id}"
        )
    start = require_aware(start, "start")
    now = require_aware(now, "now")
    end = start + service.duration
    cache = ViewCache(holidays)
    local = start.astimezone(ZoneInfo(site.zone))
    site_day = local.date()

    if start < now + service.notice:
        return Refusal("too_soon", _too_soon(service.notice, local), conflict=False)
    if start > now + service.horizon:
        return Refusal("too_far", _too_far(service.horizon, local), conflict=False)
    holiday = holidays.name(site.country, site_day)
    if holiday is not None:
        return Refusal("holiday", _site_holiday(site.country, site_day, holiday), conflict=False)

    span = Interval(start - 2 * _DAY, end + 2 * _DAY)
    venue = site_view(site, span, stop_id, cache)
    if not venue.admits(start, end):
        return Refusal("site_closed", _site_closed(site, local, end, stop_id), conflict=False)

    view = staff_view(staff, span, cache)
    if not view.available.covers_span(start, end):
        return Refusal(
            "outside_availability", _unavailable(view, start, end, holidays), conflict=False
        )

    step = service.grid_step
    grid = view.grid(step, cache)
    i = bisect_left(grid, start)
    if i == len(grid) or grid[i] != start:
        return Refusal("off_grid", _off_grid(view, start, step, local), conflict=False)

    if language is not None and not speaks(language, service, staff):
        return Refusal(
            "language",
            _(
                "Appointments in language {language} are not offered for this service "
                "with this advisor.",
                language=Plain(language),
            ),
            conflict=False,
        )
    if view.busy.overlaps_span(start, end + service.buffer_after):
        return Refusal(
            "staff_busy",
            _("The advisor already has an appointment around {start}.", start=local),
            conflict=True,
        )
    if venue.full.overlaps_span(start, end):
        if site.booths == 1:
            full = _("On {start}, the booth is already taken at the site.", start=local)
        else:
            full = _(
                "On {start}, all {booths} booths are already taken at the site.",
                start=local,
                booths=site.booths,
            )
        return Refusal("booth_full", full, conflict=True)
    return None


# --------------------------------------------------------------------------- messages


def _minutes(span: timedelta) -> int:
    return span // _MINUTE


def _too_soon(notice: timedelta, local: datetime) -> Message:
    return _(
        "Appointments must be booked at least {minutes} minutes ahead: {start} is too soon.",
        minutes=_minutes(notice),
        start=local,
    )


def _too_far(horizon: timedelta, local: datetime) -> Message:
    # Services set their horizon in days: say it in days unless it is not a whole number.
    if horizon % _DAY:
        return _(
            "Appointments can be booked at most {minutes} minutes ahead: {start} is too far away.",
            minutes=_minutes(horizon),
            start=local,
        )
    return _(
        "Appointments can be booked at most {days} days ahead: {start} is too far away.",
        days=horizon // _DAY,
        start=local,
    )


_SITE_HOLIDAY = {
    "FR": N_("{day} is a public holiday in France ({holiday}): the site is closed."),
    "BE": N_("{day} is a public holiday in Belgium ({holiday}): the site is closed."),
}
_SITE_HOLIDAY_ELSEWHERE = N_("{day} is a public holiday ({holiday}): the site is closed.")

_STAFF_HOLIDAY = {
    "FR": N_(
        "{day} is a public holiday in France ({holiday}): the operator's advisors are not working."
    ),
    "BE": N_(
        "{day} is a public holiday in Belgium ({holiday}): the operator's advisors are not working."
    ),
}
_STAFF_HOLIDAY_ELSEWHERE = N_(
    "{day} is a public holiday ({holiday}): the operator's advisors are not working."
)

_CLOSED_ON_WEEKDAY = (
    N_("The site is closed on Mondays."),
    N_("The site is closed on Tuesdays."),
    N_("The site is closed on Wednesdays."),
    N_("The site is closed on Thursdays."),
    N_("The site is closed on Fridays."),
    N_("The site is closed on Saturdays."),
    N_("The site is closed on Sundays."),
)


def _site_holiday(country: str, day: date, holiday: str) -> Message:
    # The holiday's name is a proper name, given in the country's language.
    msgid = _SITE_HOLIDAY.get(country.upper(), _SITE_HOLIDAY_ELSEWHERE)
    return _(msgid, day=day, holiday=Plain(holiday))


# A list is nested messages, so each item is formatted in the reader's language too.
_COMMA_LIST = N_("{first}, {rest}")
_SEMICOLON_LIST = N_("{first}; {rest}")


def _listing(items: Sequence[Param], msgid: str) -> Param:
    """``items`` joined two by two with ``msgid`` (``_COMMA_LIST``, ``_SEMICOLON_LIST``)."""
    joined = items[-1]
    for item in reversed(items[:-1]):
        joined = _(msgid, first=item, rest=joined)
    return joined


def _hours(ranges: Sequence[DailyRange]) -> Param:
    if not ranges:
        return Plain("")
    pieces = [_("{opens}-{closes}", opens=r.opens, closes=r.closes) for r in ranges]
    return _listing(pieces, _COMMA_LIST)


def _site_closed(
    site: SiteCalendar, local: datetime, end: datetime, stop_id: str | None
) -> Message:
    day = local.date()
    until = end.astimezone(local.tzinfo).time()
    if day in site.closures:
        return _("The site is closed on {day}.", day=day)
    if site.kind == "itinerant":
        stops = [s for s in site.stops if s.day == day]
        if not stops:
            return _("The bus does not stop anywhere on {day}.", day=day)
        matching = [s for s in stops if stop_id is None or s.stop_id == stop_id]
        if not matching:
            where = [Plain(name) for name in sorted({s.stop_id for s in stops})]
            return _(
                "On {day} the bus is not at stop {stop} but at {stops}.",
                day=day,
                stop=Plain(str(stop_id)),
                stops=_listing(where, _COMMA_LIST),
            )
        hours = [
            _("{stop} {hours}", stop=Plain(s.stop_id), hours=_hours(s.ranges)) for s in matching
        ]
        return _(
            "{start} (until {end}) is outside the bus's hours on {day} ({hours}).",
            start=local,
            end=until,
            day=day,
            hours=_listing(hours, _SEMICOLON_LIST),
        )
    ranges = tuple(sorted(site.weekly_hours.get(day.weekday(), ()), key=lambda r: r.opens))
    if not ranges:
        return _(_CLOSED_ON_WEEKDAY[day.weekday()])
    return _(
        "{start} (until {end}) is outside the site's opening hours ({hours}).",
        start=local,
        end=until,
        hours=_hours(ranges),
    )


def _unavailable(
    view: StaffView, start: datetime, end: datetime, holidays: HolidayCalendar
) -> Message:
    staff = view.calendar
    local = start.astimezone(view.zone)
    day = local.date()
    holiday = holidays.name(staff.country, day)
    if holiday is not None:
        msgid = _STAFF_HOLIDAY.get(staff.country.upper(), _STAFF_HOLIDAY_ELSEWHERE)
        return _(msgid, day=day, holiday=Plain(holiday))
    if day in staff.closures:
        return _("The operator's desk is closed on {day}.", day=day)
    zone = Plain(staff.zone)
    if view.hours.covers_span(start, end):
        return _("The advisor is absent on {start} ({zone} time).", start=local, zone=zone)
    return _("The advisor is not working on {start} ({zone} time).", start=local, zone=zone)


def _off_grid(view: StaffView, start: datetime, step: timedelta, local: datetime) -> Message:
    staff_local = start.astimezone(view.zone)
    minutes = _minutes(step)
    for r in view.working.get(staff_local.date(), ()):
        if r.opens <= staff_local.time() < r.closes:
            return _(
                "Appointments start every {minutes} minutes from {opens}: {start} is not one.",
                minutes=minutes,
                opens=r.opens,
                start=local,
            )
    return _(
        "Appointments start every {minutes} minutes: {start} is not one.",
        minutes=minutes,
        start=local,
    )

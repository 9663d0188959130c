"""VTIMEZONE components written with yearly RRULEs, from the zone's own POSIX rule.

Outlook misreads a VTIMEZONE that lists every transition as RDATEs (what icalendar's
``Timezone.from_tzid`` writes), so the rule in force today is read from the footer of
the zone's TZif file (RFC 8536 §3.3, e.g. ``CET-1CEST,M3.5.0,M10.5.0/3``) and written
as one STANDARD and one DAYLIGHT component with ``FREQ=YEARLY`` rules.
"""

from __future__ import annotations

import importlib.resources
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard, vRecur

_NAME = r"(<[^>]+>|[A-Za-z]{3,})"
_OFFSET = r"([+-]?\d{1,2}(?::\d{2}(?::\d{2})?)?)"
_RULE = r"M(\d{1,2})\.(\d)\.(\d)(?:/([+-]?\d{1,3}(?::\d{2}(?::\d{2})?)?))?"
_POSIX = re.compile(
    rf"^{_NAME}{_OFFSET}(?:{_NAME}{_OFFSET}?,{_RULE},{_RULE})?$"
)
_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")


@dataclass(frozen=True, slots=True)
class _Transition:
    month: int
    week: int  # 1..4, or 5 for "the last"
    weekday: int  # 0 = Sunday, as POSIX counts
    at: timedelta  # local time of the change, in the offset before it


def _seconds(text: str) -> timedelta:
    sign = -1 if text.startswith("-") else 1
    parts = [int(p) for p in text.lstrip("+-").split(":")] + [0, 0]
    return sign * timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2])


def _footer(tzid: str) -> str:
    """The POSIX TZ string at the end of the zone's TZif file."""
    for base in zoneinfo.TZPATH:
        path = Path(base) / tzid
        if path.is_file():
            data = path.read_bytes()
            break
    else:
        resource = importlib.resources.files("tzdata.zoneinfo").joinpath(tzid)
        data = resource.read_bytes()
    return data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii")


def _first(rule: _Transition, year: int) -> datetime:
    """The local wall-clock instant of ``rule`` in ``year``."""
    if rule.week == 5:
        nxt = date(year + (rule.month == 12), rule.month % 12 + 1, 1)
        day = nxt - timedelta(days=1)
        while (day.weekday() + 1) % 7 != rule.weekday:
            day -= timedelta(days=1)
    else:
        day = date(year, rule.month, 1)
        while (day.weekday() + 1) % 7 != rule.weekday:
            day += timedelta(days=1)
        day += timedelta(weeks=rule.week - 1)
    return datetime(day.year, day.month, day.day) + rule.at  # noqa: DTZ001 (floating)


def _rrule(rule: _Transition) -> vRecur:
    week = -1 if rule.week == 5 else rule.week
    return vRecur({"FREQ": "YEARLY", "BYMONTH": rule.month,
                   "BYDAY": f"{week}{_DAYS[rule.weekday]}"})


def _component(kind: type[TimezoneStandard] | type[TimezoneDaylight], *, name: str,
               start: datetime, before: timedelta, after: timedelta,
               rrule: vRecur | None) -> TimezoneStandard | TimezoneDaylight:
    component = kind()
    component.add("dtstart", start)
    component.add("tzoffsetfrom", before)
    component.add("tzoffsetto", after)
    component.add("tzname", name.strip("<>"))
    if rrule is not None:
        component.add("rrule", rrule)
    return component


@cache
def _vtimezone_text(tzid: str) -> bytes:
    zoneinfo.ZoneInfo(tzid)  # a KeyError-like ZoneInfoNotFoundError for unknown zones
    match = _POSIX.match(_footer(tzid))
    if match is None:
        # A rule POSIX writes another way (Jn, n): icalendar's transitions, still valid.
        return bytes(Timezone.from_tzid(tzid).to_ical())
    std_name, std_off, dst_name, dst_off = match.group(1, 2, 3, 4)
    # POSIX offsets are west-positive: CET-1 means UTC+1.
    standard = -_seconds(std_off)
    zone = Timezone()
    zone.add("tzid", tzid)
    if dst_name is None:
        zone.add_component(_component(
            TimezoneStandard, name=std_name, start=datetime(1970, 1, 1),  # noqa: DTZ001
            before=standard, after=standard, rrule=None))
        return bytes(zone.to_ical())
    daylight = -_seconds(dst_off) if dst_off else standard + timedelta(hours=1)
    groups = match.groups()[4:]
    to_dst, to_std = (
        _Transition(int(groups[i]), int(groups[i + 1]), int(groups[i + 2]),
                    _seconds(groups[i + 3]) if groups[i + 3] else timedelta(hours=2))
        for i in (0, 4)
    )
    zone.add_component(_component(
        TimezoneDaylight, name=dst_name, start=_first(to_dst, 1970), before=standard,
        after=daylight, rrule=_rrule(to_dst)))
    zone.add_component(_component(
        TimezoneStandard, name=std_name, start=_first(to_std, 1970), before=daylight,
        after=standard, rrule=_rrule(to_std)))
    return bytes(zone.to_ical())


def vtimezone(tzid: str) -> Timezone:
    """The VTIMEZONE of the IANA zone ``tzid``, with RRULEs (a fresh component)."""
    component = Timezone.from_ical(_vtimezone_text(tzid))
    assert isinstance(component, Timezone)
    return component

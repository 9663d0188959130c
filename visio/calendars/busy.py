"""Busy time from an iCalendar file: recurrences expanded, free and cancelled events left out.

``recurring-ical-events`` expands RRULE/RDATE over the window and applies EXDATE and
RECURRENCE-ID overrides; icalendar maps Windows zone names ("Romance Standard Time") to
IANA zones with its own table. Dates without a time (all-day events) and floating
times are read in the staff member's zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from time import monotonic
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

#: More busy periods than this in one calendar is refused as broken (a runaway RRULE).
MAX_PERIODS = 20_000
#: Occurrences read (busy or not) before the calendar is refused: free or cancelled
#: ones cost as much to expand.
MAX_OCCURRENCES = 2 * MAX_PERIODS
#: A calendar declares a few zones; thousands of VTIMEZONEs only cost time to read.
MAX_ZONES = 100


class CalendarUnreadable(ValueError):
    """The file is not iCalendar, or its recurrences cannot be expanded."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


_ZONE_START = re.compile(rb"^BEGIN:VTIMEZONE\r?$", re.IGNORECASE | re.MULTILINE)
_FOLD = re.compile(rb"\r?\n[ \t]")
_TZID = re.compile(rb'(TZID[=:])("?)([^";:\r\n]+)\2')


def iana_zone_names(text: bytes) -> bytes:
    """``text`` unfolded, with Windows zone names replaced by IANA ones (icalendar's table).

    Outlook writes its own VTIMEZONE for "Romance Standard Time" starting in 1601; read as
    such, every instant's offset is found by iterating its rules from 1601 (seconds for a
    large feed). Named "Europe/Paris", the zone is the system's.
    """
    unfolded = _FOLD.sub(b"", text)

    def replace(match: re.Match[bytes]) -> bytes:
        name = match.group(3).decode("utf-8", "replace").strip()
        iana = WINDOWS_TO_OLSON.get(name)
        if iana is None:
            return match.group(0)
        return match.group(1) + iana.encode()

    return _TZID.sub(replace, unfolded)


def _may_touch(event: icalendar.Event, start: datetime, end: datetime, zone: tzinfo) -> bool:
    """False for a single event surely outside [start, end) (skipping its expansion)."""
    if any(name in event for name in ("RRULE", "RDATE", "RECURRENCE-ID")):
        return True
    try:
        bounds = _bounds(event, zone)
    except Exception:
        return True  # let the expansion report what is wrong with it
    return bounds is not None and bounds[0] < end and bounds[1] > start


def _instant(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=zone).astimezone(UTC)


def _is_busy(event: icalendar.Event) -> bool:
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return False
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return False
    # Outlook marks "free" and "working elsewhere" time this way even when opaque.
    return str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "BUSY")).upper() not in (
        "FREE", "WORKINGELSEWHERE")


def _bounds(event: icalendar.Event, zone: tzinfo) -> tuple[datetime, datetime] | None:
    if "DTSTART" not in event:
        return None
    start_value = event.decoded("DTSTART")
    start = _instant(start_value, zone)
    if "DTEND" in event:
        end = _instant(event.decoded("DTEND"), zone)
    elif "DURATION" in event:
        end = start + event.decoded("DURATION")
    elif isinstance(start_value, datetime):
        end = start  # RFC 5545 §3.6.1: an instant takes no time
    else:
        end = _instant(start_value + timedelta(days=1), zone)
    return (start, end) if end > start else None


def merged(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, with overlapping and touching intervals joined."""
    result: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def _chunk(event: icalendar.Event) -> timedelta | None:
    """The span to read a dense rule's occurrences by (None: at most one a day or hour).

    Without BYMINUTE or BYSECOND and at most hourly, a rule gives at most 24 occurrences
    a day: its whole window is read at once. A rule by the minute or the second is read an
    hour or two days at a time, so that no read lists more than a few thousand.
    """
    chunk: timedelta | None = None
    rules = event.get("RRULE", [])
    for rule in rules if isinstance(rules, list) else [rules]:
        freq = [str(f).upper() for f in rule.get("FREQ", [])]
        if "SECONDLY" in freq or "BYSECOND" in rule:
            return timedelta(hours=1)
        if "MINUTELY" in freq or "BYMINUTE" in rule:
            chunk = timedelta(days=2)
    return chunk


def _rdate_count(event: icalendar.Event) -> int:
    rdates = event.get("RDATE", [])
    return sum(len(getattr(r, "dts", ())) for r in (
        rdates if isinstance(rdates, list) else [rdates]))


def busy_intervals(text: bytes, *, start: datetime, end: datetime, zone: str,
                   deadline: float | None = None) -> list[tuple[datetime, datetime]]:
    """The busy time of ``text`` inside [start, end), merged, as UTC instants.

    Occurrences are read series by series (an event and its moved occurrences), each over
    the window at once or, for rules by the minute or the second, a span at a time
    (``_chunk``), and counted as they come: a runaway calendar stops at
    ``MAX_OCCURRENCES`` without ever being listed whole. Past ``deadline``
    (``time.monotonic``) the reading stops as "timeout"; a rule that never matches can
    still spend long in one step of the library, which is why the caller runs this in a
    process it can kill (``visio.calendars.expand``).
    """
    stripped = text.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped[:15].upper().startswith(b"BEGIN:VCALENDAR"):
        raise CalendarUnreadable("not_ics")
    if len(_ZONE_START.findall(stripped)) > MAX_ZONES:
        raise CalendarUnreadable("too_many_zones")
    local = ZoneInfo(zone)
    try:
        calendars = icalendar.Calendar.from_ical(iana_zone_names(stripped), multiple=True)
        found: list[tuple[datetime, datetime]] = []
        occurrences = 0
        for calendar in calendars:
            # Most events of a calendar of some years are single and past: drop them before
            # the expansion, which costs per event.
            calendar.subcomponents = [
                c for c in calendar.subcomponents
                if not isinstance(c, icalendar.Event) or _may_touch(c, start, end, local)]
            events = [c for c in calendar.subcomponents if isinstance(c, icalendar.Event)]
            if sum(_rdate_count(e) for e in events) > MAX_OCCURRENCES:
                raise CalendarUnreadable("too_many_events")
            chunks = {str(e.get("UID", "")): _chunk(e) for e in events if "RRULE" in e}
            for series in recurring_ical_events.of(calendar).series:
                chunk = chunks.get(str(series.uid))
                spans = [(start, end)] if chunk is None else [
                    (low, min(low + chunk, end)) for low in _steps(start, end, chunk)]
                seen: set[tuple[datetime, datetime]] = set()
                for low, high in spans:
                    for occurrence in series.between(low, high):
                        occurrences += 1
                        if occurrences > MAX_OCCURRENCES:
                            raise CalendarUnreadable("too_many_events")
                        if deadline is not None and monotonic() > deadline:
                            raise CalendarUnreadable("timeout")
                        event = occurrence.as_component(False)
                        if not isinstance(event, icalendar.Event) or not _is_busy(event):
                            continue
                        bounds = _bounds(event, local)
                        if bounds is None or bounds in seen:
                            continue  # an occurrence across two spans is read twice
                        seen.add(bounds)
                        clipped = max(bounds[0], start), min(bounds[1], end)
                        if clipped[0] < clipped[1]:
                            found.append(clipped)
                        if len(found) > MAX_PERIODS:
                            raise CalendarUnreadable("too_many_events")
    except CalendarUnreadable:
        raise
    except MemoryError as err:
        # The expansion's process has a memory limit: a calendar that reaches it is
        # refused like one with too many occurrences.
        raise CalendarUnreadable("too_many_events") from err
    except Exception as err:
        # icalendar and recurring-ical-events raise many kinds on bad input: all "broken".
        raise CalendarUnreadable("broken") from err
    return merged(found)


def _steps(start: datetime, end: datetime, step: timedelta) -> Iterable[datetime]:
    at = start
    while at < end:
        yield at
        at += step

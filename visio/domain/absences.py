"""What a staff member's absences and closed days do to their booked appointments, and
the free time a day leaves them.

An appointment is *covered* when it overlaps an absence or falls, in the staff member's
zone, on a day the staff member closed. Covered appointments are never cancelled here:
the caller asks the staff member to confirm, then flags them for an agent to rebook.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from visio.domain.calendars import DateOverride, WeeklyRule, local_ranges_to_utc, ranges_for_day
from visio.domain.intervals import Interval, subtract


@dataclass(frozen=True, slots=True)
class Booked:
    """A booked appointment of the staff member: its id and the time it holds."""

    appointment_id: str
    span: Interval


def covered(appointments: Iterable[Booked], *, absences: Sequence[Interval],
            closed_days: Collection[date], zone: ZoneInfo) -> list[str]:
    """The ids of the appointments an absence or a closed day covers, in input order."""
    out = []
    for a in appointments:
        on_closed_day = any(
            day in closed_days
            for day in {a.span.start.astimezone(zone).date(),
                        a.span.end.astimezone(zone).date()})
        if on_closed_day or any(a.span.overlaps(b) for b in absences):
            out.append(a.appointment_id)
    return out


def free_time(day: date, *, rules: Sequence[WeeklyRule],
              overrides: Mapping[date, DateOverride], absences: Sequence[Interval],
              booked: Sequence[Interval], zone: ZoneInfo) -> list[Interval]:
    """The staff member's working hours on local ``day`` less absences and appointments."""
    hours = local_ranges_to_utc(day, ranges_for_day(day, rules, overrides), zone)
    return subtract(hours, [*absences, *booked])

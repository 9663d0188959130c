"""Which appointments an absence or a closed day covers; the free time a day leaves."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from visio.domain import absences
from visio.domain.calendars import DailyRange, DateOverride, WeeklyRule
from visio.domain.intervals import Interval

PARIS = ZoneInfo("Europe/Paris")


def at(hour: int, minute: int = 0, day: int = 24) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_an_appointment_is_covered_by_an_overlapping_absence_only() -> None:
    """Back-to-back is not covered; one minute of overlap is."""
    booked = [absences.Booked("a", Interval(at(9), at(9, 30))),
              absences.Booked("b", Interval(at(10), at(10, 30)))]
    away = [Interval(at(9, 30), at(10, 1))]
    assert absences.covered(booked, absences=away, closed_days=set(), zone=PARIS) == ["b"]


def test_a_closed_day_covers_the_appointments_of_that_local_day() -> None:
    """23:30 UTC on the 24th is already the 25th in Paris."""
    booked = [absences.Booked("late", Interval(at(23, 30), at(23, 45))),
              absences.Booked("day", Interval(at(9), at(9, 30)))]
    assert absences.covered(booked, absences=[], closed_days={date(2026, 11, 25)},
                            zone=PARIS) == ["late"]


def test_free_time_is_the_hours_less_absences_and_appointments() -> None:
    """09:00–12:00 Paris, less an appointment at 10:00 and an absence from 11:30."""
    rules = [WeeklyRule(1, time(9), time(12))]
    free = absences.free_time(date(2026, 11, 24), rules=rules, overrides={},
                              absences=[Interval(at(10, 30), at(12))],
                              booked=[Interval(at(9), at(9, 30))], zone=PARIS)
    assert free == [Interval(at(8), at(9)), Interval(at(9, 30), at(10, 30))]


def test_an_override_replaces_the_weekly_hours() -> None:
    """A closed override leaves no free time; a shorter one leaves its own hours."""
    rules = [WeeklyRule(1, time(9), time(12))]
    day = date(2026, 11, 24)
    closed = {day: DateOverride(day, ())}
    assert absences.free_time(day, rules=rules, overrides=closed, absences=[], booked=[],
                              zone=PARIS) == []
    short = {day: DateOverride(day, (DailyRange(time(14), time(15)),))}
    assert absences.free_time(day, rules=rules, overrides=short, absences=[], booked=[],
                              zone=PARIS) == [Interval(at(13), at(14))]

"""Wall-clock opening rules, date overrides, public holidays and their conversion to UTC.

Rules are expressed as ``datetime.time`` values in an IANA zone; they become aware UTC
intervals only here, for one local date at a time, so a 09:00 rule stays 09:00 local on
both sides of a daylight-saving change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from visio.domain.intervals import Interval

__all__ = [
    "DailyRange",
    "DateOverride",
    "HolidayCalendar",
    "WeeklyRule",
    "local_days",
    "local_ranges_to_utc",
    "ranges_for_day",
]


@dataclass(frozen=True, slots=True)
class DailyRange:
    """Opening hours ``[opens, closes)`` within one local day (no crossing of midnight)."""

    opens: time
    closes: time

    def __post_init__(self) -> None:
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("DailyRange times are wall-clock times: no tzinfo")
        if self.opens >= self.closes:
            raise ValueError(f"DailyRange opens {self.opens} must be before closes {self.closes}")


@dataclass(frozen=True, slots=True)
class WeeklyRule:
    """A recurring weekly range; ``weekday`` 0 is Monday; validity bounds are inclusive."""

    weekday: int
    opens: time
    closes: time
    valid_from: date | None = None
    valid_until: date | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday}")
        DailyRange(self.opens, self.closes)  # same validation
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_from > self.valid_until
        ):
            raise ValueError("WeeklyRule valid_from must not be after valid_until")

    def applies_on(self, day: date) -> bool:
        """Return True if this rule gives hours on ``day``."""
        return (
            day.weekday() == self.weekday
            and (self.valid_from is None or self.valid_from <= day)
            and (self.valid_until is None or day <= self.valid_until)
        )

    @property
    def range(self) -> DailyRange:
        """Return the rule's hours as a DailyRange."""
        return DailyRange(self.opens, self.closes)


@dataclass(frozen=True, slots=True)
class DateOverride:
    """One date's hours replacing the weekly rules; empty ``ranges`` means closed all day."""

    day: date
    ranges: tuple[DailyRange, ...]


class HolidayCalendar:
    """Public holidays per country (``holidays`` package), cached per (country, year)."""

    __slots__ = ("_cache", "_language")

    def __init__(self, *, language: str = "fr") -> None:
        # Names are requested in French explicitly: the package's default otherwise
        # depends on the process locale.
        self._language = language
        self._cache: dict[tuple[str, int], holidays_lib.HolidayBase] = {}

    def _table(self, country: str, year: int) -> holidays_lib.HolidayBase:
        key = (country.upper(), year)
        table = self._cache.get(key)
        if table is None:
            if key[0] not in holidays_lib.list_supported_countries():
                raise ValueError(f"no public-holiday calendar for country {country!r}")
            # No subdivision: for FR this is metropolitan France (no Alsace-Moselle
            # Good Friday, no overseas dates).
            table = holidays_lib.country_holidays(key[0], years=year, language=self._language)
            self._cache[key] = table
        return table

    def is_holiday(self, country: str, day: date) -> bool:
        """Return True if ``day`` is a public holiday in ``country`` ("FR", "BE")."""
        return day in self._table(country, day.year)

    def name(self, country: str, day: date) -> str | None:
        """Return the holiday's name for ``day`` in ``country``, or None on a working day."""
        name = self._table(country, day.year).get(day)
        return None if name is None else str(name)


def _to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    # fold=0 (the default): an ambiguous wall time (autumn fall-back) is its first
    # occurrence; a nonexistent one (spring-forward gap) is read with the offset in force
    # before the gap, which lands it *after* the gap, moved forward by the gap's length
    # (02:30 on 29 March 2026 in Europe/Paris becomes 03:30 CEST = 01:30Z).
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def local_ranges_to_utc(day: date, ranges: Iterable[DailyRange], zone: ZoneInfo) -> list[Interval]:
    """Return the UTC intervals of wall-clock ``ranges`` on local date ``day`` in ``zone``.

    Nonexistent local times shift forward past the gap and ambiguous ones take their
    first occurrence (fold=0); a range that becomes empty through this is dropped.
    """
    result: list[Interval] = []
    for r in ranges:
        start = _to_utc(day, r.opens, zone)
        end = _to_utc(day, r.closes, zone)
        if start < end:
            result.append(Interval(start, end))
    return result


def ranges_for_day(
    day: date, rules: Sequence[WeeklyRule], overrides: Mapping[date, DateOverride]
) -> tuple[DailyRange, ...]:
    """Return the sorted, distinct wall-clock ranges for ``day`` (an override wins)."""
    override = overrides.get(day)
    if override is not None:
        chosen: Iterable[DailyRange] = override.ranges
    else:
        chosen = (rule.range for rule in rules if rule.applies_on(day))
    return tuple(sorted(set(chosen), key=lambda r: (r.opens, r.closes)))


def local_days(window: Interval, zone: ZoneInfo) -> list[date]:
    """Return every local date in ``zone`` that the half-open UTC ``window`` touches."""
    first = window.start.astimezone(zone).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]

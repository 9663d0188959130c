"""What slot search reads and returns: services, staff and site calendars, slots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

from visio.domain.calendars import DailyRange, DateOverride, WeeklyRule
from visio.domain.intervals import Interval

__all__ = ["ServiceRule", "SiteCalendar", "Slot", "StaffCalendar", "Stop"]

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class ServiceRule:
    """How one operator service is booked: length, buffer, notice, horizon, languages."""

    service_id: str
    operator_id: str
    duration: timedelta
    buffer_after: timedelta
    notice: timedelta
    horizon: timedelta
    languages: frozenset[str]
    step: timedelta | None = None

    def __post_init__(self) -> None:
        if self.duration <= _ZERO:
            raise ValueError("ServiceRule.duration must be positive")
        if self.step is not None and self.step <= _ZERO:
            raise ValueError("ServiceRule.step must be positive")
        for name in ("buffer_after", "notice", "horizon"):
            if getattr(self, name) < _ZERO:
                raise ValueError(f"ServiceRule.{name} must not be negative")

    @property
    def grid_step(self) -> timedelta:
        """Return the spacing of candidate starts (``step``, else ``duration``)."""
        return self.step if self.step is not None else self.duration


@dataclass(frozen=True, slots=True)
class StaffCalendar:
    """One operator staff member's working rules, absences and existing appointments."""

    staff_id: str
    desk_id: str
    operator_id: str
    country: str
    zone: str
    rules: tuple[WeeklyRule, ...]
    overrides: tuple[DateOverride, ...] = ()
    absences: tuple[Interval, ...] = ()
    closures: frozenset[date] = frozenset()
    busy: tuple[Interval, ...] = ()
    languages: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Stop:
    """One itinerant-bus stop: its date and hours there, in the site's zone."""

    stop_id: str
    day: date
    ranges: tuple[DailyRange, ...]


@dataclass(frozen=True, slots=True)
class SiteCalendar:
    """A France Services site: opening hours (or bus stops), closures and booths.

    Booth occupation is ``booth_busy`` (one interval per appointment holding a booth)
    and/or ``booth_full`` (periods already known to have every booth taken, as a loader
    that aggregates appointments gives them): the site is full over the union of
    ``booth_full`` and the periods where at least ``booths`` of ``booth_busy`` overlap.
    """

    site_id: str
    kind: str
    zone: str
    country: str = "FR"
    weekly_hours: Mapping[int, tuple[DailyRange, ...]] = field(default_factory=dict)
    stops: tuple[Stop, ...] = ()
    closures: frozenset[date] = frozenset()
    booths: int = 1
    booth_busy: tuple[Interval, ...] = ()
    booth_full: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "itinerant"):
            raise ValueError(f"SiteCalendar.kind must be 'fixed' or 'itinerant', not {self.kind!r}")
        if self.booths < 1:
            raise ValueError("SiteCalendar.booths must be at least 1")


class Slot(NamedTuple):
    """An offerable appointment: when, with whom, for which service (and at which stop).

    A named tuple rather than a frozen dataclass: a search builds thousands, and a frozen
    dataclass costs seven ``object.__setattr__`` calls each (about seven times slower).
    """

    start: datetime
    end: datetime
    operator_id: str
    desk_id: str
    staff_id: str
    service_id: str
    stop_id: str | None = None

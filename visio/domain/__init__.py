"""Pure business rules for availability and slot search (no I/O, no framework)."""

from visio.domain.calendars import (
    DailyRange,
    DateOverride,
    HolidayCalendar,
    WeeklyRule,
    local_days,
    local_ranges_to_utc,
    ranges_for_day,
)
from visio.domain.instants import require_aware
from visio.domain.intervals import (
    Interval,
    IntervalIndex,
    clear_starts,
    feasible_starts,
    intersect,
    merge,
    saturated,
    saturated_counts,
    subtract,
)
from visio.domain.refusals import Refusal, check_start
from visio.domain.search import nearest, search_slots
from visio.domain.slot_types import ServiceRule, SiteCalendar, Slot, StaffCalendar, Stop

__all__ = [
    "DailyRange",
    "DateOverride",
    "HolidayCalendar",
    "Interval",
    "IntervalIndex",
    "Refusal",
    "ServiceRule",
    "SiteCalendar",
    "Slot",
    "StaffCalendar",
    "Stop",
    "WeeklyRule",
    "check_start",
    "clear_starts",
    "feasible_starts",
    "intersect",
    "local_days",
    "local_ranges_to_utc",
    "merge",
    "nearest",
    "ranges_for_day",
    "require_aware",
    "saturated",
    "saturated_counts",
    "search_slots",
    "subtract",
]

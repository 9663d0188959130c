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
from visio.domain.intervals import (
    Interval,
    IntervalIndex,
    feasible_starts,
    intersect,
    merge,
    saturated,
    saturated_counts,
    subtract,
)
from visio.domain.slots import (
    Refusal,
    ServiceRule,
    SiteCalendar,
    Slot,
    StaffCalendar,
    Stop,
    check_start,
    nearest,
    search_slots,
)

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
    "feasible_starts",
    "intersect",
    "local_days",
    "local_ranges_to_utc",
    "merge",
    "nearest",
    "ranges_for_day",
    "saturated",
    "saturated_counts",
    "search_slots",
    "subtract",
]

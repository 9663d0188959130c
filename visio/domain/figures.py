"""What the figures compute that is not plain counting: percentiles, rates, local periods.

Pure: PostgreSQL's ``percentile_cont`` and ``percentile`` here give the same value
(linear interpolation between the closest ranks), so SQLite and PostgreSQL agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

GROUPS = ("site", "operator", "theme", "departement", "month", "week")
#: Who may have cancelled, as ``cancelled_by`` names them.
CANCELLERS = ("usager", "agent", "staff", "admin", "closure")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` percentile (0..1) of ``values`` by linear interpolation; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to four decimals; None when there is nothing to divide."""
    return round(part / whole, 4) if whole else None


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def local_month(at: datetime, zone: str) -> str:
    """The month of an instant in a zone, ``YYYY-MM``."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def local_week(at: datetime, zone: str) -> str:
    """The ISO week of an instant in a zone, ``YYYY-Www``."""
    year, week, _day = at.astimezone(ZoneInfo(zone)).isocalendar()
    return f"{year}-W{week:02d}"


#: The figures of a group, in the order of the CSV's columns.
METRICS = (
    "booked", "cancelled", "cancelled_by_usager", "cancelled_by_agent",
    "cancelled_by_staff", "cancelled_by_admin", "cancelled_by_closure", "rescheduled",
    "done", "no_show", "open", "done_rate", "no_show_rate", "cancelled_rate",
    "calls_attempted", "calls_connected", "connection_rate", "calls_failed",
    "kiosk_never_joined", "operator_never_joined", "median_seconds_to_connect",
    "median_call_seconds", "audio_only_share", "median_delay_hours", "p90_delay_hours",
    "median_offered_delay_hours", "p90_offered_delay_hours",
)


@dataclass(frozen=True, slots=True)
class Fact:
    """One appointment as the figures read it (no personal data)."""

    keys: tuple[str, ...]
    status: str
    cancelled_by: str | None
    rescheduled: bool
    #: None: the call's outcome is not computed (yet).
    call: CallFacts | None
    delay_hours: float
    offered_delay_hours: float | None


@dataclass(frozen=True, slots=True)
class CallFacts:
    attempted: bool
    connected: bool
    kiosk_joined: bool
    operator_joined: bool
    seconds_to_connect: float | None
    duration_seconds: float | None
    audio_only: bool
    ended_by_failure: bool


@dataclass(frozen=True, slots=True)
class Counts:
    """What SQL counts of a group (or the facts give), before the rates."""

    booked: int
    cancelled: int
    #: Per canceller; a cancellation of unknown origin counts in ``cancelled`` only.
    cancelled_by: dict[str, int]
    rescheduled: int
    done: int
    no_show: int
    calls_attempted: int
    calls_connected: int
    calls_failed: int
    kiosk_never_joined: int
    operator_never_joined: int
    audio_only: int
    median_seconds_to_connect: float | None
    median_call_seconds: float | None
    median_delay_hours: float | None
    p90_delay_hours: float | None
    median_offered_delay_hours: float | None
    p90_offered_delay_hours: float | None


def metrics(c: Counts) -> dict[str, int | float | None]:
    """The figures of a group, named as METRICS."""
    cancelled = c.cancelled
    return {
        "booked": c.booked, "cancelled": cancelled,
        **{f"cancelled_by_{who}": c.cancelled_by.get(who, 0) for who in CANCELLERS},
        "rescheduled": c.rescheduled, "done": c.done, "no_show": c.no_show,
        "open": c.booked - cancelled - c.done - c.no_show,
        "done_rate": rate(c.done, c.booked), "no_show_rate": rate(c.no_show, c.booked),
        "cancelled_rate": rate(cancelled, c.booked),
        "calls_attempted": c.calls_attempted, "calls_connected": c.calls_connected,
        "connection_rate": rate(c.calls_connected, c.calls_attempted),
        "calls_failed": c.calls_failed, "kiosk_never_joined": c.kiosk_never_joined,
        "operator_never_joined": c.operator_never_joined,
        "median_seconds_to_connect": rounded(c.median_seconds_to_connect, 1),
        "median_call_seconds": rounded(c.median_call_seconds, 1),
        "audio_only_share": rate(c.audio_only, c.calls_connected),
        "median_delay_hours": rounded(c.median_delay_hours),
        "p90_delay_hours": rounded(c.p90_delay_hours),
        "median_offered_delay_hours": rounded(c.median_offered_delay_hours),
        "p90_offered_delay_hours": rounded(c.p90_offered_delay_hours),
    }


def count(facts: Sequence[Fact]) -> Counts:
    """The counts of one group's facts."""
    calls = [f.call for f in facts if f.call is not None]
    cancelled: dict[str, int] = {}
    for f in facts:
        if f.status == "cancelled" and f.cancelled_by is not None:
            cancelled[f.cancelled_by] = cancelled.get(f.cancelled_by, 0) + 1
    delays = [f.delay_hours for f in facts]
    offered = [f.offered_delay_hours for f in facts if f.offered_delay_hours is not None]
    return Counts(
        booked=len(facts), cancelled=sum(f.status == "cancelled" for f in facts),
        cancelled_by=cancelled,
        rescheduled=sum(f.rescheduled for f in facts),
        done=sum(f.status == "done" for f in facts),
        no_show=sum(f.status == "no_show" for f in facts),
        calls_attempted=sum(c.attempted for c in calls),
        calls_connected=sum(c.connected for c in calls),
        calls_failed=sum(c.ended_by_failure for c in calls),
        kiosk_never_joined=sum(not c.kiosk_joined for c in calls),
        operator_never_joined=sum(c.kiosk_joined and not c.operator_joined for c in calls),
        audio_only=sum(c.connected and c.audio_only for c in calls),
        median_seconds_to_connect=percentile(
            [c.seconds_to_connect for c in calls if c.seconds_to_connect is not None], 0.5),
        median_call_seconds=percentile(
            [c.duration_seconds for c in calls if c.duration_seconds is not None], 0.5),
        median_delay_hours=percentile(delays, 0.5), p90_delay_hours=percentile(delays, 0.9),
        median_offered_delay_hours=percentile(offered, 0.5),
        p90_offered_delay_hours=percentile(offered, 0.9),
    )


def aggregate(facts: Sequence[Fact]) -> dict[tuple[str, ...], Counts]:
    """The counts per group key, in key order."""
    groups: dict[tuple[str, ...], list[Fact]] = {}
    for f in facts:
        groups.setdefault(f.keys, []).append(f)
    return {keys: count(groups[keys]) for keys in sorted(groups)}

"""Half-open intervals of aware UTC instants and the set algebra slot search needs.

Every function here treats a list of intervals as the *set* of instants they cover:
results are merged (sorted, disjoint, and never touching — back-to-back pieces are
joined into one), whatever the order or overlap of the inputs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter

from visio.domain.instants import require_aware

__all__ = [
    "Interval",
    "IntervalIndex",
    "clear_starts",
    "feasible_starts",
    "intersect",
    "merge",
    "saturated",
    "saturated_counts",
    "saturated_spans",
    "subtract",
]


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """The half-open span ``[start, end)`` between two aware instants (stored in UTC)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # Normalise to the single ``datetime.UTC`` tzinfo: comparisons between datetimes
        # sharing one tzinfo object are plain field comparisons (fast, and what bisect uses).
        if self.start.tzinfo is not UTC:
            object.__setattr__(self, "start", require_aware(self.start, "Interval.start"))
        if self.end.tzinfo is not UTC:
            object.__setattr__(self, "end", require_aware(self.end, "Interval.end"))
        if self.end <= self.start:
            raise ValueError(f"Interval end {self.end} must be after its start {self.start}")

    @property
    def duration(self) -> timedelta:
        """Return the length of the interval."""
        return self.end - self.start

    def overlaps(self, other: Interval) -> bool:
        """Return True if the two intervals share an instant (back-to-back ones do not)."""
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        """Return True if ``other`` lies entirely inside this interval."""
        return self.start <= other.start and other.end <= self.end


_BOUNDS = attrgetter("start", "end")  # C-level sort key, much faster than dataclass __lt__


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Return the sorted union of ``intervals``, joining overlapping and touching pieces."""
    result: list[Interval] = []
    for iv in sorted(intervals, key=_BOUNDS):
        if result and iv.start <= result[-1].end:
            last = result[-1]
            if iv.end > last.end:
                result[-1] = Interval(last.start, iv.end)
        else:
            result.append(iv)
    return result


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Return the instants covered by both ``a`` and ``b`` as a merged list."""
    left, right = merge(a), merge(b)
    result: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        x, y = left[i], right[j]
        start = max(x.start, y.start)
        end = min(x.end, y.end)
        if start < end:
            result.append(x if (start, end) == (x.start, x.end) else Interval(start, end))
        if x.end <= y.end:
            i += 1
        else:
            j += 1
    return result


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Return the instants covered by ``a`` but not by ``b`` as a merged list."""
    holes = merge(b)
    result: list[Interval] = []
    j = 0
    for iv in merge(a):
        cursor = iv.start
        while j < len(holes) and holes[j].end <= cursor:
            j += 1
        k = j
        while k < len(holes) and holes[k].start < iv.end:
            hole = holes[k]
            if hole.start > cursor:
                result.append(Interval(cursor, hole.start))
            cursor = max(cursor, hole.end)
            if cursor >= iv.end:
                break
            k += 1
        if cursor < iv.end:
            result.append(iv if cursor == iv.start else Interval(cursor, iv.end))
    return result


def saturated(intervals: Sequence[Interval], capacity: int) -> list[Interval]:
    """Return the merged periods where at least ``capacity`` of ``intervals`` overlap."""
    return saturated_counts(((iv, 1) for iv in intervals), capacity)


def saturated_counts(counted: Iterable[tuple[Interval, int]], capacity: int) -> list[Interval]:
    """Return the merged periods where at least ``capacity`` intervals overlap, each
    ``(interval, n)`` standing for ``n`` copies of ``interval`` (as ``GROUP BY`` counts)."""
    return saturated_spans(((iv.start, iv.end, n) for iv, n in counted), capacity)


def saturated_spans(
    counted: Iterable[tuple[datetime, datetime, int]], capacity: int
) -> list[Interval]:
    """:func:`saturated_counts` of ``(start, end, n)`` triples (aware instants, start before
    end), without building an ``Interval`` for each."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    # Net change of depth per instant: at an instant where some intervals end and others
    # start, the depth from that instant on is what counts (half-open intervals that
    # merely touch never overlap), so ends and starts there simply add up.
    deltas: dict[datetime, int] = {}
    for start, end, n in counted:
        if n < 0:
            raise ValueError(f"an interval cannot be counted {n} times")
        if n:
            deltas[start] = deltas.get(start, 0) + n
            deltas[end] = deltas.get(end, 0) - n
    pieces: list[Interval] = []
    depth = 0
    opened: datetime | None = None
    for at in sorted(deltas):
        depth += deltas[at]
        if opened is None:
            if depth >= capacity:
                opened = at
        elif depth < capacity:
            pieces.append(Interval(opened, at))
            opened = None
    # One event per instant: a piece closes strictly before the next one opens, so the
    # pieces are already sorted, disjoint and not touching.
    return pieces


def feasible_starts(
    free: Sequence[Interval],
    busy: Sequence[Interval],
    length: timedelta,
    reach: timedelta,
    earliest: datetime,
    latest: datetime,
) -> list[tuple[datetime, datetime]]:
    """Return the closed ranges ``[lo, hi]`` of the starts ``s`` with ``earliest <= s <=
    latest``, ``[s, s + length)`` inside one interval of ``free`` and ``[s, s + reach)``
    overlapping no interval of ``busy``.

    ``free`` and ``busy`` must be merged (sorted, disjoint, not touching), as
    :func:`merge` and :class:`IntervalIndex` give them; the ranges come out sorted.
    """
    result: list[tuple[datetime, datetime]] = []
    j = 0
    n = len(busy)
    for iv in free:
        lo = iv.start if iv.start > earliest else earliest
        hi = iv.end - length
        if hi > latest:
            hi = latest
        if lo > hi:
            continue
        # A busy interval b excludes the starts in the open range (b.start - reach, b.end).
        while j < n and busy[j].end <= lo:
            j += 1
        cursor = lo
        k = j
        while k < n:
            b = busy[k]
            hole = b.start - reach
            if hole >= hi:
                break
            if hole >= cursor:
                result.append((cursor, hole))
            if b.end > cursor:
                cursor = b.end
            if cursor > hi:
                break
            k += 1
        if cursor <= hi:
            result.append((cursor, hi))
    return result


def clear_starts(
    starts: Sequence[datetime], busy: Iterable[Interval], reach: timedelta
) -> list[datetime]:
    """Return the ``starts`` ``s`` for which ``[s, s + reach)`` overlaps no ``busy`` interval.

    ``starts`` must be sorted and ``busy`` sorted by start (overlaps are fine); the result
    keeps the order of ``starts``.
    """
    result: list[datetime] = []
    pos = 0
    n = len(starts)
    for b in busy:
        # b excludes the starts in the open range (b.start - reach, b.end).
        first = bisect_right(starts, b.start - reach, pos)
        if first > pos:
            result += starts[pos:first]
        pos = bisect_left(starts, b.end, first)
        if pos >= n:
            return result
    result += starts[pos:]
    return result


class IntervalIndex:
    """A merged, sorted set of intervals answering overlap/cover queries in O(log n)."""

    __slots__ = ("_ends", "_intervals", "_starts")

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self._intervals = tuple(merge(intervals))
        self._starts = [iv.start for iv in self._intervals]
        self._ends = [iv.end for iv in self._intervals]

    @property
    def intervals(self) -> tuple[Interval, ...]:
        """Return the merged intervals, sorted."""
        return self._intervals

    def __len__(self) -> int:
        return len(self._intervals)

    def __iter__(self) -> Iterator[Interval]:
        return iter(self._intervals)

    def __repr__(self) -> str:
        return f"IntervalIndex({list(self._intervals)!r})"

    def overlaps(self, iv: Interval) -> bool:
        """Return True if ``iv`` shares an instant with the indexed set."""
        return self.overlaps_span(iv.start, iv.end)

    def covers(self, iv: Interval) -> bool:
        """Return True if ``iv`` lies entirely inside the indexed set."""
        return self.covers_span(iv.start, iv.end)

    def overlaps_span(self, start: datetime, end: datetime) -> bool:
        """Return True if ``[start, end)`` shares an instant with the indexed set."""
        i = bisect_left(self._starts, end) - 1
        return i >= 0 and self._ends[i] > start

    def covers_span(self, start: datetime, end: datetime) -> bool:
        """Return True if ``[start, end)`` lies entirely inside the indexed set."""
        i = bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

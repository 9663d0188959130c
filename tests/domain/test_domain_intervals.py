"""Interval algebra: half-open spans, merge/intersect/subtract, saturation, the index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.domain.domainkit import iv, utc
from visio.domain import (
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

T0 = utc(2026, 3, 2)


def m(a: int, b: int) -> Interval:
    """Interval from minute a to minute b after T0."""
    return iv(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b))


def at(k: int) -> datetime:
    """Minute k after T0."""
    return T0 + timedelta(minutes=k)


def minute(t: datetime) -> int:
    """Whole minutes from T0 to t."""
    return int((t - T0).total_seconds() // 60)


def test_back_to_back_intervals_do_not_overlap() -> None:
    assert not m(0, 30).overlaps(m(30, 60))
    assert not m(30, 60).overlaps(m(0, 30))
    assert m(0, 31).overlaps(m(30, 60))


def test_interval_refuses_naive_datetimes_and_empty_spans() -> None:
    naive = datetime(2026, 3, 2, 9)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        Interval(naive, utc(2026, 3, 2, 10))
    with pytest.raises(ValueError, match="after"):
        m(10, 10)
    with pytest.raises(ValueError, match="after"):
        m(10, 5)


def test_interval_is_stored_in_utc() -> None:
    paris_winter = timezone(timedelta(hours=1))
    span = Interval(
        datetime(2026, 3, 2, 9, tzinfo=paris_winter), datetime(2026, 3, 2, 10, tzinfo=paris_winter)
    )
    assert span.start == utc(2026, 3, 2, 8)
    assert span.start.tzinfo is UTC


def test_contains_and_duration() -> None:
    assert m(0, 60).contains(m(0, 60))
    assert m(0, 60).contains(m(10, 20))
    assert not m(0, 60).contains(m(50, 70))
    assert m(0, 90).duration == timedelta(minutes=90)


def test_merge_joins_overlapping_and_touching_pieces() -> None:
    assert merge([m(30, 60), m(0, 30), m(100, 120), m(110, 115)]) == [m(0, 60), m(100, 120)]
    assert merge([]) == []


def test_intersect_keeps_only_common_instants() -> None:
    assert intersect([m(0, 60), m(90, 120)], [m(30, 100)]) == [m(30, 60), m(90, 100)]
    assert intersect([m(0, 30)], [m(30, 60)]) == []


def test_subtract_cuts_holes() -> None:
    assert subtract([m(0, 120)], [m(30, 40), m(60, 70)]) == [m(0, 30), m(40, 60), m(70, 120)]
    assert subtract([m(0, 60)], [m(0, 60)]) == []
    assert subtract([m(0, 60), m(90, 120)], [m(50, 100)]) == [m(0, 50), m(100, 120)]


def test_saturated_with_one_booth_is_every_booked_period() -> None:
    assert saturated([m(0, 30), m(30, 60), m(90, 100)], 1) == [m(0, 60), m(90, 100)]


def test_saturated_with_two_booths_only_where_two_appointments_overlap() -> None:
    booked = [m(0, 30), m(15, 45), m(40, 60), m(100, 130)]
    assert saturated(booked, 2) == [m(15, 30), m(40, 45)]
    # Back-to-back appointments never occupy two booths at once.
    assert saturated([m(0, 30), m(30, 60)], 2) == []
    assert saturated(booked, 3) == []
    with pytest.raises(ValueError, match="capacity"):
        saturated(booked, 0)


span = st.tuples(st.integers(0, 200), st.integers(1, 40)).map(lambda p: m(p[0], p[0] + p[1]))
spans = st.lists(span, max_size=12)


def minutes(intervals: list[Interval]) -> set[int]:
    return {
        k
        for x in intervals
        for k in range(
            int((x.start - T0).total_seconds() // 60), int((x.end - T0).total_seconds() // 60)
        )
    }


@given(spans, spans)
def test_set_algebra_agrees_with_minute_sets(a: list[Interval], b: list[Interval]) -> None:
    assert minutes(merge(a)) == minutes(a)
    assert minutes(intersect(a, b)) == minutes(a) & minutes(b)
    assert minutes(subtract(a, b)) == minutes(a) - minutes(b)
    for result in (merge(a), intersect(a, b), subtract(a, b)):
        assert all(x.end < y.start for x, y in pairwise(result))


@given(spans, st.integers(1, 3))
def test_saturated_agrees_with_counting_each_minute(a: list[Interval], capacity: int) -> None:
    def depth(k: int) -> int:
        return sum(1 for x in a if k in minutes([x]))

    assert minutes(saturated(a, capacity)) == {k for k in range(0, 241) if depth(k) >= capacity}


@given(spans, st.integers(0, 230), st.integers(1, 30))
def test_interval_index_agrees_with_a_linear_scan(
    a: list[Interval], start: int, length: int
) -> None:
    index = IntervalIndex(a)
    probe = m(start, start + length)
    assert index.overlaps(probe) == any(x.overlaps(probe) for x in a)
    assert index.covers(probe) == (minutes([probe]) <= minutes(a))
    assert list(index) == merge(a)


def test_saturated_counts_weighs_each_interval() -> None:
    # Two booths: a (start, end) group counted twice fills the site on its own.
    assert saturated_counts([(m(0, 30), 2), (m(30, 60), 1)], 2) == [m(0, 30)]
    assert saturated_counts([(m(0, 30), 1), (m(15, 45), 1), (m(40, 60), 1)], 2) == [
        m(15, 30),
        m(40, 45),
    ]
    # Ends and starts at one instant add up: back-to-back groups never overlap.
    assert saturated_counts([(m(0, 30), 3), (m(30, 60), 3)], 4) == []
    assert saturated_counts([(m(0, 30), 3), (m(30, 60), 3)], 3) == [m(0, 60)]
    assert saturated_counts([(m(0, 30), 0)], 1) == []
    with pytest.raises(ValueError, match="capacity"):
        saturated_counts([], 0)
    with pytest.raises(ValueError, match="counted"):
        saturated_counts([(m(0, 30), -1)], 1)


@given(
    st.lists(st.tuples(span, st.integers(0, 3)), max_size=8),
    st.integers(1, 5),
)
def test_saturated_counts_agrees_with_saturated_on_repeated_intervals(
    counted: list[tuple[Interval, int]], capacity: int
) -> None:
    repeated = [x for x, n in counted for _ in range(n)]
    result = saturated_counts(counted, capacity)
    assert result == saturated(repeated, capacity)
    assert result == merge(result)


def test_feasible_starts_keeps_the_length_inside_free_time_and_the_reach_off_busy() -> None:
    # Free 0-120; busy 60-70; 30-minute appointments with a 10-minute buffer: a start s
    # needs [s, s+30) free and [s, s+40) clear of 60-70.
    thirty, forty = timedelta(minutes=30), timedelta(minutes=40)
    starts = feasible_starts([m(0, 120)], [m(60, 70)], thirty, forty, T0, T0 + timedelta(days=1))
    assert starts == [(at(0), at(20)), (at(70), at(90))]
    # earliest and latest clip the ranges (both inclusive).
    assert feasible_starts([m(0, 120)], [m(60, 70)], thirty, forty, at(10), at(75)) == [
        (at(10), at(20)),
        (at(70), at(75)),
    ]
    # A free piece shorter than the length offers nothing; a single start is a range.
    assert feasible_starts([m(0, 20), m(40, 70)], [], thirty, thirty, at(0), at(999)) == [
        (at(40), at(40))
    ]


@given(
    spans,
    spans,
    st.integers(1, 40),
    st.integers(0, 20),
    st.integers(0, 240),
    st.integers(0, 240),
)
def test_feasible_starts_agrees_with_checking_each_minute(
    free: list[Interval],
    busy: list[Interval],
    length: int,
    buffer: int,
    earliest: int,
    latest: int,
) -> None:
    free, busy = merge(free), merge(busy)
    index = IntervalIndex(busy)
    expected = {
        k
        for k in range(-10, 260)
        if earliest <= k <= latest
        and any(x.contains(m(k, k + length)) for x in free)
        and not index.overlaps_span(at(k), at(k + length + buffer))
    }
    ranges = feasible_starts(
        free,
        busy,
        timedelta(minutes=length),
        timedelta(minutes=length + buffer),
        at(earliest),
        at(latest),
    )
    assert all(lo <= hi for lo, hi in ranges)
    assert all(a[1] < b[0] for a, b in pairwise(ranges))
    got = {k for lo, hi in ranges for k in range(minute(lo), minute(hi) + 1)}
    assert got == expected


def test_clear_starts_drops_the_starts_whose_reach_meets_a_busy_interval() -> None:
    grid = [at(k) for k in range(0, 180, 30)]  # 0, 30, ..., 150
    # Busy 60-70, 40-minute reach: 30 and 60 are out (30+40 > 60), 90 is fine.
    assert clear_starts(grid, [m(60, 70)], timedelta(minutes=40)) == [
        at(0),
        at(90),
        at(120),
        at(150),
    ]
    # Overlapping busy intervals, one inside another, sorted by start.
    assert clear_starts(grid, [m(20, 100), m(30, 40), m(125, 150)], timedelta(minutes=10)) == [
        at(0),
        at(150),
    ]
    assert clear_starts(grid, [], timedelta(minutes=10)) == grid
    assert clear_starts([], [m(0, 10)], timedelta(minutes=10)) == []


@given(st.lists(st.integers(0, 240), unique=True), spans, st.integers(1, 60))
def test_clear_starts_agrees_with_the_index(
    starts: list[int], busy: list[Interval], reach: int
) -> None:
    grid = [at(k) for k in sorted(starts)]
    index = IntervalIndex(busy)
    expected = [s for s in grid if not index.overlaps_span(s, s + timedelta(minutes=reach))]
    by_start = sorted(busy, key=lambda x: x.start)
    assert clear_starts(grid, by_start, timedelta(minutes=reach)) == expected

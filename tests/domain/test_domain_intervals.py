"""Interval algebra: half-open spans, merge/intersect/subtract, saturation, the index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from domainkit import iv, utc
from hypothesis import given
from hypothesis import strategies as st

from visio.domain import Interval, IntervalIndex, intersect, merge, saturated, subtract

T0 = utc(2026, 3, 2)


def m(a: int, b: int) -> Interval:
    """Interval from minute a to minute b after T0."""
    return iv(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b))


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


spans = st.lists(
    st.tuples(st.integers(0, 200), st.integers(1, 40)).map(lambda p: m(p[0], p[0] + p[1])),
    max_size=12,
)


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

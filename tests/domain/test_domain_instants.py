"""require_aware: the one check that a datetime carries its offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from visio.clock import ensure_aware_utc
from visio.domain.instants import require_aware


def test_an_aware_datetime_comes_back_in_utc() -> None:
    paris_summer = timezone(timedelta(hours=2))
    value = require_aware(datetime(2026, 7, 14, 10, tzinfo=paris_summer), "start")
    assert value == datetime(2026, 7, 14, 8, tzinfo=UTC)
    assert value.tzinfo is UTC


def test_a_naive_datetime_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="start must be a timezone-aware datetime"):
        require_aware(datetime(2026, 7, 14, 10), "start")  # noqa: DTZ001 - the point


def test_the_clock_helper_is_the_same_check() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ensure_aware_utc(datetime(2026, 7, 14, 10))  # noqa: DTZ001 - the point
    assert ensure_aware_utc(datetime(2026, 7, 14, 10, tzinfo=UTC)).tzinfo is UTC

"""Wall-clock rules, overrides, DST conversion and French/Belgian public holidays."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from tests.domain.domainkit import HOLIDAYS, at, hm, iv, rng, utc
from visio.domain import (
    DailyRange,
    DateOverride,
    HolidayCalendar,
    WeeklyRule,
    local_days,
    local_ranges_to_utc,
    ranges_for_day,
)

PARIS = ZoneInfo("Europe/Paris")
BRUSSELS = ZoneInfo("Europe/Brussels")


def test_a_paris_0900_rule_is_0800z_in_winter_and_0700z_in_summer() -> None:
    morning = [rng("09:00", "12:00")]
    assert local_ranges_to_utc(date(2026, 3, 23), morning, PARIS) == [
        iv(utc(2026, 3, 23, 8), utc(2026, 3, 23, 11))
    ]
    assert local_ranges_to_utc(date(2026, 3, 30), morning, PARIS) == [
        iv(utc(2026, 3, 30, 7), utc(2026, 3, 30, 10))
    ]
    assert local_ranges_to_utc(date(2026, 10, 23), morning, BRUSSELS)[0].start == utc(
        2026, 10, 23, 7
    )
    assert local_ranges_to_utc(date(2026, 10, 26), morning, BRUSSELS)[0].start == utc(
        2026, 10, 26, 8
    )


def test_nonexistent_spring_forward_times_shift_forward() -> None:
    # 02:30 does not exist on 29 March 2026 in Paris: it is read as 03:30 CEST.
    [span] = local_ranges_to_utc(date(2026, 3, 29), [rng("02:30", "04:00")], PARIS)
    assert span.start == utc(2026, 3, 29, 1, 30)
    assert span.end == utc(2026, 3, 29, 2)
    # A range lying wholly in the gap... ends before it starts once shifted: dropped.
    assert local_ranges_to_utc(date(2026, 3, 29), [rng("02:30", "03:00")], PARIS) == []


def test_ambiguous_fall_back_times_take_the_first_occurrence() -> None:
    [span] = local_ranges_to_utc(date(2026, 10, 25), [rng("02:30", "04:00")], PARIS)
    assert span.start == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, the first 02:30
    assert span.end == utc(2026, 10, 25, 3)  # 04:00 CET


def test_local_days_are_the_dates_a_utc_window_touches() -> None:
    window = iv(at(2026, 3, 23, 0), at(2026, 3, 25, 0))
    assert local_days(window, PARIS) == [date(2026, 3, 23), date(2026, 3, 24)]
    assert local_days(iv(utc(2026, 3, 23, 23, 30), utc(2026, 3, 24, 0, 30)), PARIS) == [
        date(2026, 3, 24)
    ]
    assert local_days(iv(utc(2026, 3, 23, 22, 30), utc(2026, 3, 23, 23, 30)), ZoneInfo("UTC")) == [
        date(2026, 3, 23)
    ]


def test_ranges_for_day_uses_rules_valid_on_that_date() -> None:
    rules = (
        WeeklyRule(0, hm("09:00"), hm("12:00")),
        WeeklyRule(0, hm("14:00"), hm("17:00"), valid_from=date(2026, 4, 1)),
        WeeklyRule(0, hm("13:00"), hm("15:00"), valid_until=date(2026, 3, 23)),
        WeeklyRule(1, hm("09:00"), hm("10:00")),
    )
    assert ranges_for_day(date(2026, 3, 23), rules, {}) == (
        rng("09:00", "12:00"),
        rng("13:00", "15:00"),
    )
    assert ranges_for_day(date(2026, 3, 30), rules, {}) == (rng("09:00", "12:00"),)
    assert ranges_for_day(date(2026, 4, 6), rules, {}) == (
        rng("09:00", "12:00"),
        rng("14:00", "17:00"),
    )
    assert ranges_for_day(date(2026, 3, 29), rules, {}) == ()


def test_date_overrides_close_a_day_or_replace_its_hours() -> None:
    rules = (WeeklyRule(0, hm("09:00"), hm("17:00")),)
    closed = DateOverride(date(2026, 3, 23), ())
    extra = DateOverride(date(2026, 3, 28), (rng("10:00", "12:00"),))  # a Saturday
    overrides = {o.day: o for o in (closed, extra)}
    assert ranges_for_day(date(2026, 3, 23), rules, overrides) == ()
    assert ranges_for_day(date(2026, 3, 28), rules, overrides) == (rng("10:00", "12:00"),)
    assert ranges_for_day(date(2026, 3, 30), rules, overrides) == (rng("09:00", "17:00"),)


def test_ranges_and_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="before"):
        DailyRange(hm("12:00"), hm("09:00"))
    with pytest.raises(ValueError, match="weekday"):
        WeeklyRule(7, hm("09:00"), hm("10:00"))
    with pytest.raises(ValueError, match="valid_from"):
        WeeklyRule(0, hm("09:00"), hm("10:00"), date(2026, 5, 1), date(2026, 4, 1))


@pytest.mark.parametrize(
    ("day", "in_france", "in_belgium"),
    [
        (date(2026, 7, 14), True, False),
        (date(2026, 5, 8), True, False),
        (date(2026, 7, 21), False, True),
        (date(2026, 4, 6), True, True),
        (date(2026, 11, 11), True, True),
        (date(2026, 4, 3), False, False),  # Good Friday: only Alsace-Moselle, not metropolitan FR
        (date(2026, 3, 23), False, False),
    ],
)
def test_public_holidays_in_france_and_belgium(
    day: date, in_france: bool, in_belgium: bool
) -> None:
    assert HOLIDAYS.is_holiday("FR", day) is in_france
    assert HOLIDAYS.is_holiday("BE", day) is in_belgium
    assert (HOLIDAYS.name("FR", day) is not None) is in_france


def test_holiday_names_are_given_in_french() -> None:
    assert HOLIDAYS.name("FR", date(2026, 7, 14)) == "Fête nationale"
    assert HOLIDAYS.name("BE", date(2026, 7, 21)) == "Fête nationale"
    assert HOLIDAYS.name("FR", date(2026, 7, 15)) is None


def test_holiday_calendar_refuses_unknown_countries() -> None:
    with pytest.raises(ValueError, match="XX"):
        HolidayCalendar().is_holiday("XX", date(2026, 1, 1))

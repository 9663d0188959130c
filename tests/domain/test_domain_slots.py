"""search_slots: DST, holidays on both sides of the border, buses, rules and conflicts."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.domain.domainkit import (
    BRUSSELS,
    HOLIDAYS,
    NOW,
    PARIS,
    at,
    day_window,
    fixed_site,
    iv,
    member,
    mins,
    rng,
    service,
    utc,
    weekly,
)
from visio.domain import (
    DateOverride,
    Interval,
    ServiceRule,
    SiteCalendar,
    Slot,
    StaffCalendar,
    Stop,
    nearest,
    search_slots,
)


def search(
    site: SiteCalendar,
    staff: list[StaffCalendar],
    window: Interval,
    services: list[ServiceRule] | None = None,
    *,
    now: datetime = NOW,
    **options: object,
) -> list[Slot]:
    return search_slots(
        site=site,
        services=services or [service()],
        staff=staff,
        window=window,
        now=now,
        holidays=HOLIDAYS,
        **options,  # type: ignore[arg-type]
    )


def local_starts(slots: list[Slot], zone: str = PARIS) -> list[str]:
    return [f"{s.start.astimezone(ZoneInfo(zone)):%a %d %H:%M}" for s in slots]


def hours_of(slots: list[Slot], zone: str = PARIS) -> list[str]:
    return [f"{s.start.astimezone(ZoneInfo(zone)):%H:%M}" for s in slots]


MORNING = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]


# --------------------------------------------------------------------------- DST


def test_slots_stay_at_0900_local_on_both_sides_of_the_spring_change() -> None:
    staff = [member(rules=weekly("09:00", "12:00"))]
    before = search(fixed_site(), staff, day_window(date(2026, 3, 23)))
    after = search(fixed_site(), staff, day_window(date(2026, 3, 30)))
    assert hours_of(before) == MORNING
    assert hours_of(after) == MORNING
    assert before[0].start == utc(2026, 3, 23, 8)  # UTC+1
    assert after[0].start == utc(2026, 3, 30, 7)  # UTC+2
    assert before[0].end == utc(2026, 3, 23, 8, 30)


def test_slots_stay_at_0900_local_around_the_october_change() -> None:
    every_day = range(7)
    staff = [member(rules=weekly("09:00", "12:00", days=every_day))]
    site = fixed_site(days=every_day)
    slots = search(site, staff, day_window(date(2026, 10, 23), date(2026, 10, 26)))
    by_day: dict[date, list[Slot]] = {}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(ZoneInfo(PARIS)).date(), []).append(slot)
    assert sorted(by_day) == [date(2026, 10, d) for d in (23, 24, 25, 26)]
    for day_slots in by_day.values():
        assert hours_of(day_slots) == MORNING
    assert by_day[date(2026, 10, 24)][0].start == utc(2026, 10, 24, 7)  # still CEST
    assert by_day[date(2026, 10, 25)][0].start == utc(2026, 10, 25, 8)  # CET from 03:00
    assert by_day[date(2026, 10, 26)][0].start == utc(2026, 10, 26, 8)


# --------------------------------------------------------------------------- holidays


BE_CELL = member("be1", "cellule-be", country="BE", zone=BRUSSELS)
FR_CAF = member("fr1", "caf")
BOTH = [service("caf"), service("cellule-be")]


def test_on_14_july_a_french_site_offers_nothing_though_the_belgian_cell_works() -> None:
    window = day_window(date(2026, 7, 14))
    assert search(fixed_site(), [BE_CELL, FR_CAF], window, BOTH) == []
    # The Belgian cell is available that day: a Belgian site books it.
    belgian_site = fixed_site(country="BE", zone=BRUSSELS)
    slots = search(belgian_site, [BE_CELL, FR_CAF], window, BOTH)
    assert slots
    assert {s.operator_id for s in slots} == {"cellule-be"}


def test_on_21_july_the_belgian_cell_is_closed_and_the_french_operator_open() -> None:
    slots = search(fixed_site(), [BE_CELL, FR_CAF], day_window(date(2026, 7, 21)), BOTH)
    assert slots
    assert {s.operator_id for s in slots} == {"caf"}
    next_day = search(fixed_site(), [BE_CELL, FR_CAF], day_window(date(2026, 7, 22)), BOTH)
    assert {s.operator_id for s in next_day} == {"caf", "cellule-be"}


# --------------------------------------------------------------------------- buses


def bus(*stops: Stop, **extra: object) -> SiteCalendar:
    return SiteCalendar(site_id="bus-1", kind="itinerant", zone=PARIS, stops=stops, **extra)  # type: ignore[arg-type]


BUS = bus(
    Stop("bourg", date(2026, 3, 24), (rng("09:00", "12:00"),)),
    Stop("market", date(2026, 3, 26), (rng("09:00", "13:00"),)),
    Stop("hameau", date(2026, 3, 26), (rng("14:00", "16:00"),)),
)
WEEK = day_window(date(2026, 3, 23), date(2026, 3, 27))


def test_an_itinerant_site_offers_slots_only_on_its_stop_days() -> None:
    slots = search(BUS, [member()], WEEK)
    days = {s.start.astimezone(ZoneInfo(PARIS)).date() for s in slots}
    assert days == {date(2026, 3, 24), date(2026, 3, 26)}
    assert {s.stop_id for s in slots} == {"bourg", "market", "hameau"}
    assert all(s.stop_id == "hameau" for s in slots if s.start >= at(2026, 3, 26, 14))


def test_the_stop_id_filter_keeps_only_that_stop() -> None:
    slots = search(BUS, [member()], WEEK, stop_id="market")
    assert {s.stop_id for s in slots} == {"market"}
    assert search(BUS, [member()], WEEK, stop_id="nowhere") == []


def test_a_market_day_stop_ending_at_1300_cuts_the_last_slots() -> None:
    slots = search(BUS, [member()], WEEK, stop_id="market")
    assert hours_of(slots)[-1] == "12:30"
    long = search(BUS, [member()], WEEK, [service(duration=45, step=15)], stop_id="market")
    assert hours_of(long)[-1] == "12:15"


def test_a_slot_never_straddles_two_back_to_back_stops() -> None:
    site = bus(
        Stop("a", date(2026, 3, 24), (rng("09:00", "12:00"),)),
        Stop("b", date(2026, 3, 24), (rng("12:00", "15:00"),)),
    )
    slots = search(site, [member()], WEEK, [service(step=15)])
    assert "11:45" not in hours_of(slots)
    assert [s.stop_id for s in slots if hours_of([s]) in (["11:30"], ["12:00"])] == ["a", "b"]


def test_a_bus_offers_nothing_on_a_holiday_stop() -> None:
    site = bus(Stop("bourg", date(2026, 7, 14), (rng("09:00", "12:00"),)))
    assert search(site, [member()], day_window(date(2026, 7, 14))) == []


# --------------------------------------------------------------------------- limits


def test_notice_and_horizon_bound_the_offered_starts() -> None:
    now = at(2026, 3, 23, 9, 10)
    rule = service(notice=timedelta(hours=2), horizon=timedelta(days=2))
    slots = search(fixed_site(), [member()], WEEK, [rule], now=now)
    assert local_starts(slots)[0] == "Mon 23 11:30"
    assert local_starts(slots)[-1] == "Wed 25 09:00"


def test_slots_stay_inside_the_window() -> None:
    window = iv(at(2026, 3, 23, 10, 15), at(2026, 3, 23, 11, 45))
    assert hours_of(search(fixed_site(), [member()], window)) == ["10:30", "11:00"]


def test_an_existing_appointments_buffer_blocks_the_following_slot() -> None:
    # The 10:00 appointment plus its 15-minute buffer occupies 10:00-10:45.
    staff = [member(busy=(iv(at(2026, 3, 23, 10), at(2026, 3, 23, 10, 45)),))]
    hours = hours_of(search(fixed_site(), staff, day_window(date(2026, 3, 23))))
    assert "10:00" not in hours
    assert "10:30" not in hours
    assert "09:30" in hours
    assert "11:00" in hours


def test_the_new_appointments_own_buffer_must_end_before_the_next_one() -> None:
    staff = [member(busy=(iv(at(2026, 3, 23, 10), at(2026, 3, 23, 10, 30)),))]
    hours = hours_of(
        search(fixed_site(), staff, day_window(date(2026, 3, 23)), [service(buffer=15)])
    )
    assert "09:30" not in hours
    assert "09:00" in hours
    assert "10:30" in hours


def test_one_booth_taken_blocks_every_operator_at_that_time() -> None:
    taken = (iv(at(2026, 3, 23, 10), at(2026, 3, 23, 10, 30)),)
    staff = [member("a1"), member("b1", "cpam")]
    site = fixed_site(booth_busy=taken)
    slots = search(site, staff, day_window(date(2026, 3, 23)), [service("caf"), service("cpam")])
    assert "10:00" not in hours_of(slots)
    assert hours_of(slots).count("09:30") == 2
    assert hours_of(slots).count("10:30") == 2


def test_two_booths_are_full_only_where_two_appointments_overlap() -> None:
    one = (iv(at(2026, 3, 23, 10), at(2026, 3, 23, 10, 30)),)
    two = (*one, iv(at(2026, 3, 23, 10, 15), at(2026, 3, 23, 11)))
    day = day_window(date(2026, 3, 23))
    assert "10:00" in hours_of(search(fixed_site(booths=2, booth_busy=one), [member()], day))
    hours = hours_of(search(fixed_site(booths=2, booth_busy=two), [member()], day))
    assert "10:00" not in hours
    assert "10:30" in hours  # from 10:30 only one booth is taken


def test_booth_full_periods_block_like_saturated_booth_busy() -> None:
    # A loader may hand over the periods where every booth is taken instead of each
    # appointment; both are honoured together.
    day = day_window(date(2026, 3, 23))
    full = (iv(at(2026, 3, 23, 10), at(2026, 3, 23, 10, 30)),)
    one = (iv(at(2026, 3, 23, 11), at(2026, 3, 23, 11, 30)),)
    site = replace(fixed_site(booths=2, booth_busy=one), booth_full=full)
    hours = hours_of(search(site, [member()], day))
    assert "10:00" not in hours
    assert "11:00" in hours  # one of two booths taken
    both = replace(site, booth_busy=(*one, *one))
    assert "11:00" not in hours_of(search(both, [member()], day))
    assert search(replace(site, booth_full=()), [member()], day) == search(
        fixed_site(booths=2, booth_busy=one), [member()], day
    )


def test_absences_remove_availability() -> None:
    staff = [member(absences=(iv(at(2026, 3, 23, 14), at(2026, 3, 23, 15)),))]
    hours = hours_of(search(fixed_site(), staff, day_window(date(2026, 3, 23))))
    assert "13:30" in hours
    assert "14:00" not in hours
    assert "14:30" not in hours
    assert "15:00" in hours


def test_date_overrides_close_a_day_and_add_an_extra_opening() -> None:
    overrides = (
        DateOverride(date(2026, 3, 24), ()),
        DateOverride(date(2026, 3, 28), (rng("10:00", "12:00"),)),  # Saturday
    )
    staff = [member(overrides=overrides)]
    site = fixed_site(days=range(6))
    slots = search(site, staff, day_window(date(2026, 3, 23), date(2026, 3, 28)))
    days = {s.start.astimezone(ZoneInfo(PARIS)).date() for s in slots}
    assert date(2026, 3, 24) not in days
    assert [h for h in local_starts(slots) if h.startswith("Sat")] == [
        "Sat 28 10:00",
        "Sat 28 10:30",
        "Sat 28 11:00",
        "Sat 28 11:30",
    ]


def test_staff_and_site_closure_dates_close_the_day() -> None:
    days = day_window(date(2026, 3, 23), date(2026, 3, 25))
    staff = [member(closures=frozenset({date(2026, 3, 23)}))]
    site = fixed_site(closures=frozenset({date(2026, 3, 24)}))
    offered = {s.start.astimezone(ZoneInfo(PARIS)).date() for s in search(site, staff, days)}
    assert offered == {date(2026, 3, 25)}


def test_the_language_filter_checks_service_and_staff_languages() -> None:
    rule = service(languages=("fr", "nl"))
    staff = [member("a1", languages=frozenset({"fr"})), member("a2")]
    day = day_window(date(2026, 3, 23))
    assert {
        s.staff_id for s in search(fixed_site(), staff, day, [rule], language="nl", per_staff=True)
    } == {"a2"}
    assert search(fixed_site(), staff, day, [rule], language="de") == []
    assert {s.staff_id for s in search(fixed_site(), staff, day, [rule], per_staff=True)} == {
        "a1",
        "a2",
    }


# --------------------------------------------------------------------------- dedup


def test_one_slot_per_start_and_operator_goes_to_the_least_loaded_staff() -> None:
    day = day_window(date(2026, 3, 23))
    a1_busy = (
        iv(at(2026, 3, 23, 16), at(2026, 3, 23, 16, 30)),
        iv(at(2026, 3, 23, 16, 30), at(2026, 3, 23, 17)),
    )
    a2_busy = (iv(at(2026, 3, 23, 9), at(2026, 3, 23, 9, 30)),)
    staff = [member("a1", busy=a1_busy), member("a2", busy=a2_busy), member("b1", "cpam")]
    slots = search(fixed_site(), staff, day, [service("caf"), service("cpam")])

    def at_hour(hour: str) -> list[tuple[str, str]]:
        return [(s.operator_id, s.staff_id) for s in slots if hours_of([s]) == [hour]]

    assert at_hour("10:00") == [("caf", "a2"), ("cpam", "b1")]  # a2 has fewer appointments
    assert at_hour("09:00") == [("caf", "a1"), ("cpam", "b1")]  # a2 is busy then
    assert at_hour("16:00") == [("caf", "a2"), ("cpam", "b1")]
    assert slots == sorted(slots, key=lambda s: (s.start, s.operator_id, s.staff_id))


def test_ties_in_load_go_to_the_smallest_staff_id() -> None:
    staff = [member("a2"), member("a1")]
    slots = search(fixed_site(), staff, day_window(date(2026, 3, 23)))
    assert {s.staff_id for s in slots} == {"a1"}


def test_per_staff_keeps_every_staff_member() -> None:
    staff = [member("a2"), member("a1")]
    day = day_window(date(2026, 3, 23))
    deduped = search(fixed_site(), staff, day)
    slots = search(fixed_site(), staff, day, per_staff=True)
    assert len(slots) == 2 * len(deduped)
    assert [s.staff_id for s in slots[:2]] == ["a1", "a2"]


def test_staff_only_serve_their_own_operators_services() -> None:
    slots = search(
        fixed_site(), [member("b1", "cpam")], day_window(date(2026, 3, 23)), [service("caf")]
    )
    assert slots == []


def test_search_refuses_a_naive_now() -> None:
    naive = datetime(2026, 3, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        search(fixed_site(), [member()], day_window(date(2026, 3, 23)), now=naive)


# --------------------------------------------------------------------------- nearest


def test_nearest_proposes_the_closest_slots_earlier_first_on_ties() -> None:
    def slot(h: int, m: int) -> Slot:
        start = at(2026, 3, 23, h, m).astimezone(ZoneInfo("UTC"))
        return Slot(start, start + mins(30), "caf", "d", "a1", "caf-rdv")

    slots = [slot(9, 0), slot(9, 30), slot(10, 30), slot(11, 0), slot(14, 0)]
    assert nearest(slots, at(2026, 3, 23, 10)) == [slot(9, 30), slot(10, 30), slot(9, 0)]
    assert nearest(slots, at(2026, 3, 23, 10), limit=1) == [slot(9, 30)]
    assert nearest([], at(2026, 3, 23, 10)) == []
    assert nearest(slots, at(2026, 3, 23, 10), limit=0) == []


def test_the_grid_step_defaults_to_the_duration() -> None:
    rule = service()
    assert replace(rule, step=mins(15)).grid_step == mins(15)
    assert rule.grid_step == mins(30)

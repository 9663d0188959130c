"""check_start: one refusal per reason, in order, and exact agreement with search_slots."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.domain.domainkit import (
    BRUSSELS,
    HOLIDAYS,
    NOW,
    at,
    day_window,
    fixed_site,
    iv,
    member,
    mins,
    rng,
    service,
    weekly,
)
from visio.domain import (
    DateOverride,
    Interval,
    Refusal,
    ServiceRule,
    SiteCalendar,
    StaffCalendar,
    Stop,
    check_start,
    search_slots,
)
from visio.domain.messages import Plain, _
from visio.i18n import Catalogue, catalogue


def check(
    start: datetime,
    *,
    site: SiteCalendar | None = None,
    rule: ServiceRule | None = None,
    staff: StaffCalendar | None = None,
    now: datetime = NOW,
    language: str | None = None,
    stop_id: str | None = None,
) -> Refusal | None:
    return check_start(
        start=start,
        site=site or fixed_site(rng("09:00", "12:00"), rng("14:00", "17:00")),
        service=rule or service(),
        staff=staff or member(),
        now=now,
        holidays=HOLIDAYS,
        language=language,
        stop_id=stop_id,
    )


def code(refusal: Refusal | None) -> str | None:
    return None if refusal is None else refusal.code


def english(refusal: Refusal | None) -> str:
    """The refusal as the English catalogue renders it (message ids are English)."""
    assert refusal is not None
    return catalogue("en").render(refusal.message)


def test_a_bookable_start_has_no_refusal() -> None:
    assert check(at(2026, 3, 23, 9)) is None


def test_too_soon_names_the_real_notice() -> None:
    refusal = check(
        at(2026, 3, 23, 10), now=at(2026, 3, 23, 9), rule=service(notice=timedelta(hours=2))
    )
    assert refusal == Refusal(
        "too_soon",
        _(
            "Appointments must be booked at least {minutes} minutes ahead: {start} is too soon.",
            minutes=120,
            start=at(2026, 3, 23, 10),
        ),
        conflict=False,
    )
    assert english(refusal) == (
        "Appointments must be booked at least 120 minutes ahead: "
        "Monday, March 23, 2026 at 10:00 is too soon."
    )


def test_too_far_names_the_horizon_in_days() -> None:
    refusal = check(at(2026, 6, 1, 9), rule=service(horizon=timedelta(days=60)))
    assert code(refusal) == "too_far"
    assert refusal is not None
    assert refusal.message.msgid == (
        "Appointments can be booked at most {days} days ahead: {start} is too far away."
    )
    assert refusal.message.params == {"days": 60, "start": at(2026, 6, 1, 9)}
    odd = check(at(2026, 3, 3, 9), rule=service(horizon=timedelta(hours=30)))
    assert odd is not None
    assert odd.message.params["minutes"] == 30 * 60


def test_refusal_times_are_in_the_site_zone() -> None:
    refusal = check(at(2026, 3, 23, 10), now=at(2026, 3, 23, 9))
    assert refusal is not None
    start = refusal.message.params["start"]
    assert isinstance(start, datetime)
    assert start.tzinfo == ZoneInfo("Europe/Paris")
    assert (start.hour, start.minute) == (10, 0)


def test_holiday_names_the_country_and_the_holiday() -> None:
    refusal = check(at(2026, 7, 14, 10), staff=member("be1", country="BE", zone=BRUSSELS))
    assert refusal == Refusal(
        "holiday",
        _(
            "{day} is a public holiday in France ({holiday}): the site is closed.",
            day=date(2026, 7, 14),
            holiday=Plain("Fête nationale"),
        ),
        conflict=False,
    )
    assert english(refusal) == (
        "July 14, 2026 is a public holiday in France (Fête nationale): the site is closed."
    )


def test_holiday_reads_as_one_french_sentence_once_translated() -> None:
    refusal = check(at(2026, 7, 14, 10))
    assert refusal is not None
    french = Catalogue(
        "fr",
        {
            refusal.message.msgid: (
                "Le {day} est un jour férié en France ({holiday}) : le site est fermé."
            )
        },
    )
    assert french.render(refusal.message) == (
        "Le 14 juillet 2026 est un jour férié en France (Fête nationale) : le site est fermé."
    )


def test_each_country_has_its_own_holiday_sentence() -> None:
    belgian_site = fixed_site(country="BE", zone=BRUSSELS)
    refusal = check(at(2026, 7, 21, 10, zone=BRUSSELS), site=belgian_site)
    assert refusal is not None
    assert refusal.message.msgid == (
        "{day} is a public holiday in Belgium ({holiday}): the site is closed."
    )
    assert refusal.message.params["holiday"] == Plain("Fête nationale")


def test_site_closed_for_a_closure_date_or_outside_opening_hours() -> None:
    closed = fixed_site(closures=frozenset({date(2026, 3, 23)}))
    refusal = check(at(2026, 3, 23, 10), site=closed)
    assert code(refusal) == "site_closed"
    assert refusal is not None
    assert refusal.message == _("The site is closed on {day}.", day=date(2026, 3, 23))
    lunch = check(at(2026, 3, 23, 11, 45))  # 11:45-12:15 crosses the lunch closure
    assert code(lunch) == "site_closed"
    assert lunch is not None
    assert lunch.message.msgid == (
        "{start} (until {end}) is outside the site's opening hours ({hours})."
    )
    assert lunch.message.params["end"] == time(12, 15)
    assert english(lunch) == (
        "Monday, March 23, 2026 at 11:45 (until 12:15) is outside the site's opening hours "
        "(09:00-12:00, 14:00-17:00)."
    )
    saturday = check(at(2026, 3, 28, 10))
    assert code(saturday) == "site_closed"
    assert saturday is not None
    assert saturday.message == _("The site is closed on Saturdays.")


def test_site_closed_for_a_bus_without_a_stop_that_day_or_at_another_stop() -> None:
    bus = SiteCalendar(
        site_id="bus",
        kind="itinerant",
        zone="Europe/Paris",
        stops=(Stop("market", date(2026, 3, 26), (rng("09:00", "13:00"),)),),
    )
    no_stop = check(at(2026, 3, 25, 10), site=bus)
    assert code(no_stop) == "site_closed"
    assert no_stop is not None
    assert no_stop.message == _("The bus does not stop anywhere on {day}.", day=date(2026, 3, 25))
    elsewhere = check(at(2026, 3, 26, 10), site=bus, stop_id="bourg")
    assert code(elsewhere) == "site_closed"
    assert english(elsewhere) == "On March 26, 2026 the bus is not at stop bourg but at market."
    late = check(at(2026, 3, 26, 12, 45), site=bus)
    assert code(late) == "site_closed"
    assert english(late) == (
        "Thursday, March 26, 2026 at 12:45 (until 13:15) is outside the bus's hours "
        "on March 26, 2026 (market 09:00-13:00)."
    )
    assert check(at(2026, 3, 26, 12, 30), site=bus, stop_id="market") is None


def test_outside_availability_for_hours_absences_and_staff_side_holidays() -> None:
    assert code(check(at(2026, 3, 23, 9), staff=member(rules=weekly("10:00", "12:00")))) == (
        "outside_availability"
    )
    absent = member(absences=(iv(at(2026, 3, 23, 9), at(2026, 3, 23, 12)),))
    refusal = check(at(2026, 3, 23, 10), staff=absent)
    assert code(refusal) == "outside_availability"
    assert refusal is not None
    assert refusal.message == _(
        "The advisor is absent on {start} ({zone} time).",
        start=at(2026, 3, 23, 10),
        zone=Plain("Europe/Paris"),
    )
    belgian = check(at(2026, 7, 21, 10), staff=member("be1", country="BE", zone=BRUSSELS))
    assert belgian is not None
    assert belgian.code == "outside_availability"
    assert belgian.message == _(
        "{day} is a public holiday in Belgium ({holiday}): "
        "the operator's advisors are not working.",
        day=date(2026, 7, 21),
        holiday=Plain("Fête nationale"),
    )
    assert not belgian.conflict
    assert check(at(2026, 7, 21, 10)) is None  # the French operator works that day
    closed_day = member(overrides=(DateOverride(date(2026, 3, 23), ()),))
    assert code(check(at(2026, 3, 23, 10), staff=closed_day)) == "outside_availability"


def test_off_grid_says_how_starts_are_spaced() -> None:
    refusal = check(at(2026, 3, 23, 9, 10))
    assert refusal is not None
    assert refusal.code == "off_grid"
    assert refusal.message == _(
        "Appointments start every {minutes} minutes from {opens}: {start} is not one.",
        minutes=30,
        opens=time(9),
        start=at(2026, 3, 23, 9, 10),
    )


def test_language_is_checked_against_service_and_staff() -> None:
    rule = service(languages=("fr", "nl"))
    assert check(at(2026, 3, 23, 9), rule=rule, language="nl") is None
    german = check(at(2026, 3, 23, 9), rule=rule, language="de")
    assert code(german) == "language"
    assert english(german) == (
        "Appointments in language de are not offered for this service with this advisor."
    )
    french_only = member(languages=frozenset({"fr"}))
    assert (
        code(check(at(2026, 3, 23, 9), rule=rule, staff=french_only, language="nl")) == "language"
    )


def test_staff_busy_and_booth_full_are_conflicts() -> None:
    busy = member(busy=(iv(at(2026, 3, 23, 9, 30), at(2026, 3, 23, 10)),))
    refusal = check(at(2026, 3, 23, 9, 30), staff=busy)
    assert refusal is not None
    assert (refusal.code, refusal.conflict) == ("staff_busy", True)
    assert code(check(at(2026, 3, 23, 9), staff=busy, rule=service(buffer=10))) == "staff_busy"
    site = fixed_site(booths=1, booth_busy=(iv(at(2026, 3, 23, 9), at(2026, 3, 23, 9, 30)),))
    full = check(at(2026, 3, 23, 9), site=site)
    assert full is not None
    assert (full.code, full.conflict) == ("booth_full", True)


def test_booth_full_periods_are_a_conflict_too() -> None:
    site = replace(
        fixed_site(booths=3), booth_full=(iv(at(2026, 3, 23, 9), at(2026, 3, 23, 9, 30)),)
    )
    full = check(at(2026, 3, 23, 9), site=site)
    assert full is not None
    assert (full.code, full.conflict) == ("booth_full", True)
    assert full.message == _(
        "On {start}, all {booths} booths are already taken at the site.",
        start=at(2026, 3, 23, 9),
        booths=3,
    )
    assert check(at(2026, 3, 23, 9, 30), site=site) is None


def test_refusals_come_in_the_documented_order() -> None:
    # Too soon wins over everything else, holiday over the site's hours, and so on.
    assert code(check(at(2026, 7, 14, 3), now=at(2026, 7, 14, 2))) == "too_soon"
    assert code(check(at(2026, 7, 14, 3))) == "holiday"
    assert code(check(at(2026, 3, 23, 7, 10))) == "site_closed"
    assert code(check(at(2026, 3, 23, 9, 10), language="de")) == "off_grid"


def test_check_start_refuses_a_staff_member_of_another_operator() -> None:
    with pytest.raises(ValueError, match="operator"):
        check(at(2026, 3, 23, 9), staff=member("b1", "cpam"))


# --------------------------------------------------------------------------- agreement


def agree(
    site: SiteCalendar,
    rules: list[ServiceRule],
    staff: list[StaffCalendar],
    window: Interval,
    every: timedelta,
    now: datetime = NOW,
    language: str | None = None,
    stop_id: str | None = None,
) -> int:
    """Assert search_slots offers a start for a staff member iff check_start accepts it."""
    slots = search_slots(
        site=site,
        services=rules,
        staff=staff,
        window=window,
        now=now,
        holidays=HOLIDAYS,
        language=language,
        stop_id=stop_id,
        per_staff=True,
    )
    offered = {(s.start, s.staff_id, s.service_id): s for s in slots}
    accepted = 0
    for person in staff:
        for rule in rules:
            if rule.operator_id != person.operator_id:
                continue
            start = window.start
            while start + rule.duration <= window.end:
                refusal = check_start(
                    start=start,
                    site=site,
                    service=rule,
                    staff=person,
                    now=now,
                    holidays=HOLIDAYS,
                    language=language,
                    stop_id=stop_id,
                )
                key = (start, person.staff_id, rule.service_id)
                assert (refusal is None) == (key in offered), (start, person.staff_id, refusal)
                accepted += refusal is None
                start += every
    assert accepted == len(offered)
    return accepted


def test_check_start_agrees_with_search_over_a_busy_holiday_week() -> None:
    site = fixed_site(
        rng("09:00", "12:30"),
        rng("13:30", "17:00"),
        booths=2,
        booth_busy=(
            iv(at(2026, 7, 13, 10), at(2026, 7, 13, 11)),
            iv(at(2026, 7, 13, 10, 30), at(2026, 7, 13, 11, 30)),
            iv(at(2026, 7, 15, 14), at(2026, 7, 15, 15)),
        ),
    )
    rules = [
        service(
            "caf", duration=30, buffer=10, notice=timedelta(hours=3), horizon=timedelta(days=200)
        ),
        service("caf", service_id="caf-long", duration=45, step=15, languages=("fr", "en")),
        service("be", duration=20, step=20, languages=("fr", "nl")),
    ]
    staff = [
        member("a1", busy=(iv(at(2026, 7, 13, 9), at(2026, 7, 13, 9, 40)),)),
        member(
            "a2",
            rules=weekly("08:30", "12:00") + weekly("13:00", "16:00", days=(0, 2)),
            absences=(iv(at(2026, 7, 15, 10), at(2026, 7, 15, 11)),),
            overrides=(DateOverride(date(2026, 7, 16), (rng("14:00", "15:00"),)),),
            languages=frozenset({"fr"}),
        ),
        member("be1", "be", country="BE", zone=BRUSSELS, closures=frozenset({date(2026, 7, 16)})),
    ]
    window = day_window(date(2026, 7, 13), date(2026, 7, 17))
    now = at(2026, 7, 13, 8)
    assert agree(site, rules, staff, window, mins(5), now=now) > 100
    assert agree(site, rules, staff, window, mins(5), now=now, language="en") > 10


def test_check_start_agrees_with_search_across_the_spring_change_at_night() -> None:
    every_day = range(7)
    site = fixed_site(rng("00:00", "23:30"), days=every_day)
    staff = [
        member(
            rules=weekly("01:00", "05:00", days=every_day)
            + weekly("20:00", "23:00", days=every_day)
        )
    ]
    window = day_window(date(2026, 3, 28), date(2026, 3, 29))
    assert agree(site, [service(step=20)], staff, window, mins(10)) > 0


def test_check_start_agrees_with_search_for_a_bus_and_its_stops() -> None:
    site = SiteCalendar(
        site_id="bus",
        kind="itinerant",
        zone="Europe/Paris",
        stops=(
            Stop("a", date(2026, 3, 24), (rng("09:00", "12:00"),)),
            Stop("b", date(2026, 3, 24), (rng("12:00", "15:00"),)),
            Stop("market", date(2026, 3, 26), (rng("09:00", "13:00"),)),
        ),
        booth_busy=(iv(at(2026, 3, 26, 10), at(2026, 3, 26, 10, 30)),),
    )
    window = day_window(date(2026, 3, 23), date(2026, 3, 27))
    rules = [service(step=15)]
    assert agree(site, rules, [member()], window, mins(15)) > 0
    assert agree(site, rules, [member()], window, mins(15), stop_id="b") > 0


quarter_hours = st.integers(0, 10 * 4).map(lambda q: at(2026, 3, 23, 8) + timedelta(minutes=15 * q))
spans = st.lists(
    st.tuples(quarter_hours, st.integers(1, 6)).map(
        lambda p: iv(p[0], p[0] + timedelta(minutes=10 * p[1]))
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    busy=spans,
    booth_busy=spans,
    absences=spans,
    booths=st.integers(1, 2),
    duration=st.sampled_from([20, 30, 45]),
    step=st.sampled_from([None, 10, 15]),
    buffer=st.sampled_from([0, 5, 15]),
)
def test_check_start_agrees_with_search_on_random_calendars(
    busy: list[Interval],
    booth_busy: list[Interval],
    absences: list[Interval],
    booths: int,
    duration: int,
    step: int | None,
    buffer: int,
) -> None:
    site = fixed_site(
        rng("08:30", "12:00"), rng("13:00", "18:00"), booths=booths, booth_busy=tuple(booth_busy)
    )
    person = member(busy=tuple(busy), absences=tuple(absences), rules=weekly("08:00", "17:00"))
    rule = service(duration=duration, step=step, buffer=buffer)
    agree(site, [rule], [person], day_window(date(2026, 3, 23)), mins(5))

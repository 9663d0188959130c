"""A realistic load: 100 staff over four weeks with 20,000 existing appointments."""

from __future__ import annotations

import random
from datetime import date, timedelta

from tests.domain.domainkit import (
    HOLIDAYS,
    at,
    day_window,
    fixed_site,
    iv,
    member,
    rng,
    service,
    weekly,
)
from visio.domain import Interval, IntervalIndex, StaffCalendar, check_start, search_slots

OPERATORS = ["caf", "cpam", "carsat", "dgfip", "be"]


def build() -> tuple[list[StaffCalendar], list[Interval]]:
    rnd = random.Random(20260302)
    first = date(2026, 3, 2)
    workdays = [
        first + timedelta(days=n) for n in range(28) if (first + timedelta(days=n)).weekday() < 5
    ]
    staff: list[StaffCalendar] = []
    booth_busy: list[Interval] = []
    for n in range(100):
        operator = OPERATORS[n % len(OPERATORS)]
        busy = []
        for _ in range(200):
            day = rnd.choice(workdays)
            start = at(day.year, day.month, day.day, 9) + timedelta(minutes=15 * rnd.randrange(32))
            busy.append(iv(start, start + timedelta(minutes=40)))
            if rnd.random() < 0.05:
                booth_busy.append(iv(start, start + timedelta(minutes=30)))
        staff.append(
            member(
                f"s{n:03d}",
                operator,
                country="BE" if operator == "be" else "FR",
                zone="Europe/Brussels" if operator == "be" else "Europe/Paris",
                rules=weekly("09:00", "12:30") + weekly("13:30", "17:00"),
                busy=tuple(busy),
            )
        )
    return staff, booth_busy


def test_search_over_100_staff_four_weeks_and_20000_appointments() -> None:
    staff, booth_busy = build()
    assert sum(len(s.busy) for s in staff) == 20_000
    site = fixed_site(rng("08:30", "18:00"), booths=6, booth_busy=tuple(booth_busy))
    services = [service(op, buffer=10) for op in OPERATORS]
    window = day_window(date(2026, 3, 2), date(2026, 3, 29))
    now = at(2026, 3, 1, 12)
    common = {"site": site, "services": services, "staff": staff, "window": window, "now": now}

    slots = search_slots(**common, holidays=HOLIDAYS)  # type: ignore[arg-type]
    every = search_slots(**common, holidays=HOLIDAYS, per_staff=True)  # type: ignore[arg-type]

    assert slots
    assert len(every) > len(slots)
    assert len({(s.start, s.operator_id) for s in slots}) == len(slots)
    assert {(s.start, s.operator_id) for s in slots} == {(s.start, s.operator_id) for s in every}
    assert slots == sorted(slots, key=lambda s: (s.start, s.operator_id, s.staff_id))
    by_id = {s.staff_id: s for s in staff}
    busy = {s.staff_id: IntervalIndex(s.busy) for s in staff}
    full = IntervalIndex(booth_busy) if site.booths == 1 else None
    for slot in slots:
        assert window.start <= slot.start
        assert slot.end <= window.end
        assert not busy[slot.staff_id].overlaps(iv(slot.start, slot.end + timedelta(minutes=10)))
        assert full is None or not full.overlaps(iv(slot.start, slot.end))
    rule = {s.operator_id: s for s in services}
    for slot in random.Random(7).sample(every, 300):
        person = by_id[slot.staff_id]
        assert (
            check_start(
                start=slot.start,
                site=site,
                service=rule[person.operator_id],
                staff=person,
                now=now,
                holidays=HOLIDAYS,
            )
            is None
        )

"""A realistic load: 100 staff over four weeks with 20,000 existing appointments."""

from __future__ import annotations

import random
from dataclasses import replace
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
from visio.domain.search import within_reach, without_full

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


def test_the_cache_s_shortcuts_give_what_a_whole_search_gives() -> None:
    """What the slot-search cache relies on, on the realistic load: slots found without
    an instant and kept within reach; only some starts searched; booth time newly full."""
    staff, booth_busy = build()
    site = fixed_site(rng("08:30", "18:00"), booths=6, booth_busy=tuple(booth_busy))
    # 45-minute appointments on a 15-minute grid: a start before a period can reach into it.
    services = [service(op, duration=45, step=15, buffer=10) for op in OPERATORS]
    window = day_window(date(2026, 3, 2), date(2026, 3, 29))
    now = at(2026, 3, 1, 12)
    common = {"services": services, "staff": staff, "window": window,
              "holidays": HOLIDAYS}
    for per_staff in (False, True):
        timeless = search_slots(site=site, now=None, per_staff=per_staff, **common)  # type: ignore[arg-type]
        assert within_reach(timeless, services, now) == search_slots(
            site=site, now=now, per_staff=per_staff, **common)  # type: ignore[arg-type]
        draw = random.Random(11)
        for _ in range(5):
            first = window.start + timedelta(minutes=5 * draw.randrange(8000))
            some = Interval(first, first + timedelta(minutes=5 * draw.randrange(1, 400)))
            assert search_slots(site=site, now=None, per_staff=per_staff, starts=some,
                                **common) == [  # type: ignore[arg-type]
                s for s in timeless if some.start <= s.start < some.end]
        full = [iv(at(2026, 3, d, 10, 10), at(2026, 3, d, 11, 5)) for d in (3, 10, 17)]
        fuller = replace(site, booth_full=(*site.booth_full, *full))
        assert without_full(timeless, full) == search_slots(
            site=fuller, now=None, per_staff=per_staff, **common)  # type: ignore[arg-type]

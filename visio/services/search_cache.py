"""What slot search keeps between searches, and how it knows it still holds.

A search loads two kinds of data. Weekly rules, overrides, absences and imported busy
time, closures, site hours and stops, services and territories change seldom; the
appointments change all day. Both are kept per search (site, theme, filters, window),
each with the counters it depends on:

- the *plan* (everything but appointments) with ``catalogue``, ``site:<id>`` and one
  ``desk:<id>`` per desk searched;
- the *slots* found with ``booked:site:<id>`` and one ``booked:staff:<id>`` per staff
  member searched; they are found without notice and horizon, which each search then
  applies for its own instant (:func:`visio.domain.search.within_reach`).

The counters are rows of ``search_versions``, bumped by database triggers (migration
0008) inside every transaction that changes a watched row, whoever writes it. A search
reads the counters in its own transaction before it uses or loads what they guard, so
what it offers is what a search without the cache would offer at that moment, on every
instance sharing the database: a change made through one instance is seen by the next
search of every other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.domain.intervals import Interval
from visio.domain.slot_types import ServiceRule, SiteCalendar, Slot, StaffCalendar
from visio.services.calendars import one_of

CATALOGUE = "catalogue"

Versions = Mapping[str, int]


def site_scope(site_id: str) -> str:
    return f"site:{site_id}"


def desk_scope(desk_id: str) -> str:
    return f"desk:{desk_id}"


def booked_site_scope(site_id: str) -> str:
    return f"booked:site:{site_id}"


def booked_staff_scope(staff_id: str) -> str:
    return f"booked:staff:{staff_id}"


async def read_versions(session: AsyncSession, scopes: Collection[str]) -> dict[str, int]:
    """The current counter of each scope (0 for a scope never changed)."""
    conn = await session.connection()
    found = dict((await conn.execute(
        sa.select(m.SearchVersion.scope, m.SearchVersion.value)
        .where(one_of(conn.dialect, m.SearchVersion.scope, sorted(scopes)))
    )).all())
    return {scope: found.get(scope, 0) for scope in scopes}


def holds(kept: Versions, current: Versions) -> bool:
    """Whether none of the scopes ``kept`` was read at has changed since."""
    return all(current.get(scope, 0) == value for scope, value in kept.items())


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One search, as far as what it loads goes (not the instant it runs at)."""

    site_id: str
    theme: str
    allowed: bool
    operator_id: str | None
    language: str | None
    stop_id: str | None
    staff_id: str | None
    window: Interval


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a search needs but the appointments; ``places`` empty: nothing to
    search (the caller may not, or no service or desk serves the site)."""

    zone: str
    site_id: str
    booths: int
    services: tuple[ServiceRule, ...]
    places: tuple[tuple[SiteCalendar, frozenset[str]], ...]
    desk_ids: frozenset[str]
    staff: tuple[StaffCalendar, ...]
    versions: Versions

    def booked_scopes(self) -> list[str]:
        """The counters of the appointments the plan's search reads."""
        if not self.places:
            return []
        return [booked_site_scope(self.site_id),
                *(booked_staff_scope(s.staff_id) for s in self.staff)]


@dataclass(frozen=True, slots=True)
class Entry:
    """A plan, the appointments read with it, and the slots found from both (without
    notice and horizon)."""

    plan: Plan
    booked: Versions
    booth_full: tuple[Interval, ...]
    busy: Mapping[str, tuple[Interval, ...]]  # staff id: their appointments (if any)
    slots: tuple[Slot, ...]

    def changed(self, current: Versions) -> tuple[bool, list[str]]:
        """Whether the site's appointments changed, and whose staff's did."""
        site = self.plan.site_id
        return (current.get(booked_site_scope(site), 0) != self.booked.get(
                    booked_site_scope(site), 0),
                [s.staff_id for s in self.plan.staff
                 if current.get(booked_staff_scope(s.staff_id), 0)
                 != self.booked.get(booked_staff_scope(s.staff_id), 0)])

    def scopes(self) -> list[str]:
        return [*self.plan.versions, *self.booked]


class SearchCache:
    """The last ``entries`` searches of this process, least recently used dropped first.

    ``on_lookup`` hears each lookup's outcome: ``hit`` (nothing changed), ``appointments``
    (appointments changed: the slots are found again from the kept plan), ``miss``.
    """

    def __init__(self, entries: int, on_lookup: Callable[[str], None] | None = None) -> None:
        self.capacity = max(0, entries)
        self._entries: OrderedDict[SearchKey, Entry] = OrderedDict()
        self._on_lookup = on_lookup

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: SearchKey) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: SearchKey, entry: Entry) -> None:
        if self.capacity == 0:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def heard(self, outcome: str) -> None:
        if self._on_lookup is not None:
            self._on_lookup(outcome)

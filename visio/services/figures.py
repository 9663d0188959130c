"""Figures of the network: what happened to the appointments of a period, per site,
operator, theme, département, month or week, within the caller's scope.

PostgreSQL counts in one grouped query (``percentile_cont`` for medians and p90s);
SQLite reads the period's facts and counts them in Python (``visio.domain.figures``),
the same definitions. Months and weeks are those of each site's own time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain import figures as fig
from visio.domain.messages import _
from visio.errors import Unprocessable

#: Days start and end in the network's zone.
NETWORK_ZONE = ZoneInfo("Europe/Paris")
MAX_DAYS = 366
#: The per-appointment export covers at most this many days at once.
MAX_EXPORT_DAYS = 93


@dataclass(frozen=True, slots=True)
class Period:
    """From ``first`` to ``last`` (days, both included), as instants."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), NETWORK_ZONE)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), NETWORK_ZONE)


#: Days the figures may ask about (appointments are booked at the time they happen).
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2199, 12, 31)


def period(first: date, last: date, *, max_days: int = MAX_DAYS) -> Period:
    """A period of at most ``max_days`` days; a 422 otherwise."""
    for day, name in ((first, "from"), (last, "to")):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise Unprocessable(_("A date between {start} and {end}, please.",
                                  start=EARLIEST_DAY, end=LATEST_DAY), extra={"field": name})
    if last < first:
        raise Unprocessable(_("The period ends before it begins."), extra={"field": "to"})
    if (last - first).days + 1 > max_days:
        raise Unprocessable(_("A period covers at most {count} days.", count=max_days),
                            extra={"field": "to"})
    return Period(first, last)


def groups_of(text: str) -> tuple[str, ...]:
    """``site,month`` as ("site", "month"): known names, each once, in the order given."""
    names: list[str] = []
    for name in text.split(","):
        name = name.strip()
        if name not in fig.GROUPS:
            raise Unprocessable(_("group_by takes {value}.", value=", ".join(fig.GROUPS)),
                                extra={"field": "group_by"})
        if name not in names:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Figure:
    """One group's figures: its keys and their labels by group name, and the metrics."""

    keys: dict[str, str]
    labels: dict[str, str]
    values: dict[str, int | float | None]


# ---------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class AppointmentFacts:
    """One appointment, without personal data: the per-appointment export."""

    id: str
    site_id: str
    operator_id: str
    desk_id: str
    theme: str
    departement: str
    timezone: str
    start: datetime
    end: datetime
    booked_at: datetime
    first_offered_start: datetime | None
    status: str
    cancelled_by: str | None
    reschedule_count: int
    call: fig.CallFacts | None

    def key(self, group: str) -> str:
        if group == "site":
            return self.site_id
        if group == "operator":
            return self.operator_id
        if group == "theme":
            return self.theme
        if group == "departement":
            return self.departement
        if group == "month":
            return fig.local_month(self.start, self.timezone)
        return fig.local_week(self.start, self.timezone)

    def fact(self, groups: Sequence[str]) -> fig.Fact:
        offered = None
        if self.first_offered_start is not None:
            offered = (self.first_offered_start - self.booked_at).total_seconds() / 3600
        return fig.Fact(
            keys=tuple(self.key(g) for g in groups), status=self.status,
            cancelled_by=self.cancelled_by, rescheduled=self.reschedule_count > 0,
            call=self.call, delay_hours=(self.start - self.booked_at).total_seconds() / 3600,
            offered_delay_hours=offered)


def _in_period(principal: Principal, p: Period) -> list[sa.ColumnElement[bool]]:
    return [m.Appointment.start >= p.start, m.Appointment.start < p.end,
            principal.appointment_filter()]


async def appointment_facts(*, db: Database, principal: Principal, first: date,
                            last: date, max_days: int = MAX_EXPORT_DAYS,
                            ) -> list[AppointmentFacts]:
    """The appointments starting in the period, in the caller's scope, oldest first."""
    p = period(first, last, max_days=max_days)
    a, c, s = m.Appointment, m.CallOutcome, m.Site
    query = (sa.select(a.id, a.site_id, a.operator_id, a.desk_id, a.theme, s.departement,
                       s.timezone, a.start, a.end, a.created_at, a.first_offered_start,
                       a.status, a.cancelled_by, a.reschedule_count, c.attempted,
                       c.connected, c.kiosk_joined, c.operator_joined, c.seconds_to_connect,
                       c.duration_seconds, c.audio_only, c.ended_by_failure)
             .join(s, s.id == a.site_id).outerjoin(c, c.appointment_id == a.id)
             .where(*_in_period(principal, p)).order_by(a.start, a.id))
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    return [AppointmentFacts(
        id=r[0], site_id=r[1], operator_id=r[2], desk_id=r[3], theme=r[4],
        departement=r[5] or "", timezone=r[6], start=r[7], end=r[8], booked_at=r[9],
        first_offered_start=r[10], status=r[11], cancelled_by=r[12],
        reschedule_count=r[13] or 0,
        call=None if r[14] is None else fig.CallFacts(*r[14:22]))  # type: ignore[arg-type]
        for r in rows]


# ---------------------------------------------------------------- figures


async def figures(*, db: Database, principal: Principal, first: date, last: date,
                  groups: Sequence[str], language: str = "fr") -> list[Figure]:
    """Each group's figures over the period, in the caller's scope, in key order."""
    p = period(first, last)
    if db.dialect == "postgresql":
        counted = await _counted_in_sql(db, principal, p, groups)
    else:
        facts = await appointment_facts(db=db, principal=principal, first=first,
                                        last=last, max_days=MAX_DAYS)
        counted = fig.aggregate([f.fact(groups) for f in facts])
    async with db.read() as session:
        labels = await _labels(session, groups, counted, language)
    return [Figure(keys=dict(zip(groups, keys, strict=True)),
                   labels={g: labels.get((g, k), k) for g, k in zip(groups, keys, strict=True)},
                   values=fig.metrics(c)) for keys, c in counted.items()]


#: The groups whose key comes from the appointment's site (a join with sites).
SITE_GROUPS = frozenset({"departement", "month", "week"})


def _group_columns(groups: Sequence[str]) -> list[sa.ColumnElement[Any]]:
    a, s = m.Appointment, m.Site
    local = sa.func.timezone(s.timezone, a.start)
    columns: dict[str, sa.ColumnElement[Any] | sa.orm.InstrumentedAttribute[str]] = {
        "site": a.site_id, "operator": a.operator_id, "theme": a.theme,
        "departement": sa.func.coalesce(s.departement, ""),
        "month": sa.func.to_char(local, "YYYY-MM"),
        "week": sa.func.to_char(local, 'IYYY-"W"IW'),
    }
    # Keys are ASCII (ids, codes, dates): grouped and ordered byte by byte, which sorts
    # the period's rows faster than the database's collation does, in the same order.
    # Sites keep the column's collation: the index on (site_id, start) gives their order.
    return [(columns[g] if g == "site" else sa.collate(columns[g], "C")).label(f"g_{g}")
            for g in groups]


def counted_query(principal: Principal, p: Period,
                  groups: Sequence[str]) -> sa.Select[Any]:
    """PostgreSQL's one grouped query: the group keys, then the counts and percentiles
    ``_counted_in_sql`` reads in this order (the bench explains it). Everything comes
    from an index that covers it (on ``start``, or on ``(site_id, start)`` for sites:
    migration 0021, with the call's outcome and the delays copied onto the appointment);
    sites are joined only for the groups that need them."""
    a, s = m.Appointment, m.Site
    n = sa.func.count

    def where(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return n().filter(condition)

    def pct(q: float, value: Any) -> sa.ColumnElement[Any]:
        return sa.func.percentile_cont(q).within_group(value)

    # Stored by a trigger (migration 0021): computing them row by row cost 0.15 s a year.
    hours, offered = a.delay_hours, a.offered_delay_hours
    keys = _group_columns(groups)
    cancelled = a.status == "cancelled"
    query = (sa.select(
        *keys, n(), where(cancelled),
        *(where(sa.and_(cancelled, a.cancelled_by == who)) for who in fig.CANCELLERS),
        where(a.reschedule_count > 0), where(a.status == "done"),
        where(a.status == "no_show"), where(a.call_attempted.is_(True)),
        where(a.call_connected.is_(True)), where(a.call_ended_by_failure.is_(True)),
        where(a.call_kiosk_joined.is_(False)),
        where(sa.and_(a.call_kiosk_joined.is_(True), a.call_operator_joined.is_(False))),
        where(sa.and_(a.call_connected.is_(True), a.call_audio_only.is_(True))),
        pct(0.5, a.call_seconds_to_connect), pct(0.5, a.call_duration_seconds),
        pct(0.5, hours), pct(0.9, hours), pct(0.5, offered), pct(0.9, offered))
        .select_from(a)
        .where(*_in_period(principal, p)).group_by(*keys).order_by(*keys))
    if SITE_GROUPS.intersection(groups):
        query = query.join(s, s.id == a.site_id)
    return query


async def _counted_in_sql(db: Database, principal: Principal, p: Period,
                          groups: Sequence[str]) -> dict[tuple[str, ...], fig.Counts]:
    async with db.read() as session:
        # For this one query, in one round trip (each measured on the national dataset):
        # - no JIT: compiling its expressions costs more than it saves (1.7-2.0 s with it,
        #   1.2-1.4 s without, before migration 0021);
        # - 8 MB of work memory for the sort by group (CPU seconds of the query alone:
        #   4 MB 1.23, 8 MB 1.15, 32 MB 1.25);
        # - planned for the period asked: the driver prepares the statement, and from its
        #   sixth run PostgreSQL would keep a generic plan that knows no period (1.0 s for
        #   a year by site, then 1.7 s from the sixth run on).
        await session.execute(sa.text(
            "SELECT set_config('jit', 'off', true), set_config('work_mem', '8MB', true), "
            "set_config('plan_cache_mode', 'force_custom_plan', true)"))
        rows = (await session.execute(counted_query(principal, p, groups))).all()
    k = len(groups)
    counted: dict[tuple[str, ...], fig.Counts] = {}
    for row in rows:
        v = row[k:]
        by = dict(zip(fig.CANCELLERS, v[2:7], strict=True))
        counted[tuple(row[:k])] = fig.Counts(
            booked=v[0], cancelled=v[1], cancelled_by={w: x for w, x in by.items() if x},
            rescheduled=v[7], done=v[8], no_show=v[9], calls_attempted=v[10],
            calls_connected=v[11], calls_failed=v[12], kiosk_never_joined=v[13],
            operator_never_joined=v[14], audio_only=v[15],
            median_seconds_to_connect=_float(v[16]), median_call_seconds=_float(v[17]),
            median_delay_hours=_float(v[18]), p90_delay_hours=_float(v[19]),
            median_offered_delay_hours=_float(v[20]), p90_offered_delay_hours=_float(v[21]))
    return counted


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


#: Beyond this many sites, their names are read all at once (a few thousand rows at
#: most) rather than through a list of ids as long (measured: 2,645 ids cost 45 ms to
#: render, the whole table 5 ms to read).
MANY_SITES = 200


async def _labels(session: AsyncSession, groups: Sequence[str],
                  counted: dict[tuple[str, ...], fig.Counts],
                  language: str) -> dict[tuple[str, str], str]:
    """What people read for each key: site and operator names, theme labels."""
    wanted: dict[str, set[str]] = {g: set() for g in groups}
    for keys in counted:
        for g, key in zip(groups, keys, strict=True):
            wanted[g].add(key)
    labels: dict[tuple[str, str], str] = {}
    if wanted.get("site"):
        query = sa.select(m.Site.id, m.Site.name)
        if len(wanted["site"]) <= MANY_SITES:
            query = query.where(m.Site.id.in_(sorted(wanted["site"])))
        for id_, name in (await session.execute(query)).all():
            if id_ in wanted["site"]:
                labels["site", id_] = name
    if wanted.get("operator"):
        for id_, name in (await session.execute(sa.select(m.Operator.id, m.Operator.name)
                                                .where(m.Operator.id.in_(
                                                    sorted(wanted["operator"]))))).all():
            labels["operator", id_] = name
    if wanted.get("theme"):
        for code, fr, nl in (await session.execute(sa.select(
                m.Theme.code, m.Theme.label_fr, m.Theme.label_nl).where(
                m.Theme.code.in_(sorted(wanted["theme"]))))).all():
            labels["theme", code] = nl if language == "nl" else fr
    return labels

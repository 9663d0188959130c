"""A small network with a hand-computed set of appointments, for the figures' tests.

Two sites (A in the Nord, 59; B in the Pas-de-Calais, 62), two operators (P: famille,
Q: retraite). Times are UTC; Paris is UTC+1 in these weeks. The period asked is
2026-11-30 .. 2026-12-07 (Paris days).

====  ====  ==  =====================  ========  ======  =================================
name  site  op  start (Paris)          booked    status  call
====  ====  ==  =====================  ========  ======  =================================
a1    A     P   Mon 30 Nov 10:00       -48 h     done    connected in 4 s, 1200 s
a2    A     P   Tue 1 Dec 10:00        -24 h     no_show operator only (kiosk never)
a3    A     Q   Wed 2 Dec 10:00        -168 h    cancelled by usager, moved once
a4    B     Q   Mon 7 Dec 00:30        -12 h     done    connected in 10 s, 600 s, audio
                                                         only, ended by failure
a5    B     P   Tue 1 Dec 00:30        -12 h     cancelled by closure
a6    B     P   Thu 3 Dec 10:00        -48 h     booked  kiosk only (operator never)
out1  A     P   Sun 29 Nov 23:30       (before the period)
out2  B     Q   Tue 8 Dec 11:00        (after the period)
====  ====  ==  =====================  ========  ======  =================================

First slots offered: a1 24 h after booking, a3 24 h, a4 12 h; the others none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.factories import OperatorBundle, make_operator, make_site, make_user
from visio import models as m
from visio.db import Database

H = timedelta(hours=1)


def utc(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class World:
    site_a: m.Site
    site_b: m.Site
    p: OperatorBundle
    q: OperatorBundle
    ids: dict[str, str]
    admin: m.User
    agent_a: m.User
    staff_p: m.User
    coordinator_62: m.User
    coordinator_75: m.User


def _call(appointment_id: str, *, connected: bool, kiosk: bool, operator: bool,
          to_connect: float | None = None, duration: float | None = None,
          audio_only: bool = False, failed: bool = False) -> m.CallOutcome:
    return m.CallOutcome(
        appointment_id=appointment_id, attempted=kiosk or operator, connected=connected,
        kiosk_joined=kiosk, operator_joined=operator, seconds_to_connect=to_connect,
        duration_seconds=duration, audio_only=audio_only, ended_by_failure=failed,
        computed_at=utc(10, 12))


async def build_world(db: Database) -> World:
    site_a = await make_site(db, departement="59", name="Site A Hondschoote")
    site_b = await make_site(db, departement="62", name="Site B Arras")
    p = await make_operator(db, themes=("famille",))
    q = await make_operator(db, themes=("retraite",))
    agent_a = await make_user(db, role="agent", sites=[site_a])
    admin = await make_user(db, role="admin")
    staff_p = await make_user(db, role="staff", staff=p.staff[0])
    coordinator_62 = await make_user(db, role="coordinator")
    coordinator_75 = await make_user(db, role="coordinator")
    rows = {
        # name: (site, operator, start, hours booked before, status, cancelled_by,
        #        moves, hours from booking to the first slot offered)
        "a1": (site_a, p, utc(30, 9, month=11), 48, "done", None, 0, 24),
        "a2": (site_a, p, utc(1, 9), 24, "no_show", None, 0, None),
        "a3": (site_a, q, utc(2, 9), 168, "cancelled", "usager", 1, 24),
        "a4": (site_b, q, utc(6, 23, 30), 12, "done", None, 0, 12),
        "a5": (site_b, p, utc(30, 23, 30, month=11), 12, "cancelled", "closure", 0, None),
        "a6": (site_b, p, utc(3, 9), 48, "booked", None, 0, None),
        "out1": (site_a, p, utc(29, 22, 30, month=11), 24, "booked", None, 0, None),
        "out2": (site_b, q, utc(8, 10), 24, "booked", None, 0, None),
    }
    ids: dict[str, str] = {}
    async with db.write() as session:
        session.add(m.UserDepartement(user_id=coordinator_62.id, departement="62"))
        session.add(m.UserDepartement(user_id=coordinator_75.id, departement="75"))
        for name, (site, op, start, before, status, by, moves, offered) in rows.items():
            booked_at = start - before * H
            end = start + timedelta(minutes=30)
            appointment = m.Appointment(
                status=status, site_id=site.id, stop_id=None, booth=1,
                operator_id=op.operator.id, desk_id=op.desk.id, staff_id=op.staff[0].id,
                service_id=op.service.id, theme=op.service.theme, start=start, end=end,
                staff_until=end, usager_first_name="Jeanne", usager_last_name="Martin",
                usager_phone=None, usager_email=None, usager_language="fr",
                usager_consent=True, booked_by=agent_a.id, version=1, created_at=booked_at,
                updated_at=booked_at, cancelled_by=by, reschedule_count=moves,
                first_offered_start=None if offered is None else booked_at + offered * H)
            session.add(appointment)
            await session.flush()
            ids[name] = appointment.id
        session.add_all([
            _call(ids["a1"], connected=True, kiosk=True, operator=True, to_connect=4.0,
                  duration=1200.0),
            _call(ids["a2"], connected=False, kiosk=False, operator=True),
            _call(ids["a4"], connected=True, kiosk=True, operator=True, to_connect=10.0,
                  duration=600.0, audio_only=True, failed=True),
            _call(ids["a6"], connected=False, kiosk=True, operator=False),
        ])
    return World(site_a=site_a, site_b=site_b, p=p, q=q, ids=ids, admin=admin,
                 agent_a=agent_a, staff_p=staff_p, coordinator_62=coordinator_62,
                 coordinator_75=coordinator_75)


#: Every figure of each site, computed by hand from the table above.
BY_SITE = {
    "A": {
        "booked": 3, "cancelled": 1, "cancelled_by_usager": 1, "cancelled_by_agent": 0,
        "cancelled_by_staff": 0, "cancelled_by_admin": 0, "cancelled_by_closure": 0,
        "rescheduled": 1, "done": 1, "no_show": 1, "open": 0, "done_rate": 0.3333,
        "no_show_rate": 0.3333, "cancelled_rate": 0.3333, "calls_attempted": 2,
        "calls_connected": 1, "connection_rate": 0.5, "calls_failed": 0,
        "kiosk_never_joined": 1, "operator_never_joined": 0,
        "median_seconds_to_connect": 4.0, "median_call_seconds": 1200.0,
        "audio_only_share": 0.0,
        # delays 24, 48, 168 h: median 48; p90 at rank 1.8: 48 + 0.8 * 120
        "median_delay_hours": 48.0, "p90_delay_hours": 144.0,
        "median_offered_delay_hours": 24.0, "p90_offered_delay_hours": 24.0,
    },
    "B": {
        "booked": 3, "cancelled": 1, "cancelled_by_usager": 0, "cancelled_by_agent": 0,
        "cancelled_by_staff": 0, "cancelled_by_admin": 0, "cancelled_by_closure": 1,
        "rescheduled": 0, "done": 1, "no_show": 0, "open": 1, "done_rate": 0.3333,
        "no_show_rate": 0.0, "cancelled_rate": 0.3333, "calls_attempted": 2,
        "calls_connected": 1, "connection_rate": 0.5, "calls_failed": 1,
        "kiosk_never_joined": 0, "operator_never_joined": 1,
        "median_seconds_to_connect": 10.0, "median_call_seconds": 600.0,
        "audio_only_share": 1.0,
        # delays 12, 12, 48 h: median 12; p90 at rank 1.8: 12 + 0.8 * 36
        "median_delay_hours": 12.0, "p90_delay_hours": 40.8,
        "median_offered_delay_hours": 12.0, "p90_offered_delay_hours": 12.0,
    },
}

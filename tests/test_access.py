"""The access policy as a table: every role, every operation, in scope and out of scope.

Pure: ``Principal`` answers from its own fields and the appointment it is shown, so no
database is needed. The admin administers everything; the agent belongs to site S1; the
staff member ST1 sits at desk D1 of operator O1. "In scope" is S1, O1, D1, ST1; "out of
scope" is S2, O2, D2, ST2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from visio.access import KIOSK, OPERATOR, Principal, Seat, principal_of
from visio.domain.kinds import Role

ADMIN = Principal(user_id="u-admin", role=Role.ADMIN)
AGENT = Principal(user_id="u-agent", role=Role.AGENT, site_ids=frozenset({"S1"}))
STAFF = Principal(user_id="u-staff", role=Role.STAFF, staff_id="ST1", desk_id="D1",
                  operator_id="O1")
PRINCIPALS = {"admin": ADMIN, "agent": AGENT, "staff": STAFF}


@dataclass(frozen=True, slots=True)
class Appt:
    """What the policy reads of an appointment."""

    site_id: str
    operator_id: str
    desk_id: str
    staff_id: str


# Every scope value of one side: the site, operator, desk and staff member it names.
IN = {"site": "S1", "operator": "O1", "desk": "D1", "staff": "ST1",
      "appointment": Appt("S1", "O1", "D1", "ST1")}
OUT = {"site": "S2", "operator": "O2", "desk": "D2", "staff": "ST2",
       "appointment": Appt("S2", "O2", "D2", "ST2")}
SCOPES = {"in": IN, "out": OUT}

Ask = Callable[[Principal, dict[str, Any]], object]
OPERATIONS: dict[str, Ask] = {
    "administer": lambda p, s: p.may_administer(),
    "see site": lambda p, s: p.sees_site(s["site"]),
    "book at site": lambda p, s: p.may_book_at(s["site"]),
    "search operator": lambda p, s: p.searchable_operator(s["operator"]),
    "see appointment": lambda p, s: p.sees(s["appointment"]),
    "change appointment": lambda p, s: p.may_change(s["appointment"]),
    "join seat": lambda p, s: p.seat(s["appointment"]),
    "test call": lambda p, s: p.may_test_call(),
    "edit availability": lambda p, s: p.may_edit_availability(s["staff"]),
    "feed of staff": lambda p, s: p.may_subscribe("staff", s["staff"]),
    "feed of desk": lambda p, s: p.may_subscribe("desk", s["desk"]),
    "feed of site": lambda p, s: p.may_subscribe("site", s["site"]),
    "import calendars": lambda p, s: p.may_import_calendars(s["staff"]),
}

KIOSK_S1 = Seat(KIOSK, "kiosk-S1")
OPERATOR_SEAT = Seat(OPERATOR, "staff-u-staff")

# (in scope, out of scope) for every operation and role.
EXPECTED: dict[str, dict[str, tuple[object, object]]] = {
    "administer": {"admin": (True, True), "agent": (False, False),
                   "staff": (False, False)},
    "see site": {"admin": (True, True), "agent": (True, False), "staff": (True, True)},
    "book at site": {"admin": (True, True), "agent": (True, False),
                     "staff": (False, False)},
    "search operator": {"admin": ((True, "O1"), (True, "O2")),
                        "agent": ((True, "O1"), (True, "O2")),
                        "staff": ((True, "O1"), (False, None))},
    "see appointment": {"admin": (True, True), "agent": (True, False),
                        "staff": (True, False)},
    "change appointment": {"admin": (True, True), "agent": (True, False),
                           "staff": (False, False)},
    # Admins see every call's log but take no seat in a call.
    "join seat": {"admin": (None, None), "agent": (KIOSK_S1, None),
                  "staff": (OPERATOR_SEAT, None)},
    "test call": {"admin": (False, False), "agent": (True, True), "staff": (True, True)},
    "edit availability": {"admin": (True, True), "agent": (False, False),
                          "staff": (True, False)},
    "feed of staff": {"admin": (True, True), "agent": (False, False), "staff": (True, False)},
    "feed of desk": {"admin": (True, True), "agent": (False, False), "staff": (True, False)},
    "feed of site": {"admin": (True, True), "agent": (True, False), "staff": (False, False)},
    "import calendars": {"admin": (True, True), "agent": (False, False),
                         "staff": (True, False)},
}

CELLS = [pytest.param(operation, role, scope, answers[0 if scope == "in" else 1],
                      id=f"{operation}-{role}-{scope}")
         for operation, by_role in EXPECTED.items()
         for role, answers in by_role.items()
         for scope in ("in", "out")]


def test_the_table_covers_every_operation_and_role() -> None:
    """The expected table has a row per operation and a cell per role, nothing more."""
    assert set(EXPECTED) == set(OPERATIONS)
    for by_role in EXPECTED.values():
        assert set(by_role) == set(PRINCIPALS)


@pytest.mark.parametrize(("operation", "role", "scope", "expected"), CELLS)
def test_principal_answers_as_the_table_says(operation: str, role: str, scope: str,
                                              expected: object) -> None:
    """Each role's answer to each operation, in and out of its scope, is the table's."""
    assert OPERATIONS[operation](PRINCIPALS[role], SCOPES[scope]) == expected


# ---------------------------------------------------------------- the finer cells of staff


@pytest.mark.parametrize(
    ("appointment", "sees", "changes", "seat"),
    [
        pytest.param(Appt("S1", "O1", "D1", "ST1"), True, False, OPERATOR_SEAT, id="own"),
        pytest.param(Appt("S2", "O1", "D1", "ST2"), True, False, OPERATOR_SEAT,
                     id="desk colleague"),
        pytest.param(Appt("S1", "O1", "D2", "ST2"), True, False, None,
                     id="same operator, other desk"),
        pytest.param(Appt("S1", "O2", "D2", "ST2"), False, False, None,
                     id="another operator at a site they see"),
    ],
)
def test_staff_see_their_operator_and_sit_in_their_own_or_their_desks_calls(
    appointment: Appt, sees: bool, changes: bool, seat: Seat | None
) -> None:
    """Staff see by operator, never change, and take a seat by staff member or desk."""
    assert STAFF.sees(appointment) is sees
    assert STAFF.may_change(appointment) is changes
    assert STAFF.seat(appointment) == seat


def test_agent_kiosk_seat_is_shared_by_every_agent_of_the_site() -> None:
    """Two agents of one site take the same kiosk seat; the seat is the site's."""
    other = Principal(user_id="u-other", role=Role.AGENT, site_ids=frozenset({"S1", "S3"}))
    appointment = IN["appointment"]
    assert AGENT.seat(appointment) == other.seat(appointment) == KIOSK_S1


@pytest.mark.parametrize("principal", [ADMIN, AGENT, STAFF], ids=["admin", "agent", "staff"])
def test_a_search_without_operator_is_narrowed_only_for_staff(principal: Principal) -> None:
    """Staff searching every operator search their own; others search every operator."""
    expected = (True, "O1") if principal is STAFF else (True, None)
    assert principal.searchable_operator(None) == expected


def test_an_agent_without_sites_sees_and_books_nothing() -> None:
    """An agent attached to no site is out of scope everywhere."""
    lonely = Principal(user_id="u-lonely", role=Role.AGENT)
    appointment = IN["appointment"]
    assert not lonely.sees_site("S1")
    assert not lonely.may_book_at("S1")
    assert not lonely.sees(appointment)
    assert not lonely.may_change(appointment)
    assert lonely.seat(appointment) is None


def test_a_principal_is_built_from_stored_values() -> None:
    """principal_of reads the stored role string and any collection of site ids."""
    built = principal_of(user_id="u-agent", role="agent", site_ids=["S1", "S1"])
    assert built == AGENT
    with pytest.raises(ValueError, match="'root'"):
        principal_of(user_id="u", role="root")


# ---------------------------------------------------------------- SQL scopes


def _sql(clause: sa.ColumnElement[bool]) -> str:
    return str(clause.compile(compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize(
    ("principal", "appointments", "sites"),
    [
        pytest.param(ADMIN, "true", "true", id="admin"),
        pytest.param(AGENT, "appointments.site_id IN ('S1')", "sites.id IN ('S1')",
                     id="agent"),
        pytest.param(STAFF, "appointments.operator_id = 'O1'", "true", id="staff"),
        # A staff account without an operator matches no appointment (never a NULL match).
        pytest.param(Principal(user_id="u", role=Role.STAFF),
                     "appointments.operator_id = ''", "true", id="staff without desk"),
    ],
)
def test_sql_scopes_say_what_the_principal_sees(
    principal: Principal, appointments: str, sites: str
) -> None:
    """The WHERE clauses select exactly the appointments and sites sees() allows."""
    assert _sql(principal.appointment_filter()) == appointments
    assert _sql(principal.site_filter()) == sites

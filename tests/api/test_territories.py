"""Territories: desks serve départements (optionally narrowed to communes); search and
booking offer only desks whose territory covers the site, or that day's bus stop."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from tests.conftest import Client
from tests.factories import (
    OperatorBundle,
    auth_headers,
    make_operator,
    make_site,
    make_stop,
    make_user,
    usager,
)
from visio import models as m
from visio.db import Database

# The default clock is Monday 23 November 2026; search the week after.
FROM, TO = "2026-11-30T00:00:00+01:00", "2026-12-05T00:00:00+01:00"
MONDAY_10 = "2026-11-30T10:00:00+01:00"
TUESDAY_10 = "2026-12-01T10:00:00+01:00"
BORDER = ["59", "62", "02", "08", "55", "54"]


async def _slots(client: Client, headers: dict[str, str], site: m.Site,
                 theme: str = "famille", **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/slots", headers=headers, params={
        "site_id": site.id, "theme": theme, "from": FROM, "to": TO, **params})
    assert response.status == 200, await response.text()
    return list((await response.json())["items"])


async def _book(client: Client, headers: dict[str, str], site: m.Site, op: OperatorBundle,
                start: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/api/v1/appointments",
        json={"site_id": site.id, "service_id": op.service.id, "start": start,
              "usager": usager(), **extra},
        headers={**headers, "Idempotency-Key": secrets.token_hex(8)})
    return response.status, await response.json(content_type=None)


def _operators(slots: list[dict[str, Any]]) -> set[str]:
    return {s["operator_id"] for s in slots}


async def test_search_offers_only_desks_whose_territory_covers_the_site(
    db: Database, client: Client
) -> None:
    """A Nord site sees the Nord's CAF and an unscoped desk, never the Pas-de-Calais CAF."""
    site = await make_site(db, departement="59")
    nord = await make_operator(db, departements=["59"])
    pas_de_calais = await make_operator(db, departements=["62"])
    everywhere = await make_operator(db)
    headers = await auth_headers(client, await make_user(db, role="agent", sites=[site]))
    seen = _operators(await _slots(client, headers, site))
    assert seen == {nord.operator.id, everywhere.operator.id}
    assert pas_de_calais.operator.id not in seen


async def test_booking_an_operator_outside_the_territory_is_out_of_territory(
    db: Database, client: Client
) -> None:
    """Booking a desk that does not serve the site's département is a 422 out_of_territory."""
    site = await make_site(db, departement="59")
    pas_de_calais = await make_operator(db, departements=["62"])
    nord = await make_operator(db, departements=["59"])
    headers = await auth_headers(client, await make_user(db, role="agent", sites=[site]))
    status, body = await _book(client, headers, site, pas_de_calais, MONDAY_10)
    assert status == 422, body
    assert body["reason"] == "out_of_territory"
    status, body = await _book(client, headers, site, nord, MONDAY_10)
    assert status == 201, body


async def test_a_staff_member_of_a_desk_outside_the_territory_is_refused(
    db: Database, client: Client
) -> None:
    """Naming a staff member whose desk does not serve the site is a 422 out_of_territory."""
    site = await make_site(db, departement="59")
    op = await make_operator(db, departements=["59"])
    async with db.write() as session:
        other = m.Desk(operator_id=op.operator.id, name="Desk 62")
        session.add(other)
        await session.flush()
        session.add(m.DeskDepartement(desk_id=other.id, departement="62"))
        member = m.StaffMember(desk_id=other.id, display_name="Staff 62", languages=["fr"],
                               active=True)
        session.add(member)
    headers = await auth_headers(client, await make_user(db, role="agent", sites=[site]))
    slots = await _slots(client, headers, site)
    assert slots
    assert {s["desk_id"] for s in slots} == {op.desk.id}
    status, body = await _book(client, headers, site, op, MONDAY_10, staff_id=member.id)
    assert status == 422, body
    assert body["reason"] == "out_of_territory"


async def test_a_bus_stop_outside_a_narrowed_territory_gets_no_slots(
    db: Database, client: Client
) -> None:
    """A desk narrowed to some Nord communes serves the bus on the day it stops in one of
    them, and not the day it stops in another Nord commune."""
    bus = await make_site(db, kind="itinerant", departement="59")
    inside = await make_stop(db, bus, date(2026, 11, 30), commune_insee="59309")
    outside = await make_stop(db, bus, date(2026, 12, 1), commune_insee="59043")
    op = await make_operator(db, departements=["59"], communes=["59309"])
    headers = await auth_headers(client, await make_user(db, role="agent", sites=[bus]))
    slots = await _slots(client, headers, bus)
    assert slots
    assert {s["stop_id"] for s in slots} == {inside.id}
    assert not await _slots(client, headers, bus, stop_id=outside.id)
    status, body = await _book(client, headers, bus, op, TUESDAY_10)
    assert status == 422, body
    assert body["reason"] == "out_of_territory"
    status, body = await _book(client, headers, bus, op, MONDAY_10)
    assert status == 201, body
    assert body["stop_id"] == inside.id


async def test_a_bus_crossing_into_another_departement_is_served_by_that_departements_desk(
    db: Database, client: Client
) -> None:
    """Each day's stop is served by the desk of the stop's own département."""
    bus = await make_site(db, kind="itinerant", departement="59")
    in_nord = await make_stop(db, bus, date(2026, 11, 30), commune_insee="59309")
    in_aisne = await make_stop(db, bus, date(2026, 12, 1), commune_insee="02361")
    nord = await make_operator(db, departements=["59"])
    aisne = await make_operator(db, departements=["02"])
    headers = await auth_headers(client, await make_user(db, role="agent", sites=[bus]))
    by_stop: dict[str, set[str]] = {}
    for slot in await _slots(client, headers, bus):
        by_stop.setdefault(slot["stop_id"], set()).add(slot["operator_id"])
    assert by_stop == {in_nord.id: {nord.operator.id}, in_aisne.id: {aisne.operator.id}}


async def test_the_belgian_cell_is_seen_from_the_nord_and_not_from_brittany(
    db: Database, client: Client
) -> None:
    """A cross-border cell serving the border départements is offered at a Nord site, not
    at a Breton (Finistère) one."""
    nord = await make_site(db, departement="59")
    finistere = await make_site(db, departement="29", commune_insee="29019")
    cell = await make_operator(db, country="BE", languages=["fr", "nl"], departements=BORDER)
    headers = await auth_headers(client, await make_user(db, role="admin"))
    assert _operators(await _slots(client, headers, nord)) == {cell.operator.id}
    assert await _slots(client, headers, finistere) == []
    status, body = await _book(client, headers, finistere, cell, MONDAY_10)
    assert status == 422, body
    assert body["reason"] == "out_of_territory"


async def test_admin_sets_a_desks_territory_and_search_follows(
    db: Database, client: Client
) -> None:
    """PUT /desks/{id}/territory replaces the territory; the next search obeys it."""
    site = await make_site(db, departement="59")
    op = await make_operator(db)
    admin = await auth_headers(client, await make_user(db, role="admin"))
    assert _operators(await _slots(client, admin, site)) == {op.operator.id}
    path = f"/api/v1/desks/{op.desk.id}/territory"
    response = await client.put(path, headers=admin,
                                json={"departements": ["62", "02"], "communes": ["62767"]})
    assert response.status == 200, await response.text()
    assert await response.json() == {"desk_id": op.desk.id, "departements": ["02", "62"],
                                     "communes": ["62767"]}
    assert await _slots(client, admin, site) == []
    response = await client.put(path, headers=admin, json={"departements": ["59", "62"]})
    assert response.status == 200
    assert _operators(await _slots(client, admin, site)) == {op.operator.id}


async def test_only_admins_set_territories_and_codes_are_checked(
    db: Database, client: Client
) -> None:
    """Agents and staff get 403; a bad code 400; a commune outside the départements 422;
    an unknown desk 404."""
    site = await make_site(db)
    op = await make_operator(db)
    path = f"/api/v1/desks/{op.desk.id}/territory"
    for user in (await make_user(db, role="agent", sites=[site]),
                 await make_user(db, role="staff", staff=op.staff[0])):
        response = await client.put(path, headers=await auth_headers(client, user),
                                    json={"departements": ["59"]})
        assert response.status == 403
    admin = await auth_headers(client, await make_user(db, role="admin"))
    bad_bodies: list[dict[str, list[str]]] = [
        {"departements": ["20"]}, {"departements": []},
        {"departements": ["59"], "communes": ["5930"]}]
    for bad in bad_bodies:
        response = await client.put(path, headers=admin, json=bad)
        assert response.status == 400, bad
    response = await client.put(path, headers=admin,
                                json={"departements": ["59"], "communes": ["62767"]})
    assert response.status == 422
    assert (await response.json())["field"] == "communes[0]"
    response = await client.put("/api/v1/desks/nope/territory", headers=admin,
                                json={"departements": ["59"]})
    assert response.status == 404
    async with db.read() as session:
        assert await session.get(m.DeskDepartement, (op.desk.id, "59")) is None


async def test_sites_carry_their_departement_and_commune(db: Database, client: Client) -> None:
    """A site is created and changed with its INSEE codes; a commune of another département
    is a 422; the commune alone gives the département."""
    admin = await auth_headers(client, await make_user(db, role="admin"))
    body = {"name": "France Services de Guise", "kind": "fixed", "commune": "Guise",
            "address": "Place d'Armes, 02120 Guise", "departement": "02",
            "commune_insee": "02361"}
    response = await client.post("/api/v1/sites", headers=admin, json=body)
    assert response.status == 201, await response.text()
    site = await response.json()
    assert (site["departement"], site["commune_insee"]) == ("02", "02361")
    response = await client.post("/api/v1/sites", headers=admin,
                                 json={**body, "departement": "59"})
    assert response.status == 422
    response = await client.patch(f"/api/v1/sites/{site['id']}", headers=admin,
                                  json={"commune_insee": "2A004"})
    assert response.status == 200
    assert (await response.json())["departement"] == "2A"
    response = await client.patch(f"/api/v1/sites/{site['id']}", headers=admin,
                                  json={"departement": "971"})
    assert (await response.json())["commune_insee"] is None
    response = await client.post("/api/v1/sites", headers=admin,
                                 json={**body, "departement": "96"})
    assert response.status == 400

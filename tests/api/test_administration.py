"""Administration over the API: an admin sets up a bus, an operator and its people."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client
from tests.factories import PASSWORD, auth_headers, make_user
from visio.db import Database


async def _post(client: Client, url: str, body: dict[str, Any],
                headers: dict[str, str], status: int = 201) -> dict[str, Any]:
    response = await client.post(url, json=body, headers=headers)
    assert response.status == status, await response.text()
    return dict(await response.json())


async def test_admin_sets_up_a_bus_and_a_belgian_cell_that_agents_can_book(
    db: Database, client: Client
) -> None:
    admin = await auth_headers(client, await make_user(db, role="admin"))
    bus = await _post(client, "/api/v1/sites", {
        "name": "FSI de test", "kind": "itinerant", "commune": "Bailleul",
        "address": "Bus", "booths": 1}, admin)
    stops = await _post(client, f"/api/v1/sites/{bus['id']}/stops", {"stops": [
        {"date": "2026-12-01", "commune": "Bailleul", "place": "Grand-Place",
         "hours": [{"opens": "09:30", "closes": "12:30"}, {"opens": "13:30", "closes": "16:00"}]},
        {"date": "2026-12-02", "commune": "Cassel", "place": "Place du Général Vandamme",
         "hours": [{"opens": "09:30", "closes": "13:00"}]},
    ]}, admin, status=201)
    assert [s["closes"] for s in stops["items"]] == ["16:00", "13:00"]
    cell = await _post(client, "/api/v1/operators", {
        "name": "Cellule test", "code": "TEST-BE", "country": "BE", "kind": "cross_border",
        "languages": ["fr", "nl"], "timezone": "Europe/Brussels"}, admin)
    desk = await _post(client, f"/api/v1/operators/{cell['id']}/desks",
                       {"name": "Cellule test – visio"}, admin)
    service = await _post(client, "/api/v1/services", {
        "operator_id": cell["id"], "theme": "retraite", "duration_minutes": 45,
        "buffer_minutes": 15, "languages": ["fr", "nl"]}, admin)
    staff_user = await _post(client, "/api/v1/users", {
        "email": "conseiller@cellule.test", "password": PASSWORD, "role": "staff",
        "display_name": "Conseiller test", "desk_id": desk["id"]}, admin)
    agent_user = await _post(client, "/api/v1/users", {
        "email": "agent@bus.test", "password": PASSWORD, "role": "agent",
        "display_name": "Agent du bus", "site_ids": [bus["id"]]}, admin)
    assert agent_user["site_ids"] == [bus["id"]]

    login = await client.post("/api/v1/auth/token",
                              json={"email": "conseiller@cellule.test", "password": PASSWORD})
    staff = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    availability = await client.put(
        f"/api/v1/staff/{staff_user['staff_id']}/availability", headers=staff,
        json={"rules": [{"weekday": d, "opens": "09:00", "closes": "17:00"} for d in range(5)]})
    assert availability.status == 200, await availability.text()
    await _post(client, "/api/v1/closures", {"date": "2026-12-02", "reason": "Séminaire",
                                             "operator_id": cell["id"]}, admin)

    login = await client.post("/api/v1/auth/token",
                              json={"email": "agent@bus.test", "password": PASSWORD})
    agent = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    response = await client.get("/api/v1/slots", headers=agent, params={
        "site_id": bus["id"], "theme": "retraite", "from": "2026-11-30T00:00:00+01:00",
        "to": "2026-12-05T00:00:00+01:00"})
    slots = (await response.json())["items"]
    # Only the Bailleul stop: Cassel's day is the cell's closure. Starts every 45 minutes
    # from the staff member's 09:00, from the moment the bus opens at 09:30.
    assert {s["start"][:10] for s in slots} == {"2026-12-01"}
    assert [s["start"][11:16] for s in slots][:3] == ["09:45", "10:30", "11:15"]
    assert all(s["service_id"] == service["id"] for s in slots)

    site = await (await client.get(f"/api/v1/sites/{bus['id']}", headers=agent)).json()
    assert [s["commune"] for s in site["stops"]] == ["Bailleul", "Cassel"]
    operators = await (await client.get("/api/v1/operators", headers=agent,
                                        params={"country": "BE", "theme": "retraite"})).json()
    assert [o["code"] for o in operators["items"]] == ["TEST-BE"]
    assert operators["items"][0]["themes"] == ["retraite"]


async def test_only_admins_administer(db: Database, client: Client) -> None:
    admin = await auth_headers(client, await make_user(db, role="admin"))
    site = await _post(client, "/api/v1/sites", {
        "name": "Site", "kind": "fixed", "commune": "Hondschoote", "address": "Mairie",
        "opening_hours": {"monday": [{"opens": "09:00", "closes": "12:00"}]}}, admin)
    assert site["opening_hours"] == {"monday": [{"opens": "09:00", "closes": "12:00"}]}
    agent = await auth_headers(client, await make_user(db, role="agent"))
    for method, url, body in (
        ("POST", "/api/v1/operators", {"name": "x"}),
        ("PATCH", f"/api/v1/sites/{site['id']}", {"booths": 3}),
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/closures", {"date": "2026-12-24", "site_id": site["id"]}),
    ):
        response = await client.request(method, url, json=body, headers=agent)
        assert response.status == 403, (method, url)
        assert response.content_type == "application/problem+json"


async def test_closing_what_does_not_exist_names_it_in_the_callers_language(
    db: Database, client: Client
) -> None:
    """A closure of an unknown site, operator or desk is a 404 whose sentence names it."""
    headers = await auth_headers(client, await make_user(db, role="admin"))
    for owner, french, dutch in (
        ("site_id", "Il n'y a pas de site nowhere.", "Er is geen site nowhere."),
        ("desk_id", "Il n'y a pas de guichet nowhere.", "Er is geen loket nowhere."),
    ):
        for language, sentence in (("fr", french), ("nl", dutch)):
            response = await client.post(
                "/api/v1/closures", json={"date": "2026-12-02", owner: "nowhere"},
                headers={**headers, "Accept-Language": language})
            assert response.status == 404
            assert (await response.json())["detail"] == sentence

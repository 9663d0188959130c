"""GET /api/v1/audit: administrators read the trail (coordinators their départements'
part), in the order it was written, paginated, filtered, as JSON or CSV; no personal data."""

from __future__ import annotations

import csv
import io
import secrets
from typing import Any, cast

import pytest
import sqlalchemy as sa

from tests.conftest import Client
from tests.factories import auth_headers, make_operator, make_site, make_user, usager
from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain.kinds import Role
from visio.services import audit

MONDAY_9 = "2026-11-30T09:00:00+01:00"


async def book(client: Client, headers: dict[str, str], site: m.Site,
               service: m.Service) -> tuple[dict[str, Any], str]:
    response = await client.post(
        "/api/v1/appointments", json={"site_id": site.id, "service_id": service.id,
                                      "start": MONDAY_9, "usager": usager()},
        headers={**headers, "Idempotency-Key": secrets.token_hex(8)})
    assert response.status == 201, await response.text()
    return await response.json(), response.headers["X-Request-Id"]


async def test_admins_read_the_trail_filtered_paginated_and_as_csv(
    db: Database, client: Client,
) -> None:
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    admin = await make_user(db, role="admin")
    agent_headers = await auth_headers(client, agent)
    admin_headers = await auth_headers(client, admin)
    booked, request_id = await book(client, agent_headers, site, op.service)
    response = await client.patch(
        f"/api/v1/appointments/{booked['id']}/usager",
        json={"phone": "+33698765432", "note": "Retraite"},
        headers={**agent_headers, "If-Match": '"v1"'})
    assert response.status == 200, await response.text()
    wrong = await client.post("/api/v1/auth/token",
                              json={"email": agent.email, "password": "not the password"})
    assert wrong.status == 401

    everything = await client.get("/api/v1/audit", headers=admin_headers)
    assert everything.status == 200, await everything.text()
    items = (await everything.json())["items"]
    assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)
    actions = [i["action"] for i in items]
    assert actions == ["login.succeeded", "login.succeeded", "booked", "corrected",
                       "login.refused"]
    booked_entry = items[2]
    assert booked_entry["actor_id"] == agent.id
    assert booked_entry["actor_kind"] == "agent"
    assert booked_entry["target_kind"] == "appointment"
    assert booked_entry["target_id"] == booked["id"]
    assert booked_entry["site_id"] == site.id
    assert booked_entry["request_id"] == request_id
    assert items[3]["fields"] == ["note", "phone"]
    assert items[4]["actor_id"] == agent.id
    assert items[4]["detail"] == {"reason": "wrong_password"}
    text = await everything.text()
    for personal in ("Jeanne", "Martin", "+33612345678", "+33698765432", "Retraite",
                     agent.email):
        assert personal not in text

    # Filtered by target and by actor; the period excludes all.
    on_it = await (await client.get("/api/v1/audit", headers=admin_headers,
                                    params={"target": booked["id"]})).json()
    assert [i["action"] for i in on_it["items"]] == ["booked", "corrected"]
    by_admin = await (await client.get("/api/v1/audit", headers=admin_headers,
                                       params={"actor": admin.id})).json()
    assert [i["action"] for i in by_admin["items"]] == ["login.succeeded"]
    before = await (await client.get("/api/v1/audit", headers=admin_headers, params={
        "to": "2020-01-01T00:00:00Z"})).json()
    assert before["items"] == []

    # Two by two, the cursor goes through all of it once.
    seen: list[int] = []
    params = {"limit": "2"}
    while True:
        page = await (await client.get("/api/v1/audit", headers=admin_headers,
                                       params=params)).json()
        seen += [i["seq"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": "2", "cursor": page["next_cursor"]}
    assert seen == [i["seq"] for i in items]

    # CSV with either separator, read back by Python's csv module.
    for sep in (",", ";"):
        exported = await client.get("/api/v1/audit.csv", headers=admin_headers,
                                    params={"sep": sep})
        assert exported.status == 200
        assert exported.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await exported.text()), delimiter=sep))
        assert [r["action"] for r in rows] == actions
        assert rows[3]["fields"] == "note phone"
        assert rows[2]["request_id"] == request_id

    # Agents (and staff) do not read the trail.
    refused = await client.get("/api/v1/audit", headers=agent_headers)
    assert refused.status == 403
    assert (await audit.verify(db=db)).intact


async def test_a_coordinator_reads_its_departements_sites_only(db: Database) -> None:
    """Through the access policy's accessor: entries about sites of its départements."""
    if "coordinator" not in {role.value for role in Role}:
        pytest.skip("the coordinator role arrives with the figures (issue 19)")
    nord, somme = await make_site(db, departement="59"), await make_site(db, departement="80")
    admin = await make_user(db, role="admin")
    async with db.write() as session:
        for site in (nord, somme):
            audit.record(session, actor=audit.THE_SYSTEM, action="site.changed",
                         target_kind="site", target_id=site.id, site_id=site.id)
        audit.record(session, actor=audit.THE_SYSTEM, action="account.created",
                     target_kind="user", target_id=admin.id)
    coordinator = cast(Any, Principal)(user_id=admin.id, role=Role("coordinator"),
                                       departements=frozenset({"59"}))
    seen = await audit.entries(db=db, principal=coordinator, query=audit.Query())
    assert [r.target_id for r in seen] == [nord.id]


async def test_the_audit_scope_of_each_role(db: Database) -> None:
    site = await make_site(db)
    async with db.write() as session:
        audit.record(session, actor=audit.THE_SYSTEM, action="site.changed",
                     target_kind="site", target_id=site.id, site_id=site.id)
    for role, sees in ((Role.ADMIN, 1), (Role.AGENT, 0), (Role.STAFF, 0)):
        principal = Principal(user_id="u", role=role, site_ids=frozenset({site.id}))
        assert audit.may_read(principal) is (role is Role.ADMIN)
        assert len(await audit.entries(db=db, principal=principal,
                                       query=audit.Query())) == sees
    async with db.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(m.AuditEntry)) == 1

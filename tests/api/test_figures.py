"""GET /api/v1/figures and the per-appointment export: hand-computed figures for every
group_by, the scope of every role, CSV read back with both separators."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.api.figures_world import BY_SITE, World, build_world
from tests.conftest import Client
from tests.factories import auth_headers
from visio.db import Database
from visio.domain.figures import METRICS

PERIOD = "from=2026-11-30&to=2026-12-07"


@pytest.fixture
async def world(db: Database) -> World:
    return await build_world(db)


async def _figures(client: Client, headers: dict[str, str], group_by: str) -> list[Any]:
    response = await client.get(f"/api/v1/figures?{PERIOD}&group_by={group_by}",
                                headers=headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["group_by"] == group_by.split(",")
    return list(body["items"])


def _by(items: list[Any], group: str, *names: str) -> dict[str, dict[str, Any]]:
    return {item["keys"][group]: {n: item[n] for n in names} for item in items}


async def test_every_figure_per_site_equals_the_hand_computed_table(
    world: World, client: Client
) -> None:
    items = await _figures(client, await auth_headers(client, world.admin), "site")
    found = {item["keys"]["site"]: {n: item[n] for n in METRICS} for item in items}
    assert found == {world.site_a.id: BY_SITE["A"], world.site_b.id: BY_SITE["B"]}
    labels = {item["keys"]["site"]: item["labels"]["site"] for item in items}
    assert labels == {world.site_a.id: world.site_a.name, world.site_b.id: world.site_b.name}


async def test_per_operator_theme_and_departement(world: World, client: Client) -> None:
    headers = await auth_headers(client, world.admin)
    names = ("booked", "cancelled", "done", "no_show", "open", "calls_attempted",
             "calls_connected", "median_delay_hours", "p90_delay_hours")
    # P: a1 a2 a5 a6, delays 48 24 12 48 h; Q: a3 a4, delays 168 12 h.
    p = {"booked": 4, "cancelled": 1, "done": 1, "no_show": 1, "open": 1,
         "calls_attempted": 3, "calls_connected": 1, "median_delay_hours": 36.0,
         "p90_delay_hours": 48.0}
    q = {"booked": 2, "cancelled": 1, "done": 1, "no_show": 0, "open": 0,
         "calls_attempted": 1, "calls_connected": 1, "median_delay_hours": 90.0,
         "p90_delay_hours": 152.4}
    assert _by(await _figures(client, headers, "operator"), "operator", *names) == {
        world.p.operator.id: p, world.q.operator.id: q}
    themes = await _figures(client, headers, "theme")
    assert _by(themes, "theme", *names) == {"famille": p, "retraite": q}
    assert {i["labels"]["theme"] for i in themes} == {"Famille, prestations familiales",
                                                      "Retraite"}
    by_departement = _by(await _figures(client, headers, "departement"), "departement",
                         *(n for n in METRICS))
    assert by_departement == {"59": BY_SITE["A"], "62": BY_SITE["B"]}


async def test_months_and_weeks_are_those_of_the_sites_zone(
    world: World, client: Client
) -> None:
    headers = await auth_headers(client, world.admin)
    # a5 starts on 30 November in UTC but 1 December in Paris; a4 on Sunday 6 December
    # in UTC (week 49) but Monday 7 December in Paris (week 50).
    months = _by(await _figures(client, headers, "month"), "month", "booked", "done")
    assert months == {"2026-11": {"booked": 1, "done": 1},
                      "2026-12": {"booked": 5, "done": 1}}
    weeks = _by(await _figures(client, headers, "week"), "week", "booked", "cancelled")
    assert weeks == {"2026-W49": {"booked": 5, "cancelled": 2},
                     "2026-W50": {"booked": 1, "cancelled": 0}}


async def test_several_groups_at_once(world: World, client: Client) -> None:
    items = await _figures(client, await auth_headers(client, world.admin), "site,month")
    found = {(i["keys"]["site"], i["keys"]["month"]): i["booked"] for i in items}
    assert found == {(world.site_a.id, "2026-11"): 1, (world.site_a.id, "2026-12"): 2,
                     (world.site_b.id, "2026-12"): 3}


@pytest.mark.parametrize(("who", "expected"), [
    ("admin", {"A": 3, "B": 3}),
    ("agent_a", {"A": 3}),
    ("staff_p", {"A": 2, "B": 2}),  # operator P only: a1 a2 at A, a5 a6 at B
    ("coordinator_62", {"B": 3}),
    ("coordinator_75", {}),
])
async def test_each_role_sees_its_own_scope(
    world: World, client: Client, who: str, expected: dict[str, int]
) -> None:
    items = await _figures(client, await auth_headers(client, getattr(world, who)), "site")
    names = {world.site_a.id: "A", world.site_b.id: "B"}
    assert {names[i["keys"]["site"]]: i["booked"] for i in items} == expected
    export = await client.get(f"/api/v1/figures/appointments?{PERIOD}",
                              headers=await auth_headers(client, getattr(world, who)))
    assert export.status == 200
    assert len((await export.json())["items"]) == sum(expected.values())


@pytest.mark.parametrize("sep", [",", ";"])
async def test_csv_reads_back_with_both_separators(
    world: World, client: Client, sep: str
) -> None:
    headers = await auth_headers(client, world.admin)
    response = await client.get(f"/api/v1/figures?{PERIOD}&group_by=site&format=csv"
                                f"&sep={'%3B' if sep == ';' else '%2C'}", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = (await response.read()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=sep))
    assert list(rows[0]) == ["site", "site_label", *METRICS]
    by_site = {r["site"]: r for r in rows}
    a = by_site[world.site_a.id]
    assert a["site_label"] == world.site_a.name
    assert int(a["booked"]) == 3
    decimal = "," if sep == ";" else "."
    assert a["p90_delay_hours"] == f"144{decimal}0"
    assert float(a["done_rate"].replace(",", ".")) == BY_SITE["A"]["done_rate"]
    # The same through Accept, without ?format.
    accepted = await client.get(f"/api/v1/figures?{PERIOD}",
                                headers={**headers, "Accept": "text/csv"})
    assert accepted.headers["Content-Type"].startswith("text/csv")
    header = next(csv.reader(io.StringIO((await accepted.read()).decode("utf-8-sig"))))
    assert header[:2] == ["site", "site_label"]


@pytest.mark.parametrize("sep", [",", ";"])
async def test_the_appointment_export_has_no_personal_data(
    world: World, client: Client, sep: str
) -> None:
    headers = await auth_headers(client, world.admin)
    response = await client.get(
        f"/api/v1/figures/appointments?{PERIOD}&format=csv&sep={'%3B' if sep == ';' else '%2C'}",
        headers=headers)
    assert response.status == 200
    text = (await response.read()).decode("utf-8-sig")
    assert "Jeanne" not in text
    assert "Martin" not in text
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(text), delimiter=sep)}
    assert set(rows) == {world.ids[n] for n in ("a1", "a2", "a3", "a4", "a5", "a6")}
    a4 = rows[world.ids["a4"]]
    assert (a4["status"], a4["call_connected"], a4["audio_only"], a4["ended_by_failure"]) \
        == ("done", "true", "true", "true")
    assert a4["start"] == "2026-12-06T23:30:00+00:00"
    assert rows[world.ids["a3"]]["cancelled_by"] == "usager"
    assert rows[world.ids["a3"]]["call_connected"] == ""


async def test_a_bad_period_or_group_is_refused(world: World, client: Client) -> None:
    headers = await auth_headers(client, world.admin)
    for query in ("from=2026-12-07&to=2026-11-30", "from=2025-01-01&to=2026-12-31",
                  "from=0001-01-01&to=0001-01-02", "from=9999-12-30&to=9999-12-31",
                  f"{PERIOD}&group_by=sites", f"{PERIOD}&group_by=site,,month"):
        response = await client.get(f"/api/v1/figures?{query}", headers=headers)
        assert response.status in (400, 422), query
        assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_an_admin_creates_a_coordinator_who_sees_its_departements(
    world: World, client: Client
) -> None:
    headers = await auth_headers(client, world.admin)
    response = await client.post("/api/v1/users", headers=headers, json={
        "email": "coordination.62@visio.test", "password": "a long enough password",
        "role": "coordinator", "display_name": "Coordination 62", "departements": ["62"]})
    assert response.status == 201, await response.text()
    assert (await response.json())["departements"] == ["62"]
    login = await client.post("/api/v1/auth/token", json={
        "email": "coordination.62@visio.test", "password": "a long enough password"})
    token = (await login.json())["access_token"]
    items = await _figures(client, {"Authorization": f"Bearer {token}"}, "site")
    assert [(i["keys"]["site"], i["booked"]) for i in items] == [(world.site_b.id, 3)]
    refused = await client.post("/api/v1/users", headers=headers, json={
        "email": "nowhere@visio.test", "password": "a long enough password",
        "role": "coordinator", "display_name": "Nowhere"})
    assert refused.status == 422

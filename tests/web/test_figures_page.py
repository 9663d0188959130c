"""The network's figures page in Chromium: charts drawn, the table equal to the API, the
CSV links, the language switch, axe-core clean in French and Dutch, screenshots."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import missing_service
from tests.web.conftest import AXE, Live, log_in
from visio import models as m
from visio.clock import utcnow
from visio.keys import database_key
from visio.security import password_hasher
from visio.seed import demo_id
from visio.services import accounts

COORDINATOR = "coordination.nord@visio.test"
LOCALES = {"fr": "fr-FR", "nl": "nl-BE"}
#: (commune, operator, theme, days ago, status, cancelled_by, call: connected or None)
ROWS = [
    ("Hondschoote", "CAF59", "famille", 40, "done", None, True),
    ("Hondschoote", "CAF59", "famille", 39, "no_show", None, False),
    ("Hondschoote", "CAF59", "famille", 33, "cancelled", "usager", None),
    ("Le Cateau-Cambrésis", "FAMIWAL-TF", "famille", 38, "done", None, True),
    ("Le Cateau-Cambrésis", "FAMIWAL-TF", "famille", 32, "done", None, False),
]


async def _network(live: Live) -> tuple[str, str]:
    """Past appointments with call outcomes, and a coordinator of the Nord; the period."""
    app = live.server.app
    assert app is not None
    db = app[database_key]
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    async with db.write() as session:
        exists = await session.get(m.User, demo_id("figures", COORDINATOR))
    if exists is None:
        await accounts.create_user(db=db, hasher=password_hasher(), email=COORDINATOR,
                                   password="visio-demo-2026", role="coordinator",
                                   display_name="Coordination du Nord", departements=["59"])
        async with db.write() as session:
            session.add(m.User(id=demo_id("figures", COORDINATOR), email="marker@figures.test",
                               display_name="marker", password_hash="x", role="admin",
                               active=False))
            for i, (commune, operator, theme, ago, status, by, call) in enumerate(ROWS):
                start = now - timedelta(days=ago, hours=i)
                booked_at = start - timedelta(days=3 + i)
                appointment = m.Appointment(
                    status=status, site_id=demo_id("site", commune), stop_id=None, booth=1,
                    operator_id=demo_id("operator", operator),
                    desk_id=demo_id("desk", operator),
                    staff_id=demo_id("staff", operator, "1"),
                    service_id=demo_id("service", operator, theme), theme=theme, start=start,
                    end=start + timedelta(minutes=30),
                    staff_until=start + timedelta(minutes=30), usager_first_name="Figures",
                    usager_last_name="Chiffres", usager_phone=None, usager_email=None,
                    usager_language="fr", usager_consent=True,
                    booked_by=demo_id("user", "admin@visio.test"), version=1,
                    created_at=booked_at, updated_at=booked_at, cancelled_by=by,
                    first_offered_start=booked_at + timedelta(days=1))
                session.add(appointment)
                await session.flush()
                if call is not None:
                    session.add(m.CallOutcome(
                        appointment_id=appointment.id, attempted=True, connected=call,
                        kiosk_joined=True, operator_joined=call,
                        seconds_to_connect=3.0 + i if call else None,
                        duration_seconds=900.0 if call else None, audio_only=False,
                        ended_by_failure=not call, computed_at=now))
    first = (now - timedelta(days=45)).date().isoformat()
    last = (now - timedelta(days=25)).date().isoformat()
    return first, last


def _axe(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert result["passes"], "axe ran no rule"
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_the_figures_page_draws_charts_and_its_table_equals_the_api(
    live: Live, browser: Any, lang: str, tmp_path: Path
) -> None:
    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    first, last = live.server.run(_network(live))
    # axe-core is injected as an inline script: the page's CSP would refuse it.
    context = browser.new_context(locale=LOCALES[lang], bypass_csp=True,
                                  viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(f"{live.url}/lang?to={lang}&next=/login")
    log_in(page, live.url, COORDINATOR)
    # A coordinator lands on the figures.
    page.wait_for_url(lambda u: "/network/figures" in u)
    page.goto(f"{live.url}/network/figures?from={first}&to={last}&group_by=site")
    page.wait_for_selector("#figures")
    assert page.get_attribute("html", "lang") == lang

    # Each chart is an SVG drawn by pygal, loaded, with bars.
    for name in ("weeks", "connections", "delays"):
        image = page.locator(f"#chart-{name} img")
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        svg = page.request.get(live.url + str(image.get_attribute("src")))
        assert svg.status == 200
        assert svg.headers["content-type"] == "image/svg+xml"
        assert svg.text().count('class="rect reactive tooltip-trigger"') >= 1, name

    # The table holds the API's numbers, group by group.
    token = page.request.post(f"{live.url}/api/v1/auth/token", data={
        "email": COORDINATOR, "password": "visio-demo-2026"}).json()["access_token"]
    api = page.request.get(f"{live.url}/api/v1/figures?from={first}&to={last}&group_by=site",
                           headers={"Authorization": f"Bearer {token}"}).json()
    shown = page.evaluate("""() => [...document.querySelectorAll('#figures tbody tr')].map(
        tr => [JSON.parse(tr.dataset.keys), Object.fromEntries(
            [...tr.querySelectorAll('td')].map(td => [td.dataset.metric, td.dataset.value]))])""")
    assert len(shown) == len(api["items"]) >= 2
    by_site = {item["keys"]["site"]: item for item in api["items"]}
    for keys, cells in shown:
        item = by_site[keys["site"]]
        for metric, value in cells.items():
            expected = item[metric]
            assert value == ("" if expected is None else str(expected)), (metric, value)
    hondschoote = by_site[demo_id("site", "Hondschoote")]
    assert (hondschoote["booked"], hondschoote["done"], hondschoote["no_show"],
            hondschoote["cancelled_by_usager"]) == (3, 1, 1, 1)

    # The CSV links give the same figures (';' for a French spreadsheet).
    href = str(page.get_attribute("#csv-semicolon", "href"))
    text = page.request.get(live.url + href).body().decode("utf-8-sig")
    rows = {r["site"]: r for r in csv.DictReader(io.StringIO(text), delimiter=";")}
    assert int(rows[demo_id("site", "Hondschoote")]["booked"]) == 3
    export = page.request.get(live.url + str(page.get_attribute("#csv-appointments", "href")))
    assert "Figures" not in export.text()
    assert len(list(csv.DictReader(io.StringIO(export.body().decode("utf-8-sig")),
                                   delimiter=";"))) >= len(ROWS)

    bad = _axe(page)
    page.screenshot(path=str(tmp_path / f"figures-{lang}.png"), full_page=True)
    page.goto(f"{live.url}/network/figures?from={first}&to={last}&group_by=theme"
              "&group_by=month")
    page.wait_for_selector("#figures")
    assert page.locator("#figures thead th[data-group]").count() == 2
    bad += _axe(page)
    page.screenshot(path=str(tmp_path / f"figures-theme-month-{lang}.png"), full_page=True)
    assert not bad, bad
    assert (tmp_path / f"figures-{lang}.png").stat().st_size > 0
    context.close()

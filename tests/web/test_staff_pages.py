"""The staff member's pages in Chromium: the availability editor and the week agenda."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.web.conftest import SCREENSHOTS, Live, log_in
from tests.web.test_browser import wait_until
from visio import models as m
from visio.clock import utcnow
from visio.keys import database_key

STAFF = "staff.sfp-tf@visio.test"


async def _write_note(live: Live, appointment_id: str, note: str) -> None:
    assert live.server.app is not None
    async with live.server.app[database_key].write() as session:
        await session.execute(sa.update(m.Appointment).where(
            m.Appointment.id == appointment_id).values(note=note))


async def _flag(live: Live, appointment_id: str) -> Any:
    assert live.server.app is not None
    async with live.server.app[database_key].read() as session:
        row = await session.get(m.Appointment, appointment_id)
    assert row is not None
    return row.to_rebook_since


def _editor(live: Live, browser: Any) -> tuple[Any, Any]:
    context = browser.new_context(locale="fr-FR", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    log_in(page, live.url, STAFF)
    page.goto(f"{live.url}/staff/availability")
    page.wait_for_selector("#rules tr")
    return context, page


def test_removing_a_row_keeps_the_other_rows_edits(live: Live, browser: Any) -> None:
    """Edit the first row, remove the last: the first row still says what was typed."""
    context, page = _editor(live, browser)
    rows = page.locator("#rules tr")
    count = rows.count()
    assert count >= 2
    rows.nth(0).locator('[data-field="opens"]').fill("08:15")
    rows.nth(count - 1).locator("button").click()
    assert page.locator("#rules tr").count() == count - 1
    assert page.locator("#rules tr").nth(0).locator('[data-field="opens"]').input_value() \
        == "08:15"
    context.close()


def test_a_bad_time_is_a_sentence_naming_the_row_and_the_day(live: Live,
                                                             browser: Any) -> None:
    """No field path: "Ligne 2 (…)", with the focus on the field to correct."""
    context, page = _editor(live, browser)
    second = page.locator("#rules tr").nth(1)
    weekday = second.locator('[data-field="weekday"] option:checked').inner_text()
    second.locator('[data-field="closes"]').fill("25:00")
    page.click("#availability button[type=submit]")
    status = wait_until(lambda: page.inner_text("#availability-status"), what="a refusal")
    assert status.startswith(f"Ligne 2 ({weekday}) : écrivez l’heure"), status
    assert "[" not in status
    assert page.evaluate("document.activeElement.dataset.field") == "closes"
    context.close()


def test_closing_a_booked_day_asks_first_then_flags_the_appointment(live: Live,
                                                                   browser: Any) -> None:
    """The appointment is listed, nothing saved until confirmed; then "to rebook" shows in
    the agenda and the appointment stays booked. Reopening the day clears it."""
    appointment = live.appointment_now(commune="Hondschoote", operator="SFP-TF", staff=1,
                                       theme="retraite", booth=3)
    today = utcnow().astimezone(__import__("zoneinfo").ZoneInfo("Europe/Brussels")).date()
    context, page = _editor(live, browser)
    page.fill("#closure-day", today.isoformat())
    page.click("#add-closure")
    page.click("#availability button[type=submit]")
    page.wait_for_selector("#affected:not([hidden])")
    assert "Jeanne" in page.inner_text("#affected-list")
    assert "ne seront pas annulés" in page.inner_text("#availability-status")
    assert live.server.run(_flag(live, appointment)) is None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "staff-availability-affected-fr.png"),
                    full_page=True)
    page.click("#confirm-save")
    wait_until(lambda: page.inner_text("#availability-status") == "Enregistré.", what="saved")
    assert live.server.run(_flag(live, appointment)) is not None

    page.goto(f"{live.url}/staff/agenda")
    item = page.locator(f'li[data-appointment="{appointment}"]')
    assert "À déplacer" in item.inner_text()

    page.goto(f"{live.url}/staff/availability")
    page.wait_for_selector("#rules tr")
    page.get_by_role("button", name=f"Supprimer: {today.isoformat()} – Fermé toute la journée",
                     exact=False).click()
    page.click("#availability button[type=submit]")
    wait_until(lambda: page.inner_text("#availability-status") == "Enregistré.", what="saved")
    assert live.server.run(_flag(live, appointment)) is None
    context.close()


def test_the_week_is_a_grid_with_free_time_end_times_and_the_note(live: Live,
                                                                 browser: Any) -> None:
    """Days across, hours down; each appointment with its end and the agent's question."""
    appointment = live.appointment_now(commune="Hondschoote", operator="SFP-TF", staff=1,
                                       theme="retraite", booth=3)
    live.server.run(_write_note(live, appointment, "Pension belge : relevé de carrière ?"))
    for lang, width in (("fr", 1366), ("nl", 1366), ("fr", 768)):
        context = browser.new_context(locale="fr-FR", viewport={"width": width, "height": 900})
        page = context.new_page()
        page.goto(f"{live.url}/lang?to={lang}&next=/login")
        log_in(page, live.url, STAFF)
        page.goto(f"{live.url}/staff/agenda?view=week")
        headers = page.locator("#week thead th")
        assert headers.count() == 8
        cell = page.locator(f'#week .appointment[data-appointment="{appointment}"]')
        text = cell.inner_text()
        assert "Pension belge : relevé de carrière ?" in text
        assert "–" in cell.locator(".time").inner_text()
        assert page.locator("#week td.free").count() > 0
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        page.screenshot(path=str(SCREENSHOTS / f"staff-agenda-grid-{lang}-{width}.png"),
                        full_page=True)
        context.close()

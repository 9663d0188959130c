"""The agent's desk in headless Chromium: find an usager, correct, cancel; accessible."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.web.conftest import AXE, SCREENSHOTS, Live, log_in
from visio.clock import utcnow

AGENT = "agent.le-cateau-cambresis@visio.test"
LOCALES = {"fr": "fr-FR", "nl": "nl-BE"}
#: A laptop, a tablet held upright, and 200 % zoom of a 1024 px window.
VIEWPORTS = ((1366, 768), (768, 1024), (512, 384))


def _weekday_ahead() -> str:
    """A Tuesday to come: the site and the CAF are open, whatever day the tests run."""
    day = utcnow().astimezone(ZoneInfo("Europe/Paris")).date() + timedelta(days=1)
    while day.weekday() != 1:
        day += timedelta(days=1)
    return day.isoformat()


def _book(page: Any, url: str, first: str, last: str, phone: str) -> str:
    """Book through the booking page; the appointment's id."""
    page.goto(f"{url}/agent/book?theme=famille&day={_weekday_ahead()}")
    page.wait_for_selector("input[name=slot]")
    page.check("input[name=slot] >> nth=0")
    page.fill("#first_name", first)
    page.fill("#last_name", last)
    page.fill("#phone", phone)
    page.check("input[name=consent]")
    page.click("#book-button")
    page.wait_for_selector("#confirmation")
    return str(page.url.rsplit("/", 1)[1])


def test_agent_finds_corrects_and_cancels(live: Live, browser: Any) -> None:
    """Found by "helene" and by the phone typed otherwise; a blank name is refused with the
    focus on it; the correction saved; the cancellation confirmed, and in the history."""
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    log_in(page, live.url, AGENT)
    booked = _book(page, live.url, "Hélène", "Dupont", "06 12 34 56 78")
    page.click("nav >> text=Rendez-vous")
    page.fill("#q", "helene")
    page.click("#find-button")
    page.wait_for_selector(f'tr[data-appointment="{booked}"]')
    assert "Hélène Dupont" in page.inner_text(f'tr[data-appointment="{booked}"]')
    page.fill("#q", "+33 6 12 34 56 78")
    page.click("#find-button")
    page.wait_for_selector(f'tr[data-appointment="{booked}"]')
    page.click(f'tr[data-appointment="{booked}"] a')
    page.wait_for_selector("#correct")
    page.fill("#first_name", "")
    page.click("#correct-button")
    page.wait_for_selector("#form-errors")
    assert page.evaluate("document.activeElement.id") == "first_name"
    page.fill("#first_name", "Hélène-Marie")
    page.fill("#note", "Pension de réversion : dossier déposé en octobre")
    page.click("#correct-button")
    page.wait_for_selector("#done")
    assert "Hélène-Marie Dupont" in page.inner_text("#usager-name")
    assert "réversion" in page.inner_text("#note")
    page.fill("#reason", "L'usager a trouvé une solution")
    page.click("#cancel-button")
    page.wait_for_selector("#confirm-cancel")
    assert page.evaluate("document.activeElement.id") == "cancel"
    page.click("#confirm-cancel")
    page.wait_for_selector("#done")
    assert "annulé" in page.inner_text("#status")
    history = page.inner_text("#history")
    assert "Réservé" in history
    assert "Coordonnées de l'usager corrigées" in history
    assert "Annulé" in history
    context.close()


async def _notice_went(live: Live, appointment_id: str) -> None:
    """The usager's pending notice (of the move) is recorded as sent, as the dispatcher
    records it (whose SMS adapter may wait for 08:00 at the site)."""
    import sqlalchemy as sa

    from visio import models as m
    from visio.keys import database_key

    assert live.server.app is not None
    async with live.server.app[database_key].write() as session:
        await session.execute(
            sa.update(m.OutboxRow)
            .where(m.OutboxRow.appointment_id == appointment_id,
                   m.OutboxRow.status == "pending", m.OutboxRow.audience == "usager",
                   m.OutboxRow.kind == "rescheduled")
            .values(status="sent", finished_at=utcnow()))


def test_agent_moves_and_resends(live: Live, browser: Any) -> None:
    """Another day's free slot, picked in the form, moves the appointment; the resend
    button sends the last message again, and the history says both."""
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    log_in(page, live.url, AGENT)
    booked = _book(page, live.url, "Noël", "Ménard", "06 11 22 33 44")
    before = page.inner_text("#facts")
    page.click("#reschedule-link")
    page.wait_for_selector("#move-day")
    next_week = (utcnow().astimezone(ZoneInfo("Europe/Paris")).date()
                 + timedelta(days=1))
    while next_week.weekday() != 2:
        next_week += timedelta(days=1)
    page.fill("#day", next_week.isoformat())
    page.click("#day-button")
    page.wait_for_selector("input[name=slot]")
    page.click("#move-button")
    page.wait_for_selector("#form-errors")
    assert page.evaluate("document.activeElement.name") == "slot"
    page.check("input[name=slot] >> nth=0")
    page.click("#move-button")
    page.wait_for_selector("#done")
    assert page.inner_text("#facts") != before
    live.server.run(_notice_went(live, booked))
    page.click("#resend-button")
    page.wait_for_selector("#done")
    assert "renvoyé" in page.inner_text("#done")
    history = page.inner_text("#history")
    assert "Déplacé" in history
    assert "Message renvoyé" in history
    context.close()


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_desk_pages_are_accessible_and_reflow(live: Live, browser: Any, lang: str) -> None:
    """axe-core: no serious or critical violation; nothing scrolls sideways at 1366 px, on a
    tablet or at 200 % zoom; screenshots saved."""
    from tests.support import missing_service

    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[str]] = {}
    # axe-core is injected as an inline script: the pages' CSP would refuse it.
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1366, "height": 768},
                                  bypass_csp=True)
    page = context.new_page()
    page.goto(f"{live.url}/lang?to={lang}&next=/login")
    log_in(page, live.url, AGENT)
    # One number per language: the same number on the same theme again would stop at the
    # duplicate warning (the server, and its bookings, live for the whole session).
    phone = {"fr": "+32 470 12 34 56", "nl": "+32 470 12 34 57"}[lang]
    booked = _book(page, live.url, "Joris", "Van den Bossche", phone)

    def check(name: str) -> None:
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        assert result["passes"], "axe ran no rule"
        bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
        if bad:
            found[name] = bad
        assert page.get_attribute("html", "lang") == lang
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{lang}.png"), full_page=True)
        for width, height in VIEWPORTS:
            page.set_viewport_size({"width": width, "height": height})
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                found.setdefault(name, []).append(f"{overflow}px sideways at {width}px")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{lang}-tablet.png"))
        page.set_viewport_size({"width": 1366, "height": 768})

    page.goto(f"{live.url}/agent/appointments?q=bossche")
    page.wait_for_selector(f'tr[data-appointment="{booked}"]')
    check("agent-appointments")
    page.goto(f"{live.url}/agent/appointments/{booked}")
    page.wait_for_selector("#correct")
    check("agent-appointment")
    page.goto(f"{live.url}/agent/appointments/{booked}/reschedule?day={_weekday_ahead()}")
    page.wait_for_selector("#move-day")
    check("agent-appointment-move")
    page.goto(f"{live.url}/agent/appointments?from=2026-13-01")
    page.wait_for_selector("#form-errors")
    assert page.evaluate("document.activeElement.id") == "from"
    check("agent-appointments-refused")
    context.close()
    assert not found, found

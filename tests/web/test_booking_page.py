"""The booking page and Today in headless Chromium, on the demo.

A bus agent picks a stop of the tour; the phone's country goes with the live check and
the server's sentence is shown; a Dutch-only operator's slot proposes Dutch; a double is
confirmed before booking; a refused form puts the focus on its first error; Today moves
by day and a usager's cancellation is marked seen. The pages reflow without sideways
scrolling at 1366 px, on a tablet, at 200 % zoom and on a phone, with no serious axe-core
violation in French and Dutch (screenshots in var/screenshots/book-*.png, today-*.png).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.web.conftest import AXE, SCREENSHOTS, Live, log_in
from tests.web.test_browser import LOCALES, wait_until
from visio import models as m
from visio.clock import utcnow
from visio.domain.calendars import HolidayCalendar
from visio.keys import database_key
from visio.seed import demo_id

BUS_AGENT = "agent.de-l-avesnois@visio.test"
FIXED_AGENT = "agent.le-cateau-cambresis@visio.test"
#: 1366 px laptop, a tablet held upright, 200 % zoom of a 1024 px window, a phone.
VIEWPORTS = {"": (1366, 768), "tablet": (768, 1024), "zoom": (512, 384), "phone": (375, 667)}


def working_day() -> date:
    """The next working day in Paris (Monday to Friday, not a French holiday)."""
    holidays = HolidayCalendar()
    day = utcnow().astimezone(ZoneInfo("Europe/Paris")).date() + timedelta(days=1)
    while day.weekday() >= 5 or holidays.is_holiday("FR", day):
        day += timedelta(days=1)
    return day


def new_page(browser: Any, lang: str = "fr", **options: Any) -> tuple[Any, Any]:
    context = browser.new_context(locale=LOCALES[lang], **options)
    return context, context.new_page()


def overflow(page: Any) -> int:
    return int(page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def reflow_and_axe(page: Any, name: str, lang: str) -> list[str]:
    """axe-core's serious and critical violations, and sideways scrolling at each size;
    a screenshot at each size."""
    problems: list[str] = []
    page.set_viewport_size({"width": 1366, "height": 768})
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert result["passes"], "axe ran no rule"
    problems += [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
                 for v in result["violations"] if v["impact"] in ("serious", "critical")]
    for size, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        if overflow(page) > 0:
            problems.append(f"{overflow(page)}px sideways at {width}px")
        suffix = f"-{size}" if size else ""
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{lang}{suffix}.png"),
                        full_page=size in ("", "phone"))
    page.set_viewport_size({"width": 1366, "height": 768})
    return problems


def cancelled_by_the_usager(live: Live) -> str:
    """An appointment at Le Cateau starting in 5 minutes, cancelled by the usager.

    Its own (operator, staff member, booth): test_browser's call at Le Cateau (CAF59's
    second staff member, booth 1) shares the session's server and must stay booked.
    """
    appointment = live.appointment_now(commune="Le Cateau-Cambrésis", operator="FAMIWAL-TF",
                                       staff=1, theme="famille", booth=2)
    live.server.run(_cancel_as_the_usager(live, appointment))
    return appointment


async def _cancel_as_the_usager(live: Live, appointment_id: str) -> None:
    assert live.server.app is not None
    async with live.server.app[database_key].write() as session:
        await session.execute(sa.update(m.Appointment)
                              .where(m.Appointment.id == appointment_id)
                              .values(status="cancelled", cancelled_by="usager",
                                      cancel_seen_at=None, cancel_reason="usager"))


def test_bus_agent_picks_a_stop_of_the_tour(live: Live, browser: Any) -> None:
    """The coming stops are listed; choosing one searches that day at that stop, with the
    operators that serve the bus only."""
    context, page = new_page(browser)
    log_in(page, live.url, BUS_AGENT)
    page.goto(f"{live.url}/agent/book?theme=famille")
    stops = page.locator("#tour a[data-day]")
    assert stops.count() >= 5
    chosen = stops.nth(2)
    day = chosen.get_attribute("data-day")
    commune = chosen.locator("span").first.inner_text()
    chosen.click()
    page.wait_for_url(f"**day={day}")
    assert page.input_value("#day") == day
    assert page.get_attribute(f'#tour a[data-day="{day}"]', "aria-current") == "date"
    page.wait_for_selector("input[name=slot]")
    assert commune in page.inner_text("#booking")
    table = page.inner_text("#operators-title + table")
    assert "CAF du Nord" in table
    assert "Aisne" not in table
    assert "Pas-de-Calais" not in table
    context.close()


def checked(url: str) -> tuple[str, str] | None:
    """The number and country of a live phone check's address."""
    if "/web/phone?" not in url:
        return None
    query = parse_qs(urlsplit(url).query)
    return query.get("phone", [""])[0], query.get("country", [""])[0]


def test_phone_country_goes_with_the_check_and_the_server_sentence_is_shown(
        live: Live, browser: Any) -> None:
    """The country beside the phone defaults to the site's (France); Belgium is sent with
    the live check, and the hint says what the server answered, as typed."""
    context, page = new_page(browser)
    log_in(page, live.url, FIXED_AGENT)
    page.goto(f"{live.url}/agent/book?theme=retraite&day={working_day().isoformat()}")
    page.wait_for_selector("input[name=slot]")
    assert page.input_value("#phone_country") == "FR"
    page.select_option("#phone_country", "BE")
    with page.expect_response(lambda r: checked(r.url) == ("0470 12 34 56", "BE")) as answer:
        page.fill("#phone", "0470 12 34 56")
    said = answer.value.json()
    expected = " ".join(t for t in (said.get("message"), said.get("warning")) if t)
    wait_until(lambda: page.inner_text("#phone-check") == expected,
               what="the server's sentence under the phone")
    assert expected
    # A French landline: whatever the server says about SMS is shown as it is.
    page.select_option("#phone_country", "FR")
    with page.expect_response(lambda r: checked(r.url) == ("03 27 84 00 00", "FR")) as answer:
        page.fill("#phone", "03 27 84 00 00")
    said = answer.value.json()
    expected = " ".join(t for t in (said.get("message"), said.get("warning")) if t)
    wait_until(lambda: page.inner_text("#phone-check") == expected,
               what="the server's sentence about a landline")
    posted = page.evaluate(
        "Object.fromEntries(new FormData(document.getElementById('booking')).entries())")
    assert posted["phone_country"] == "FR"
    context.close()


def test_a_dutch_only_operator_proposes_dutch_messages(live: Live, browser: Any) -> None:
    """Choosing a slot of VDAB (Dutch only) sets the messages' language to Dutch, a French
    operator's slot back to French; filtering on VDAB preselects Dutch."""
    context, page = new_page(browser)
    log_in(page, live.url, FIXED_AGENT)
    day = working_day().isoformat()
    page.goto(f"{live.url}/agent/book?theme=emploi&day={day}")
    page.wait_for_selector("input[name=slot]")
    assert page.input_value("#language") == "fr"
    page.locator("label.slot", has_text="VDAB").first.locator("input").check()
    wait_until(lambda: page.input_value("#language") == "nl", what="Dutch proposed")
    page.locator("label.slot", has_text="France Travail").first.locator("input").check()
    wait_until(lambda: page.input_value("#language") == "fr", what="French again")
    page.select_option("#operator_id", demo_id("operator", "VDAB-GA"))
    page.click("#search-button")
    page.wait_for_url("**operator_id=*")
    assert page.input_value("#language") == "nl"
    assert all("VDAB" in t for t in page.locator("label.slot").all_inner_texts())
    context.close()


def test_a_double_is_confirmed_and_a_refusal_takes_the_focus(live: Live, browser: Any) -> None:
    """The same phone on the same theme: the warning takes the focus and "book anyway"
    books; a refused phone puts the focus on the phone field."""
    context, page = new_page(browser)
    log_in(page, live.url, FIXED_AGENT)
    url = f"{live.url}/agent/book?theme=sante&day={working_day().isoformat()}"

    def fill(slot: int, phone: str) -> None:
        page.goto(url)
        page.wait_for_selector("input[name=slot]")
        page.check(f"input[name=slot] >> nth={slot}")
        page.fill("#first_name", "Marc")
        page.fill("#last_name", "Lefebvre")
        page.fill("#phone", phone)

    fill(0, "06 98 76 54 32")
    page.click("#book-button")
    page.wait_for_selector("#confirmation")
    fill(0, "+33 6 98 76 54 32")
    page.click("#book-button")
    page.wait_for_selector("#duplicate")
    assert page.evaluate("document.activeElement.id") == "duplicate"
    assert "Marc Lefebvre" in page.inner_text("#duplicate")
    page.click("#book-anyway")
    page.wait_for_selector("#confirmation")

    fill(1, "06 12")
    page.evaluate("document.getElementById('booking').noValidate = true")
    page.click("#book-button")
    page.wait_for_selector("#refusal")
    assert page.evaluate("document.activeElement.id") == "phone"
    assert page.get_attribute("#phone", "aria-invalid") == "true"
    context.close()


def test_today_moves_by_day_and_a_usager_cancellation_is_marked_seen(
        live: Live, browser: Any) -> None:
    """Previous and next day, a date; the name links to the appointment; the usager's
    cancellation is struck through and new until "seen"."""
    appointment = cancelled_by_the_usager(live)
    context, page = new_page(browser)
    log_in(page, live.url, FIXED_AGENT)
    page.goto(f"{live.url}/agent/today")
    row = page.locator(f'tr[data-appointment="{appointment}"]')
    assert row.get_attribute("class") == "cancelled"
    name = row.locator(f'a[href="/agent/appointments/{appointment}"]')
    assert name.inner_text() == "Jeanne Martin"
    assert name.locator("s").evaluate(
        "e => getComputedStyle(e).textDecorationLine") == "line-through"
    assert "Annulé par l'usager" in row.inner_text()
    assert row.locator(".new").is_visible()
    row.locator("form.seen button").click()
    page.wait_for_load_state()
    wait_until(lambda: page.locator(f'tr[data-appointment="{appointment}"] .new').count() == 0,
               what="the cancellation no longer new")
    today = page.input_value("#date")
    page.click("#next-day")
    page.wait_for_url(lambda u: "date=" in u and today not in u)
    assert page.input_value("#date") == (date.fromisoformat(today)
                                         + timedelta(days=1)).isoformat()
    page.click("#previous-day")
    page.wait_for_url(f"**date={today}")
    page.fill("#date", "2027-01-04")
    page.click("#go-day")
    page.wait_for_url("**date=2027-01-04")
    assert "2027" in page.inner_text("h1")
    context.close()


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_booking_and_today_reflow_and_are_accessible(live: Live, browser: Any,
                                                     lang: str) -> None:
    """The bus's booking page with its stops and slot cards, a fixed site's with a refusal,
    and Today with a cancellation: no sideways scrolling at any size, no serious axe-core
    violation; screenshots of each."""
    from tests.support import missing_service

    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cancelled_by_the_usager(live)  # Today shows a cancellation
    found: dict[str, list[str]] = {}
    for email, pages in (
        (BUS_AGENT, {"book-bus": "/agent/book?theme=retraite"}),
        (FIXED_AGENT, {"book": f"/agent/book?theme=emploi&day={working_day().isoformat()}",
                       "today": "/agent/today"}),
    ):
        context, page = new_page(browser, lang, viewport={"width": 1366, "height": 768},
                                 bypass_csp=True)
        page.goto(f"{live.url}/lang?to={lang}&next=/login")
        log_in(page, live.url, email)
        for name, path in pages.items():
            page.goto(live.url + path)
            if name.startswith("book"):
                page.wait_for_selector("input[name=slot]")
            assert page.get_attribute("html", "lang") == lang
            found[name] = reflow_and_axe(page, name, lang)
        if email == FIXED_AGENT:
            page.goto(live.url + pages["book"])
            page.check("input[name=slot] >> nth=0")
            page.evaluate("document.getElementById('booking').noValidate = true")
            page.click("#book-button")
            page.wait_for_selector("#refusal")
            assert page.evaluate("document.activeElement.id") == "first_name"
            found["book-refused"] = reflow_and_axe(page, "book-refused", lang)
        context.close()
    assert not any(found.values()), found

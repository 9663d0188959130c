"""The pages end to end in headless Chromium: booking, the agenda, the call, aiortc."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.web.conftest import FALLBACK_SECONDS, MANUAL_LINK, SCREENSHOTS, Live, log_in
from visio.clock import utcnow
from visio.domain.calendars import HolidayCalendar

AGENT = "agent.hondschoote@visio.test"
STAFF = "staff.caf59@visio.test"
#: The browser's own locale matches the page's language (date fields, number formats).
LOCALES = {"fr": "fr-FR", "nl": "nl-BE", "en": "en-GB"}


def wait_until(check: Callable[[], Any], *, within: float = 30.0, what: str = "") -> Any:
    """Poll a condition of the page (the browser decides when things happen)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def quiet_day() -> date:
    """A Monday to Thursday three weeks ahead, no French holiday."""
    holidays = HolidayCalendar()
    day = utcnow().astimezone(ZoneInfo("Europe/Paris")).date() + timedelta(days=21)
    while day.weekday() > 3 or holidays.is_holiday("FR", day):
        day += timedelta(days=1)
    return day


def call_state(page: Any) -> str:
    return str(page.get_attribute("#call-state", "data-call-state"))


def inbound(page: Any) -> dict[str, int]:
    return dict(page.evaluate("window.visioCall.inbound()"))


def video_still(page: Any) -> bool:
    """No video frame decoded for a second (renegotiation done, frames in flight drained)."""
    first = inbound(page)["videoFrames"]
    time.sleep(1.0)
    return bool(inbound(page)["videoFrames"] == first)


def frames_rising(page: Any, kind: str = "videoFrames", *, by: int = 10) -> bool:
    first = inbound(page)[kind]
    return bool(wait_until(lambda: inbound(page)[kind] >= first + by, within=20,
                           what=f"{kind} rising"))


def media_flowing(page: Any) -> bool:
    """Video frames rising, or, when the page put the call in audio only by itself (its
    link measures, real ones, may on a loaded machine), audio packets rising."""
    first = inbound(page)

    def flowing() -> bool:
        now = inbound(page)
        if now["videoFrames"] >= first["videoFrames"] + 10:
            return True
        held = page.get_attribute("#link-quality", "data-audio-only") == "true"
        return held and now["audioPackets"] >= first["audioPackets"] + 50

    return bool(wait_until(flowing, within=20, what="video (or, in audio only, audio) rising"))


def test_agent_books_and_staff_sees_it_in_the_agenda(live: Live, browser: Any) -> None:
    """Log in, search, book, confirmation; a double submit books once; the agenda shows it."""
    agent = browser.new_context(locale="fr-FR")
    page = agent.new_page()
    log_in(page, live.url, AGENT)
    assert page.url.endswith("/agent/book")
    page.select_option("#theme", "famille")
    # A day no other test books: the CAF's two counsellors are equally free, so the slot
    # goes to the first of them, the one with an account (the session's other tests
    # make the second one the less busy on the coming days).
    page.fill("#day", quiet_day().isoformat())
    page.click("#search-button")
    page.wait_for_selector("input[name=slot]")
    assert "CAF du Nord" in page.inner_text("#operators-title + table")
    page.check("input[name=slot] >> nth=0")
    page.fill("#first_name", "Jeanne")
    page.fill("#last_name", "Martin")
    page.fill("#phone", "06 12")
    wait_until(lambda: page.get_attribute("#phone-check", "data-valid") == "false",
               what="the phone refused while typed")
    page.fill("#phone", "06 12 34 56 78")
    wait_until(lambda: page.get_attribute("#phone-check", "data-valid") == "true",
               what="the phone accepted")
    page.check("input[name=consent]")
    # A retried click: the same form (same Idempotency-Key) posted twice.
    form = page.evaluate("""() => {
        const data = new FormData(document.getElementById('booking'));
        return Object.fromEntries(data.entries());
    }""")
    page.click("#book-button")
    page.wait_for_selector("#confirmation")
    first_url = page.url
    # What the notifications outbox will send the usager (a phone, no e-mail: SMS).
    messages = page.inner_text("#messages")
    assert "Confirmation par SMS" in messages
    assert "Rappel deux heures avant par SMS" in messages
    replay = agent.request.post(f"{live.url}/agent/book", form=form, max_redirects=0,
                                headers={"Origin": live.url})
    assert replay.status == 303
    assert replay.headers["location"] == first_url.removeprefix(live.url)
    day = form["day"]
    staff = browser.new_context(locale="fr-FR")
    staff_page = staff.new_page()
    log_in(staff_page, live.url, STAFF)
    staff_page.goto(f"{live.url}/staff/agenda?view=week&date={day}")
    appointment_id = first_url.rsplit("/", 1)[1]
    # The week is a grid: the appointment is a cell's block, not a list item.
    entry = staff_page.locator(f'[data-appointment="{appointment_id}"]')
    assert "Jeanne" in entry.inner_text()
    assert "Famille" in entry.inner_text() or "famille" in entry.inner_text().lower()
    agent.close()
    staff.close()


def test_refused_start_is_a_sentence_with_proposals(live: Live, browser: Any) -> None:
    """A taken slot (409) shows a sentence and the nearest slots, booked in one click."""
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    log_in(page, live.url, AGENT)
    page.goto(f"{live.url}/agent/book?theme=famille")
    page.wait_for_selector("input[name=slot]")
    form = page.evaluate("""() => {
        document.querySelector('input[name=slot]').checked = true;
        document.getElementById('first_name').value = 'Paul';
        document.getElementById('last_name').value = 'Durand';
        return Object.fromEntries(new FormData(document.getElementById('booking')).entries());
    }""")
    first = context.request.post(f"{live.url}/agent/book", form=form, max_redirects=0,
                                 headers={"Origin": live.url})
    assert first.status == 303
    second = dict(form, idem=form["idem"] + "-again")
    page.goto(f"{live.url}/agent/book?theme=famille")
    page.evaluate("""(form) => {
        const f = document.getElementById('booking');
        for (const [k, v] of Object.entries(form)) {
            let input = f.querySelector(`[name="${k}"]:not([type=radio])`);
            if (!input) { input = document.createElement('input'); input.type = 'hidden';
                          input.name = k; f.append(input); }
            input.value = v;
        }
        f.noValidate = true;
        f.submit();
    }""", second)
    page.wait_for_selector("#refusal")
    assert page.locator("#refusal .alternatives button").count() >= 1
    page.click("#refusal .alternatives button >> nth=0")
    page.wait_for_selector("#confirmation")
    context.close()


def test_call_between_kiosk_and_staff(live: Live, browser: Any) -> None:
    """Arrival shown before joining; both connected with frames rising; recovery; audio only."""
    appointment = live.appointment_now(commune="Hondschoote", operator="CAF59", staff=1,
                                       theme="famille")
    staff = browser.new_context(locale="fr-FR")
    staff_page = staff.new_page()
    log_in(staff_page, live.url, STAFF)
    staff_page.goto(f"{live.url}/staff/agenda")
    badge = staff_page.locator(f'[data-arrived="{appointment}"]')
    assert badge.is_hidden()

    kiosk = browser.new_context(locale="fr-FR")
    kiosk_page = kiosk.new_page()
    log_in(kiosk_page, live.url, AGENT)
    kiosk_page.goto(f"{live.url}/call/{appointment}")
    kiosk_page.evaluate(MANUAL_LINK)
    wait_until(lambda: call_state(kiosk_page) == "waiting", what="kiosk waiting")
    badge.wait_for(state="visible", timeout=15000)
    # Before the call: the test call through the echo peer.
    kiosk_page.click("#test-call")
    wait_until(lambda: kiosk_page.get_attribute("#test-status", "data-test") == "ok",
               what="test call connected")
    kiosk_page.click("#test-stop")

    staff_page.click(f'[data-join="{appointment}"]')
    staff_page.wait_for_url(f"**/call/{appointment}")
    staff_page.evaluate(MANUAL_LINK)
    for page in (kiosk_page, staff_page):
        wait_until(lambda p=page: call_state(p) == "connected", what="connected")
    for page in (kiosk_page, staff_page):
        assert frames_rising(page)

    # The staff member's signaling socket drops: the call comes back without a reload.
    staff_page.evaluate("window.visioCall.ws.close()")
    wait_until(lambda: call_state(staff_page) != "connected", within=5, what="drop seen")
    for page in (kiosk_page, staff_page):
        wait_until(lambda p=page: call_state(p) == "connected", what="connected again")
        assert frames_rising(page)

    # Audio only on the kiosk: no video either way, audio keeps flowing.
    kiosk_page.click("#audio-only")
    assert kiosk_page.get_attribute("#audio-only", "aria-pressed") == "true"
    for page in (kiosk_page, staff_page):
        wait_until(lambda p=page: video_still(p), within=20, what="video stopped")
    before = {p: inbound(p) for p in (kiosk_page, staff_page)}
    for page in (kiosk_page, staff_page):
        assert frames_rising(page, "audioPackets", by=50)
    after = {p: inbound(p) for p in (kiosk_page, staff_page)}
    for page in (kiosk_page, staff_page):
        assert after[page]["videoFrames"] - before[page]["videoFrames"] <= 2, (before, after)
    kiosk_page.click("#audio-only")
    for page in (kiosk_page, staff_page):
        assert frames_rising(page)
    kiosk.close()
    staff.close()

    # The call log holds both sides connected, their stats and the audio-only switch.
    log = admin_get(live, f"/api/v1/appointments/{appointment}/call-log?limit=500")
    assert log["summary"] == {"kiosk_joined": True, "operator_joined": True, "connected": True}
    kinds = {(e["kind"], e["role"]) for e in log["items"]}
    assert {("stats", "kiosk"), ("stats", "operator"), ("media", "kiosk")} <= kinds
    assert any(e["kind"] == "media" and e["detail"].get("video") is False
               for e in log["items"])


def admin_get(live: Live, path: str) -> Any:
    """An API read as the demo admin."""
    import requests

    token = requests.post(f"{live.url}/api/v1/auth/token", timeout=30, json={
        "email": "admin@visio.test", "password": "visio-demo-2026"}).json()["access_token"]
    response = requests.get(live.url + path, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_fallback_phone_shows_when_the_call_does_not_connect(live: Live, browser: Any) -> None:
    """Alone on the call page past the setting's delay: the desk's number is shown."""
    appointment = live.appointment_now(commune="Hondschoote", operator="CARSAT-HDF", staff=2,
                                       theme="retraite", booth=2)
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    log_in(page, live.url, AGENT)
    page.goto(f"{live.url}/call/{appointment}")
    assert page.locator("#fallback").is_hidden()
    page.locator("#fallback").wait_for(state="visible", timeout=(FALLBACK_SECONDS + 5) * 1000)
    assert "+33 1 99 00 00 59" in page.inner_text("#fallback")
    assert call_state(page) == "waiting"
    context.close()


def test_browser_and_aiortc_peer_connect(live: Live, browser: Any) -> None:
    """A kiosk in Chromium and an aiortc operator peer exchange media through the server;
    audio only on the browser stops the video both ways on the same connections (the
    aiortc peer, which leads, offers again) while audio flows, and video comes back."""
    import requests

    from tests.signaling.sigpeer import RtcPeer, SignalingSocket

    appointment = live.appointment_now(commune="Le Cateau-Cambrésis", operator="CAF59",
                                       staff=2, theme="famille")
    token = requests.post(f"{live.url}/api/v1/auth/token", timeout=30, json={
        "email": STAFF, "password": "visio-demo-2026"}).json()["access_token"]
    grant = requests.post(f"{live.url}/api/v1/appointments/{appointment}/join", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}).json()

    async def start() -> RtcPeer:
        sock = await SignalingSocket.open(grant["signaling_url"], origin=None)
        peer = RtcPeer(sock, can_rollback=False)
        await peer.join(grant["token"])
        return peer

    bot = live.server.run(start())
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    try:
        log_in(page, live.url, "agent.le-cateau-cambresis@visio.test")
        page.goto(f"{live.url}/call/{appointment}")
        page.evaluate(MANUAL_LINK)
        wait_until(lambda: call_state(page) == "connected", what="browser connected to aiortc")
        assert frames_rising(page)
        counters = wait_until(lambda: [c for c in bot.counters.values()
                                       if c.counts["video"] > 10], what="aiortc receiving")
        assert counters
        [(browser_peer, counter)] = bot.counters.items()
        aiortc_pc = bot.pcs[browser_peer]
        page.evaluate("for (const p of window.visioCall.peers.values()) p.pc.__before = true")

        def aiortc_rising(kind: str, by: int) -> bool:
            first = counter.counts[kind]
            return bool(wait_until(lambda: counter.counts[kind] >= first + by, within=20,
                                   what=f"aiortc {kind} rising"))

        def aiortc_video_still() -> bool:
            first = counter.counts["video"]
            time.sleep(1.0)
            return counter.counts["video"] == first

        # Audio only on the browser (polite toward aiortc, so it never offers itself).
        page.click("#audio-only")
        assert page.get_attribute("#audio-only", "aria-pressed") == "true"
        wait_until(lambda: video_still(page), within=20, what="browser receives no video")
        wait_until(aiortc_video_still, within=20, what="aiortc receives no video")
        before = (inbound(page)["videoFrames"], counter.counts["video"])
        assert frames_rising(page, "audioPackets", by=50)
        assert aiortc_rising("audio", 50)
        after = (inbound(page)["videoFrames"], counter.counts["video"])
        assert after[0] - before[0] <= 2, (before, after)
        assert after[1] - before[1] <= 2, (before, after)
        assert call_state(page) == "connected"
        # The same connections, renegotiated (no fresh connection, no ICE restart).
        assert bot.pcs[browser_peer] is aiortc_pc
        assert page.evaluate(
            "[...window.visioCall.peers.values()].every((p) => p.pc.__before === true)")
        directions = page.evaluate(
            "[...window.visioCall.peers.values()][0].pc.getTransceivers()"
            ".filter((t) => t.receiver.track.kind === 'video').map((t) => t.currentDirection)")
        assert directions == ["inactive"]

        # Back to video: both ways again.
        page.click("#audio-only")
        assert frames_rising(page)
        assert aiortc_rising("video", 10)
        assert bot.pcs[browser_peer] is aiortc_pc
    finally:
        context.close()
        live.server.run(bot.close())


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_every_page_is_accessible_and_photographed(live: Live, browser: Any,
                                                   lang: str) -> None:
    """axe-core finds no serious or critical violation on any page; screenshots saved."""
    from tests.support import missing_service
    from tests.web.conftest import AXE

    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    appointment = live.appointment_now(commune="Bruay-sur-l'Escaut", operator="CARSAT-HDF",
                                       staff=1, theme="retraite")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    found: dict[str, list[str]] = {}

    def check(page: Any, name: str) -> None:
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        assert result["testEngine"]["name"] == "axe-core"
        assert result["passes"], "axe ran no rule"
        bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
        if bad:
            found[name] = bad
        assert page.get_attribute("html", "lang") == lang
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{lang}.png"), full_page=True)
        # 200 % zoom of a 1024 px window, and a tablet held upright: nothing scrolls sideways.
        for width, height in ((512, 384), (768, 1024)):
            page.set_viewport_size({"width": width, "height": height})
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                found.setdefault(name, []).append(f"{overflow}px sideways at {width}px")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{lang}-tablet.png"))
        page.set_viewport_size({"width": 1024, "height": 768})

    # The usager's link pages: no login, the same look (and a wrong link's explanation).
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1024, "height": 768},
                                  bypass_csp=True)
    page = context.new_page()
    page.goto(f"{live.url}/lang?to={lang}&next={live.usager_link(appointment)}")
    page.wait_for_selector("#cancel-start")
    check(page, "usager")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "calendar-file":
            break
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    # The cancel asks first: the confirmation step (nothing is cancelled by looking).
    page.click("#cancel-start")
    page.wait_for_selector("#cancel-confirm")
    check(page, "usager-cancel")
    page.goto(f"{live.url}/u/{'A' * 50}")
    page.wait_for_selector("#problem")
    check(page, "usager-invalid")
    context.close()

    for email, pages in (
        ("agent.bruay-sur-l-escaut@visio.test",
         ["/agent/book?theme=retraite", "/agent/today", f"/call/{appointment}"]),
        ("staff.carsat-hdf@visio.test",
         ["/staff/agenda", "/staff/agenda?view=week", "/staff/availability"]),
    ):
        # axe-core is injected as an inline script: the pages' CSP would refuse it.
        context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1024, "height": 768},
                                      bypass_csp=True)
        page = context.new_page()
        page.goto(f"{live.url}/lang?to={lang}&next=/login")
        check(page, "login")
        log_in(page, live.url, email)
        for path in pages:
            page.goto(live.url + path)
            if path.startswith("/call/"):
                wait_until(lambda p=page: call_state(p) == "waiting", what="call page ready")
            if path == "/staff/availability":
                page.wait_for_selector("#rules tr")
            name = path.strip("/").split("?")[0].replace("/", "-")
            if "view=week" in path:
                name += "-week"
            if name.startswith("call-"):
                name = "call"
            check(page, name)
        if email.startswith("agent"):
            page.goto(f"{live.url}/agent/book?theme=retraite")
            page.check("input[name=slot] >> nth=0")
            page.fill("#first_name", "Anne")
            page.fill("#last_name", "Leroy")
            # One number per language: the same one twice on a theme asks to confirm.
            page.fill("#phone", "+32 470 12 34 56" if lang == "fr" else "+32 470 12 34 57")
            page.click("#book-button")
            page.wait_for_selector("#confirmation")
            check(page, "confirmation")
        context.close()
    assert not found, found


def test_keyboard_only_booking(live: Live, browser: Any) -> None:
    """Log in and book with the keyboard alone (Tab, arrows, Space, Enter)."""
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.keyboard.press("Tab")  # the skip link
    focused = page.evaluate("document.activeElement.className")
    assert focused == "skip"

    def tab_to(selector: str, limit: int = 60) -> None:
        for _ in range(limit):
            if page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
            page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#email")
    page.keyboard.type("agent.du-douaisis@visio.test")
    tab_to("#password")
    page.keyboard.type("visio-demo-2026")
    page.keyboard.press("Enter")
    page.wait_for_url("**/agent/book")
    tab_to("#theme")
    page.keyboard.press("ArrowDown")  # a theme (the list starts with "choose")
    page.keyboard.press("ArrowDown")
    tab_to("#search-button")
    page.keyboard.press("Enter")
    wait_until(lambda: page.locator("input[name=slot]").count() > 0 or
               page.locator("text=Aucun créneau").count() > 0, what="search results")
    if page.locator("input[name=slot]").count() == 0:
        tab_to("#day")
        page.keyboard.press("ArrowUp")
        tab_to("#search-button")
        page.keyboard.press("Enter")
        page.wait_for_selector("input[name=slot]")
    tab_to("input[name=slot]")
    page.keyboard.press("Space")
    tab_to("#first_name")
    page.keyboard.type("Louise")
    tab_to("#last_name")
    page.keyboard.type("Petit")
    tab_to("#book-button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirmation")
    outline = page.evaluate("""() => {
        const a = document.querySelector('.actions a');
        a.focus();
        return getComputedStyle(a).outlineStyle;
    }""")
    assert outline == "solid"
    context.close()


def test_staff_edits_availability(live: Live, browser: Any) -> None:
    """A closed day added in the editor is saved through the availability document."""
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    log_in(page, live.url, "staff.sfp-tf@visio.test")
    page.goto(f"{live.url}/staff/availability")
    page.wait_for_selector("#rules tr")
    rules = page.locator("#rules tr").count()
    page.fill("#closure-day", "2027-01-15")
    page.click("#add-closure")
    page.click("#add-rule")
    assert page.locator("#rules tr").count() == rules + 1
    page.locator("#rules tr").last.locator('[data-field="weekday"]').select_option("5")
    page.click("#availability button[type=submit]")
    wait_until(lambda: page.inner_text("#availability-status") == "Enregistré.", what="saved")
    page.reload()
    page.wait_for_selector("#rules tr")
    assert "2027-01-15" in page.inner_text("#closures")
    assert page.locator("#rules tr").count() == rules + 1
    context.close()


def test_staff_creates_a_feed_and_registers_a_calendar(live: Live, browser: Any) -> None:
    """The feed address is shown once and serves ICS; a private address is refused in words."""
    import requests

    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    log_in(page, live.url, "staff.vdab-ga@visio.test")
    page.goto(f"{live.url}/staff/availability")
    page.click("#create-feed")
    url = page.input_value("#feed-url")
    assert url.startswith(f"{live.url}/calendars/")
    feed = requests.get(url, timeout=30)
    assert feed.status_code == 200
    assert feed.text.startswith("BEGIN:VCALENDAR")
    # The calendars service refuses addresses it cannot use (here a loopback one); the
    # page says why. (A public address cannot be reached from the test machine.)
    page.fill("#calendar-url", "https://127.0.0.1/agenda.ics")
    page.click("#import-calendar")
    page.wait_for_selector("#calendars .error")
    assert "adresse" in page.inner_text("#calendars .error")
    assert page.locator("#imported").count() == 0
    context.close()


AM_PM = r"\b[AaPp]\.? ?[Mm]\.?(?![\w])"


def _no_am_pm(page: Any) -> None:
    """No AM/PM in the page's text, and no native time field (those follow the browser's
    locale, not the page's, and some locales draw them with AM/PM)."""
    import re

    text = page.inner_text("body")
    assert not re.search(AM_PM, text), re.search(AM_PM, text)
    native = page.locator("input[type=time], input[type=datetime-local]").count()
    assert native == 0, "a native time field follows the browser's clock, not the page's"
    values = page.evaluate("[...document.querySelectorAll('input.clock')].map(i => i.value)")
    assert all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v) for v in values), values


@pytest.mark.parametrize(("lang", "locale"), [("nl", "nl-BE"), ("en", "en-US")])
def test_times_are_on_the_24_hour_clock(live: Live, browser: Any, lang: str,
                                        locale: str) -> None:
    """Whatever the browser's locale (en-US draws times with AM/PM), the availability
    editor, the booking page and the agenda show and take times as hh:mm."""
    import re

    context = browser.new_context(locale=locale)
    page = context.new_page()
    page.goto(f"{live.url}/lang?to={lang}&next=/login")
    log_in(page, live.url, "staff.sfp-tf@visio.test")
    page.goto(f"{live.url}/staff/availability")
    page.wait_for_selector("#rules tr")
    assert page.get_attribute("html", "lang") == lang
    _no_am_pm(page)
    hint = page.inner_text("#clock-hint")
    assert "14:30" in hint
    # A time typed with AM/PM is refused by the field itself; hh:mm is kept as typed.
    page.click("#add-rule")
    row = page.locator("#rules tr").last
    row.locator('[data-field="weekday"]').select_option("6")
    opens = row.locator('[data-field="opens"]')
    opens.fill("2:30 PM")
    assert opens.evaluate("i => i.checkValidity()") is False
    opens.fill("14:30")
    row.locator('[data-field="closes"]').fill("17:45")
    assert opens.evaluate("i => i.checkValidity()") is True
    assert "24" in str(opens.get_attribute("aria-label"))
    day = "2027-02-1" + ("0" if lang == "nl" else "1")
    page.fill("#absence-start", day)
    page.fill("#absence-start-time", "13:15")
    page.fill("#absence-end", day)
    page.fill("#absence-end-time", "18:05")
    page.click("#add-absence")
    page.click("#availability button[type=submit]")
    wait_until(lambda: page.get_attribute("#availability-status", "class") == "ok",
               what="saved")
    page.reload()
    page.wait_for_selector("#rules tr")
    values = page.evaluate(
        "[...document.querySelectorAll('#rules tr')].map(r => ["
        "r.querySelector('[data-field=opens]').value,"
        " r.querySelector('[data-field=closes]').value])")
    assert ["14:30", "17:45"] in values
    assert f"{day} 13:15" in page.inner_text("#absences")
    assert f"{day} 18:05" in page.inner_text("#absences")
    _no_am_pm(page)
    page.goto(f"{live.url}/staff/agenda?view=week")
    _no_am_pm(page)
    context.close()

    context = browser.new_context(locale=locale)
    page = context.new_page()
    page.goto(f"{live.url}/lang?to={lang}&next=/login")
    log_in(page, live.url, AGENT)
    page.goto(f"{live.url}/agent/book?theme=famille")
    page.wait_for_selector("input[name=slot]")
    _no_am_pm(page)
    times = page.locator("label.slot strong").all_inner_texts()
    assert times
    assert all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", t) for t in times), times
    page.goto(f"{live.url}/agent/today")
    _no_am_pm(page)
    context.close()


RELAY_ONLY = """(servers) => {
  // Both pages reach each other through the test's coturn only, so that pausing it cuts
  // the media path (the page's own code is untouched: only the browser's constructor).
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}) {
      super({...config, iceServers: servers, iceTransportPolicy: "relay"});
    }
  };
}"""

WATCH_STATES = """() => {
  window.__states = [document.getElementById("call-state").dataset.callState];
  new MutationObserver(() => {
    const s = document.getElementById("call-state").dataset.callState;
    if (window.__states.at(-1) !== s) window.__states.push(s);
  }).observe(document.getElementById("call-state"), {attributes: true});
  window.visioCall.ws.__before = true;
  for (const p of window.visioCall.peers.values()) p.pc.__before = true;
}"""

UFRAGS = """() => [...window.visioCall.peers.values()].map((p) => ({
  polite: p.polite, same: p.pc.__before === true, state: p.pc.connectionState,
  local: (p.pc.localDescription?.sdp.match(/a=ice-ufrag:(\\S+)/) || [])[1],
  remote: (p.pc.remoteDescription?.sdp.match(/a=ice-ufrag:(\\S+)/) || [])[1]}))"""

SELECTED_TYPES = """async () => {
  const types = [];
  for (const p of window.visioCall.peers.values()) {
    const report = await p.pc.getStats();
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        types.push(report.get(pair.localCandidateId).candidateType);
      }
    });
  }
  return types;
}"""


def test_ice_restart_brings_the_call_back_without_reload(
        live: Live, browser: Any, tmp_path: Any) -> None:
    """The media path is cut (the relay both sides use is paused): both pages show
    `reconnecting`, the leading side restarts ICE on the same peer connection (no reload,
    no new signaling socket), and once the path is back both are `connected` with video
    frames rising again."""
    import os
    import signal
    from datetime import UTC, datetime

    from signaling.turn import turn_credentials
    from tests.coturn import SECRETS, running_coturn

    appointment = live.appointment_now(commune="Hondschoote", operator="SFP-TF", staff=1,
                                       theme="retraite", booth=3)
    with running_coturn(tmp_path) as turn:
        pages = []
        contexts = []
        for email, who in ((AGENT, "kiosk"), ("staff.sfp-tf@visio.test", "staff")):
            username, password = turn_credentials(secret=SECRETS[0], peer_id=who, ttl=600,
                                                  now=datetime.now(UTC))
            context = browser.new_context(locale="fr-FR")
            servers = [{"urls": [turn.url], "username": username, "credential": password}]
            context.add_init_script(script=f"({RELAY_ONLY})({json.dumps(servers)})")
            contexts.append(context)
            page = context.new_page()
            log_in(page, live.url, email)
            page.goto(f"{live.url}/call/{appointment}")
            wait_until(lambda p=page: call_state(p) in ("waiting", "connecting", "connected"),
                       what=f"{who} on the call page")
            pages.append(page)
        try:
            for page in pages:
                wait_until(lambda p=page: call_state(p) == "connected", what="connected")
                assert page.evaluate(SELECTED_TYPES) == ["relay"]
                assert media_flowing(page)
                page.evaluate(WATCH_STATES)
            before = {id(p): p.evaluate(UFRAGS)[0] for p in pages}
            [leader] = [p for p in pages if not before[id(p)]["polite"]]

            os.kill(turn.process.pid, signal.SIGSTOP)
            try:
                for page in pages:
                    wait_until(lambda p=page: call_state(p) == "reconnecting", within=20,
                               what="reconnecting while the path is cut")
                # The leading side restarts ICE on its own connection: new credentials.
                wait_until(lambda: (leader.evaluate(UFRAGS) or [before[id(leader)]])[0]["local"]
                           != before[id(leader)]["local"], within=20, what="an ICE restart")
            finally:
                os.kill(turn.process.pid, signal.SIGCONT)

            for page in pages:
                wait_until(lambda p=page: call_state(p) == "connected", within=45,
                           what="connected again")
            for page in pages:
                after = page.evaluate(UFRAGS)[0]
                assert after["same"], "a new peer connection: not an ICE restart"
                assert page.evaluate("window.visioCall.ws.__before") is True  # no reload
                assert after["local"] != before[id(page)]["local"]
                assert after["remote"] != before[id(page)]["remote"]
                states = page.evaluate("window.__states")
                assert states[0] == "connected"
                assert states[-1] == "connected"
                assert "reconnecting" in states
                assert "failed" not in states
                assert media_flowing(page)
        finally:
            for context in contexts:
                context.close()

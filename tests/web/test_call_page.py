"""The call page in headless Chromium: joining early, each seat's fallback number, the
note for the operator, controls in view at every size, Leave and Rejoin, accessibility.

The application runs with its own clock here (real time moved by an offset the tests
set), so a page can be opened before the join window and the window then opened under it.
The signaling host checks tokens against the real time: appointments start a few minutes
from now, and the app's clock is moved back to make it "early".
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiohttp import web

from tests.conftest import in_thread
from tests.web.conftest import AXE, SCREENSHOTS, BackgroundServer, log_in
from tests.web.test_browser import AGENT, LOCALES, STAFF, call_state, frames_rising, wait_until
from visio import models as m
from visio.app import create_app
from visio.clock import utcnow
from visio.keys import database_key
from visio.migrate import upgrade
from visio.seed import demo_id, seed_demo
from visio.settings import Settings

FALLBACK_SECONDS = 4
JOIN_BEFORE = timedelta(minutes=15)
DESK_PHONE = "+33 1 99 00 00 59"  # every demo desk's
SITE_PHONE = "+33 1 99 00 00 42"
NOTE = "Où en est <b>mon</b> dossier de retraite ?\nJ'ai envoyé les papiers en mars."
CONTROLS = ("#mute", "#camera", "#audio-only", "#leave")
#: Windows the call page must fit: laptops, 200 % zoom of a 1366x768 screen, a tablet.
SIZES = {"1366x768": ({"width": 1366, "height": 768}, 1),
         "1280x800": ({"width": 1280, "height": 800}, 1),
         "zoom200": ({"width": 683, "height": 384}, 2),
         "tablet": ({"width": 768, "height": 1024}, 1)}


class ShiftedClock:
    """The app's clock: the real time moved by ``offset`` (which a test changes)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


class ClockedServer(BackgroundServer):
    """The test server of tests/web/conftest.py, with a clock the tests move."""

    def __init__(self, settings: Settings, clock: ShiftedClock) -> None:
        super().__init__(settings)
        self.clock = clock
        self.made: dict[tuple[str, str, int], str] = {}

    async def _start(self) -> None:
        await seed_demo(self.settings)
        self.app = create_app(self.settings, clock=self.clock)
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.host, self.settings.port).start()

    def appointment(self, *, commune: str, operator: str, staff: int, theme: str,
                    start: datetime, note: str | None = None, booth: int = 1) -> str:
        """An appointment of the demo, written directly once per seat pair; its id."""
        key = (commune, operator, staff)
        if key not in self.made:
            self.made[key] = str(self.run(self._insert(
                commune=commune, operator=operator, staff=staff, theme=theme, start=start,
                note=note, booth=booth)))
        return self.made[key]

    async def _insert(self, *, commune: str, operator: str, staff: int, theme: str,
                      start: datetime, note: str | None, booth: int) -> str:
        assert self.app is not None
        appointment = m.Appointment(
            id=m.new_id(), status="booked", site_id=demo_id("site", commune), stop_id=None,
            booth=booth, operator_id=demo_id("operator", operator),
            desk_id=demo_id("desk", operator), staff_id=demo_id("staff", operator, str(staff)),
            service_id=demo_id("service", operator, theme), theme=theme, start=start,
            end=start + timedelta(minutes=30), staff_until=start + timedelta(minutes=30),
            usager_first_name="Jeanne", usager_last_name="Martin", usager_phone=None,
            usager_email=None, usager_language="fr", usager_consent=True,
            booked_by=demo_id("user", "admin@visio.test"), version=1, note=note)
        async with self.app[database_key].write() as session:
            session.add(appointment)
        return appointment.id

    def site_phone(self, commune: str, phone: str) -> None:
        """Give a demo site its phone number."""
        self.run(self._site_phone(commune, phone))

    async def _site_phone(self, commune: str, phone: str) -> None:
        assert self.app is not None
        async with self.app[database_key].write() as session:
            await session.execute(sa.update(m.Site).where(
                m.Site.id == demo_id("site", commune)).values(phone=phone))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ClockedServer]]:
    """visio on a migrated SQLite file with the demo, its clock in the test's hands."""
    path = tmp_path_factory.mktemp("call-page") / "visio.db"
    url = f"sqlite+aiosqlite:///{path}"
    in_thread(lambda: upgrade(url))
    port = _free_port()
    settings = Settings(database_url=url, secret_key="call-page-secret-" + "x" * 32,
                        host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}",
                        login_max_failures=1000, call_fallback_seconds=FALLBACK_SECONDS)
    server = ClockedServer(settings, ShiftedClock())
    server.start()
    try:
        yield settings.base_url, server
    finally:
        server.stop()


def _opens(start: datetime) -> str:
    """The join window's opening as the pages write it (Paris wall clock)."""
    return (start - JOIN_BEFORE).astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M")


def _join_requests(page: Any) -> list[int]:
    """Collect the statuses of the page's join requests as they come back."""
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/join")
            else None)
    return statuses


def _answered(page: Any, statuses: list[int], status: int) -> int:
    """How many join requests came back with ``status`` (a call into the page lets
    Playwright deliver the responses seen since the last one)."""
    page.evaluate("0")
    return statuses.count(status)


def test_opened_early_the_call_page_waits_and_connects_by_itself(
        clocked: tuple[str, ClockedServer], browser: Any) -> None:
    """Twenty minutes early, Today and the agenda say from when Join is possible; both
    call pages say they wait until then (no failure, no fallback number), and connect by
    themselves once the app's clock reaches the window."""
    url, server = clocked
    start = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    appointment = server.appointment(commune="Hondschoote", operator="CAF59", staff=1,
                                     theme="famille", start=start)
    server.clock.offset = -timedelta(minutes=20)
    opens = _opens(start)
    # The appointment's own day: run just before midnight in Paris, the app's clock is
    # still on the day before (as the agent would, the test turns to the next day).
    day = start.astimezone(ZoneInfo("Europe/Paris")).date().isoformat()
    try:
        kiosk = browser.new_context(locale="fr-FR")
        kiosk_page = kiosk.new_page()
        log_in(kiosk_page, url, AGENT)
        kiosk_page.goto(f"{url}/agent/today?date={day}")
        words = kiosk_page.inner_text(f'[data-join-opens="{appointment}"]')
        assert words == f"Possible à partir de {opens}"
        kiosk_joins = _join_requests(kiosk_page)
        kiosk_page.goto(f"{url}/call/{appointment}")
        assert call_state(kiosk_page) == "early"
        assert f"possible à partir de {opens}" in kiosk_page.inner_text("#call-state")

        staff = browser.new_context(locale="fr-FR")
        staff_page = staff.new_page()
        log_in(staff_page, url, STAFF)
        staff_page.goto(f"{url}/staff/agenda?date={day}")
        assert staff_page.inner_text(f'[data-join-opens="{appointment}"]') == \
            f"Possible à partir de {opens}"
        staff_joins = _join_requests(staff_page)
        staff_page.click(f'[data-join="{appointment}"]')
        staff_page.wait_for_url(f"**/call/{appointment}")
        # Asked, refused as early, asked again: still waiting in words, never failed,
        # and no fallback number for a call that has not started.
        for page, joins in ((kiosk_page, kiosk_joins), (staff_page, staff_joins)):
            wait_until(lambda p=page, j=joins: _answered(p, j, 409) >= 2,
                       what="asked again while early")
            assert call_state(page) == "early"
            assert page.locator("#fallback").is_hidden()

        server.clock.offset = timedelta(0)
        for page in (kiosk_page, staff_page):
            wait_until(lambda p=page: call_state(p) == "connected", what="connected")
        assert frames_rising(staff_page)
        assert kiosk_joins[-1] == 200
        kiosk.close()
        staff.close()
    finally:
        server.clock.offset = timedelta(0)


def test_signaling_refusing_an_early_token_means_waiting(
        clocked: tuple[str, ClockedServer], browser: Any) -> None:
    """When the app's clock has opened the window but the signaling host's has not (the
    hosts' clocks differ), its refusal (close code 4405) puts the page back to waiting in
    words, asking again, instead of a dead "failed"."""
    url, server = clocked
    start = utcnow().replace(microsecond=0) + timedelta(minutes=40)
    appointment = server.appointment(commune="Hondschoote", operator="CARSAT-HDF", staff=2,
                                     theme="retraite", start=start)
    server.clock.offset = timedelta(minutes=30)
    try:
        context = browser.new_context(locale="fr-FR")
        page = context.new_page()
        log_in(page, url, AGENT)
        closes: list[int] = []
        page.on("websocket", lambda ws: ws.on("close", lambda _ws: closes.append(1)))
        joins = _join_requests(page)
        page.goto(f"{url}/call/{appointment}")
        wait_until(lambda: _answered(page, joins, 200) >= 2 and len(closes) >= 2,
                   what="refused by signaling and asked again")
        assert page.evaluate("window.visioCall.lastCloseCode") == 4405
        wait_until(lambda: call_state(page) == "early", what="back to waiting in words")
        assert f"possible à partir de {_opens(start)}" in page.inner_text("#call-state")
        context.close()
    finally:
        server.clock.offset = timedelta(0)


def test_each_seat_sees_its_fallback_number_and_the_note(
        clocked: tuple[str, ClockedServer], browser: Any) -> None:
    """Alone past the delay, the kiosk is told to call the operator's desk, the staff
    member the France Services site where the usager sits; both read the agent's note
    under "Question pour l'opérateur", as text (its markup is not interpreted)."""
    url, server = clocked
    server.site_phone("Le Cateau-Cambrésis", SITE_PHONE)
    appointment = server.appointment(
        commune="Le Cateau-Cambrésis", operator="CARSAT-HDF", staff=1, theme="retraite",
        start=utcnow().replace(microsecond=0) + timedelta(minutes=5), note=NOTE)
    for email, shown, hidden in (("agent.le-cateau-cambresis@visio.test", DESK_PHONE,
                                  SITE_PHONE),
                                 ("staff.carsat-hdf@visio.test", SITE_PHONE, DESK_PHONE)):
        context = browser.new_context(locale="fr-FR")
        page = context.new_page()
        log_in(page, url, email)
        page.goto(f"{url}/call/{appointment}")
        assert page.inner_text("#operator-note-title") == "Question pour l'opérateur"
        assert page.inner_text("#operator-note") == NOTE
        assert page.locator("#operator-note b").count() == 0
        page.locator("#fallback").wait_for(state="visible",
                                           timeout=(FALLBACK_SECONDS + 10) * 1000)
        text = page.inner_text("#fallback")
        assert shown in text
        assert hidden not in text
        if email.startswith("staff"):
            assert "France Services du Cateau-Cambrésis" in text
            assert "usager" in text
        context.close()


def _outside(page: Any, size: dict[str, int]) -> list[str]:
    """The call controls not entirely inside the window."""
    outside = []
    for selector in CONTROLS:
        box = page.locator(selector).bounding_box()
        if (box is None or box["x"] < 0 or box["y"] < 0
                or box["x"] + box["width"] > size["width"]
                or box["y"] + box["height"] > size["height"]):
            outside.append(f"{selector} {box}")
    return outside


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_call_page_fits_every_window_and_is_accessible(
        clocked: tuple[str, ClockedServer], browser: Any, lang: str) -> None:
    """Mute, camera, audio only and Leave are in view without scrolling at 1366x768,
    1280x800, 200 % zoom and on a tablet, even scrolled to the end of the page; nothing
    scrolls sideways; axe-core finds no serious or critical violation. Screenshots."""
    from tests.support import missing_service

    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    url, server = clocked
    appointment = server.appointment(
        commune="Bruay-sur-l'Escaut", operator="DDFIP59", staff=1, theme="fiscalite",
        start=utcnow().replace(microsecond=0) + timedelta(minutes=5), note=NOTE * 8)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: dict[str, list[str]] = {}
    for name, (size, scale) in SIZES.items():
        # axe-core is injected as an inline script: the page's CSP would refuse it.
        context = browser.new_context(locale=LOCALES[lang], viewport=size,
                                      device_scale_factor=scale, bypass_csp=True)
        page = context.new_page()
        page.goto(f"{url}/lang?to={lang}&next=/login")
        log_in(page, url, "agent.bruay-sur-l-escaut@visio.test")
        page.goto(f"{url}/call/{appointment}")
        wait_until(lambda p=page: call_state(p) == "waiting", what="call page ready")
        assert page.get_attribute("html", "lang") == lang
        found = _outside(page, size)
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        found += [f"scrolled: {o}" for o in _outside(page, size)]
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            found.append(f"{overflow}px sideways")
        page.evaluate("window.scrollTo(0, 0)")
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        assert result["testEngine"]["name"] == "axe-core"
        assert result["passes"], "axe ran no rule"
        found += [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
                  for v in result["violations"] if v["impact"] in ("serious", "critical")]
        if found:
            problems[name] = found
        page.screenshot(path=str(SCREENSHOTS / f"call-{lang}-{name}.png"))
        context.close()
    assert not problems, problems


def test_leaving_stops_every_device_and_rejoin_works(
        clocked: tuple[str, ClockedServer], browser: Any) -> None:
    """Leave ends every local camera and microphone track (test call included) and
    offers Rejoin, which brings the call back with fresh devices."""
    url, server = clocked
    appointment = server.appointment(
        commune="Bruay-sur-l'Escaut", operator="CAF59", staff=2, theme="famille",
        start=utcnow().replace(microsecond=0) + timedelta(minutes=5), booth=2)
    kiosk = browser.new_context(locale="fr-FR")
    kiosk_page = kiosk.new_page()
    log_in(kiosk_page, url, "agent.bruay-sur-l-escaut@visio.test")
    kiosk_page.goto(f"{url}/call/{appointment}")
    staff = browser.new_context(locale="fr-FR")
    staff_page = staff.new_page()
    log_in(staff_page, url, STAFF)
    staff_page.goto(f"{url}/call/{appointment}")
    for page in (kiosk_page, staff_page):
        wait_until(lambda p=page: call_state(p) == "connected", what="connected")
    staff_page.click("#test-call")
    wait_until(lambda: staff_page.get_attribute("#test-status", "data-test") == "ok",
               what="test call connected")
    live_tracks = "window.visioCall.tracks.filter((t) => t.readyState === 'live').length"
    assert staff_page.evaluate(live_tracks) >= 2

    staff_page.click("#leave")
    assert call_state(staff_page) == "ended"
    states = staff_page.evaluate("window.visioCall.tracks.map((t) => t.readyState)")
    assert len(states) >= 2
    assert set(states) == {"ended"}
    assert staff_page.evaluate("document.getElementById('test-video').hidden")
    assert staff_page.locator("#rejoin").is_visible()
    assert staff_page.locator("#leave").is_hidden()
    assert staff_page.evaluate("document.activeElement.id") == "rejoin"
    wait_until(lambda: call_state(kiosk_page) == "waiting", what="the kiosk sees them leave")

    staff_page.click("#rejoin")
    for page in (kiosk_page, staff_page):
        wait_until(lambda p=page: call_state(p) == "connected", what="connected again")
    assert frames_rising(staff_page)
    assert staff_page.evaluate(live_tracks) >= 2
    assert staff_page.locator("#leave").is_visible()
    kiosk.close()
    staff.close()

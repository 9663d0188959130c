"""A call across the emulated link: the server, coturn, the staff member's Chromium on the
server's side, the kiosk's Chromium in the namespace behind the forwarder.

Used by the pytest fixture (tests/links/fixture.py) and by ``make bench-links``
(bench/bench_links.py). Everything started here is stopped by ``linked_call``'s exit,
whatever happened inside.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.conftest import in_thread
from tests.coturn import SECRETS, running_coturn
from tests.links.link import CLEAN, EmulatedLink
from tests.web.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    BackgroundServer,
    _insert_appointment,
    log_in,
)
from visio import models as m
from visio.keys import database_key
from visio.migrate import upgrade
from visio.settings import Settings

AGENT = "agent.hondschoote@visio.test"
STAFF = "staff.caf59@visio.test"

#: Totals of every peer connection of the call page, read by the tests and the bench.
STATS_JS = "\n".join(line for line in (Path(__file__).parent / "stats.js").read_text().splitlines()
                     if not line.startswith("//"))


#: The call page has joined the room (both the page before issue 18 and this one).
JOINED = ("() => { const c = window.visioCall; return !!(c && c.ws && c.ws.readyState === 1"
          " && c.pingTimer !== null); }")


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def browser_args(url: str) -> list[str]:
    """Chromium's flags for the call: fake devices, the server's http origin treated as
    secure (it is not localhost here), and real host candidates (no mDNS across the
    namespaces)."""
    return [*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={url}",
            "--disable-features=WebRtcHideLocalIpsWithMdns"]


@dataclass
class LinkedCall:
    """Everything a call across the emulated link needs, running."""

    link: EmulatedLink
    server: BackgroundServer
    url: str
    turn_url: str
    work: Path
    playwright: Any
    staff_browser: Any
    _kiosk_browsers: list[Any] = field(default_factory=list)
    _sessions: dict[tuple[int, str], Any] = field(default_factory=dict)
    _pages: list[Any] = field(default_factory=list)
    _appointments: list[str] = field(default_factory=list)

    def kiosk_browser(self, *, video_file: Path | None = None) -> Any:
        """A Chromium in the kiosk's namespace (closed with the harness); ``video_file``: a
        y4m the fake camera plays instead of its test pattern."""
        args = browser_args(self.url)
        if video_file is not None:
            args.append(f"--use-file-for-fake-video-capture={video_file}")
        browser = self.playwright.chromium.launch(
            executable_path=str(self.link.chromium(self.work, CHROMIUM)), args=args,
            headless=True)
        self._kiosk_browsers.append(browser)
        return browser

    def appointment_now(self) -> str:
        """A new appointment of the demo's kiosk (Hondschoote) with the CAF's counsellor,
        starting in 5 minutes (its call can be joined now). The previous call's pages are
        closed and its appointment cancelled, so that the new one takes its place."""
        self.end_calls()
        appointment = str(self.server.run(_insert_appointment(
            self.server, commune="Hondschoote", operator="CAF59", staff=1, theme="famille",
            booth=1)))
        self._appointments.append(appointment)
        return appointment

    def _session(self, browser: Any, email: str) -> Any:
        """A browser context of ``browser`` logged in as ``email`` (once per harness)."""
        key = (id(browser), email)
        if key not in self._sessions:
            context = browser.new_context(locale="fr-FR")
            page = context.new_page()
            log_in(page, self.url, email)
            page.close()
            self._sessions[key] = context
        return self._sessions[key]

    def end_calls(self) -> None:
        """Close every call page opened so far and cancel their appointments."""
        while self._pages:
            with contextlib.suppress(Exception):
                self._pages.pop().close()
        if self._appointments:
            self.server.run(_cancel(self.server, list(self._appointments)))
            self._appointments.clear()

    def open_pages(self, kiosk_browser: Any, appointment: str, *, query: str = "",
                   before_staff: Callable[[], None] | None = None,
                   page_js: str | None = None) -> tuple[Any, Any, float]:
        """The kiosk's call page (waiting), then ``before_staff()`` (e.g. degrade the link),
        then the staff member's: both pages and the instant (monotonic) the staff's page
        was loaded, from which "connected after" counts. ``page_js``: served to both
        browsers in place of /static/call.js (another version of the call page's script,
        e.g. the one before a change, measured on the same server)."""
        kiosk_page = self._session(kiosk_browser, AGENT).new_page()
        staff_page = self._session(self.staff_browser, STAFF).new_page()
        self._pages += [kiosk_page, staff_page]
        if page_js is not None:
            for page in (kiosk_page, staff_page):
                page.route("**/static/call.js*", lambda route: route.fulfill(
                    status=200, body=page_js, content_type="text/javascript"))
        kiosk_page.goto(f"{self.url}/call/{appointment}{query}")
        # Waiting in the room, not only in the page's first words: joined (its heartbeat
        # runs from `joined` on). Otherwise the kiosk's own join could fall after the link
        # is degraded, and count in the staff member's "connected after".
        wait_for(lambda: kiosk_page.get_attribute("#call-state", "data-call-state") == "waiting"
                 and kiosk_page.evaluate(JOINED), what="the kiosk waiting in the room")
        if before_staff is not None:
            before_staff()
        staff_page.goto(f"{self.url}/call/{appointment}{query}")
        return kiosk_page, staff_page, time.monotonic()


async def _cancel(server: BackgroundServer, appointments: list[str]) -> None:
    assert server.app is not None
    async with server.app[database_key].write() as session:
        await session.execute(sa.update(m.Appointment).where(
            m.Appointment.id.in_(appointments)).values(status="cancelled"))


def stats(page: Any) -> dict[str, Any]:
    """One snapshot of the page's getStats() totals (see STATS_JS)."""
    snapshot: dict[str, Any] = page.evaluate(STATS_JS)
    snapshot["at"] = time.monotonic()
    return snapshot


def wait_for(check: Callable[[], Any], *, within: float = 60.0, what: str = "",
             every: float = 0.1) -> Any:
    """Poll until ``check()`` is true; its value (an AssertionError after ``within``)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def camera_like_y4m(path: Path, *, width: int = 640, height: int = 480, fps: int = 20,
                    seconds: int = 4) -> Path:
    """A y4m a camera might give: a textured scene panning, a bright box crossing it and a
    band of fresh noise moving down (a tenth of the picture), so that VP8 wants well over
    1 Mbit/s for it (the fake device's pattern needs far less). Made once, then reused."""
    if path.exists():
        return path
    import random

    rng = random.Random(18)
    table = bytes(40 + (v * 176) // 256 for v in range(256))
    texture = rng.randbytes(width * height).translate(table)
    chroma = rng.randbytes(width * height // 4).translate(bytes(100 + v // 5 for v in range(256)))
    band = height // 10
    partial = path.with_suffix(".part")
    with partial.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for n in range(fps * seconds):
            shift = (n * 7) % width
            luma = bytearray(b"".join(
                texture[y * width + shift:(y + 1) * width] + texture[y * width:y * width + shift]
                for y in range(height)))
            bx = (n * 11) % (width - 120)
            for y in range(160, 280):
                luma[y * width + bx:y * width + bx + 120] = b"\xe6" * 120
            top = (n * 13) % (height - band)
            luma[top * width:(top + band) * width] = rng.randbytes(band * width)
            out.write(b"FRAME\n")
            out.write(luma)
            out.write(chroma)
            out.write(chroma)
    partial.rename(path)
    return path


@contextlib.contextmanager
def linked_call(work: Path, *, database_url: str | None = None) -> Iterator[LinkedCall]:
    """Start the link, coturn on its server side, visio there, and the staff's Chromium."""
    from playwright.sync_api import sync_playwright

    work.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        link = stack.enter_context(EmulatedLink())
        turn = stack.enter_context(running_coturn(_made(work / "coturn"), ip=link.server_ip))
        tcp_turn = turn.url.replace("transport=udp", "transport=tcp")
        url = database_url or f"sqlite+aiosqlite:///{work / f'visio-{os.getpid()}.db'}"
        in_thread(lambda: upgrade(url))
        port = _free_port(link.server_ip)
        settings = Settings(
            database_url=url, secret_key="links-secret-" + "x" * 32, host=link.server_ip,
            port=port, base_url=f"http://{link.server_ip}:{port}", login_max_failures=1000,
            search_rate_per_minute=1_000_000, turn_urls=(turn.url, tcp_turn),
            turn_secrets=SECRETS)
        server = BackgroundServer(settings)
        server.start()
        stack.callback(server.stop)
        playwright = sync_playwright().start()
        stack.callback(playwright.stop)
        staff_browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=browser_args(settings.base_url), headless=True)
        stack.callback(staff_browser.close)
        harness = LinkedCall(link=link, server=server, url=settings.base_url,
                             turn_url=tcp_turn, work=work, playwright=playwright,
                             staff_browser=staff_browser)
        try:
            yield harness
        finally:
            with contextlib.suppress(Exception):
                harness.end_calls()
            for browser in harness._kiosk_browsers:
                with contextlib.suppress(Exception):
                    browser.close()
            link.set(CLEAN)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

"""The real application on a real socket, the demo data, and Debian's Chromium.

The server runs in a thread with its own event loop (as in tests/api/test_fuzz.py), on a
SQLite file migrated by Alembic and loaded with the demo. Playwright's sync API drives
``/usr/bin/chromium`` with fake camera and microphone. Without Chromium or Playwright the
tests skip loudly, and fail in CI (``VISIO_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from tests.conftest import in_thread
from tests.support import missing_service
from visio import models as m
from visio.app import create_app
from visio.clock import utcnow
from visio.keys import database_key
from visio.migrate import upgrade
from visio.seed import STAFF_PER_DESK, demo_id, seed_demo
from visio.settings import Settings

CHROMIUM = os.environ.get("VISIO_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
FALLBACK_SECONDS = 4
CHROMIUM_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required", "--no-sandbox"]


class BackgroundServer:
    """visio on 127.0.0.1:port, served by a loop in its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="visio-web",
                                        daemon=True)
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None

    def run(self, coro: Any, timeout: float = 120) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    async def _start(self) -> None:
        await seed_demo(self.settings)
        self.app = create_app(self.settings)
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.host, self.settings.port).start()

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    def stop(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    url: str
    server: BackgroundServer
    made: dict[tuple[str, str, int], tuple[str, datetime]] = field(default_factory=dict)

    def appointment_now(self, *, commune: str, operator: str, staff: int, theme: str,
                        booth: int = 1) -> str:
        """An appointment starting within 5 minutes (its call can be joined now).

        Made once per (site, operator, staff member) and 10 minutes, whichever test asks
        first: every caller of one key in that time gets the same appointment; the staff
        member and booth are the ones asked for when free, else the next free ones."""
        key = (commune, operator, staff)
        made = self.made.get(key)
        if made is None or utcnow() - made[1] > timedelta(minutes=10):
            made = (str(self.server.run(_insert_appointment(
                self.server, commune=commune, operator=operator, staff=staff, theme=theme,
                booth=booth))), utcnow())
            self.made[key] = made
        return made[0]


    def usager_link(self, appointment_id: str) -> str:
        """The usager's link path (``/u/{token}``) of an appointment, as messages carry it."""
        return str(self.server.run(_usager_link(self.server, appointment_id)))


async def _usager_link(server: BackgroundServer, appointment_id: str) -> str:
    from visio.notify.compose import load_facts, usager_url
    from visio.usager_link import LinkKey

    assert server.app is not None
    facts = await load_facts(db=server.app[database_key], appointment_id=appointment_id)
    assert facts is not None
    base = server.settings.base_url
    return usager_url(facts, key=LinkKey.from_secret(server.settings.secret_key),
                      base_url=base).removeprefix(base)


async def _insert_appointment(server: BackgroundServer, *, commune: str, operator: str,
                              staff: int, theme: str, booth: int) -> str:
    """Insert a booked appointment starting in 5 minutes at the site, for the operator.

    The staff member and booth asked for are taken when free; otherwise the next free
    ones (a staff login joins any call of its desk, a kiosk any booth of its site), so
    that tests sharing one server, in whatever order a worker runs them, never collide
    on the no-overlap rules."""
    assert server.app is not None
    start = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    end = start + timedelta(minutes=30)
    site_id = demo_id("site", commune)
    async with server.app[database_key].write() as session:
        holding = (await session.execute(
            sa.select(m.Appointment.staff_id, m.Appointment.site_id, m.Appointment.booth)
            .where(m.Appointment.status != "cancelled", m.Appointment.start < end,
                   start < m.Appointment.staff_until))).all()
        busy_staff = {row.staff_id for row in holding}
        busy_booths = {row.booth for row in holding if row.site_id == site_id}
        staff_ids = [demo_id("staff", operator, str(n))
                     for n in [staff, *range(1, STAFF_PER_DESK + 1)]]
        staff_id = next((s for s in staff_ids if s not in busy_staff), None)
        assert staff_id is not None, f"every staff member of {operator} has a call now"
        free_booth = next(b for b in [booth, *range(1, 100)] if b not in busy_booths)
        appointment = m.Appointment(
            id=m.new_id(), status="booked", site_id=site_id, stop_id=None,
            booth=free_booth, operator_id=demo_id("operator", operator),
            desk_id=demo_id("desk", operator), staff_id=staff_id,
            service_id=demo_id("service", operator, theme), theme=theme, start=start,
            end=end, staff_until=end, usager_first_name="Jeanne", usager_last_name="Martin",
            usager_phone=None, usager_email=None, usager_language="fr", usager_consent=True,
            booked_by=demo_id("user", "admin@visio.test"), version=1)
        session.add(appointment)
    return appointment.id


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = tmp_path_factory.mktemp("web") / "visio.db"
    url = f"sqlite+aiosqlite:///{path}"
    in_thread(lambda: upgrade(url))
    port = _free_port()
    settings = Settings(database_url=url, secret_key="web-secret-" + "x" * 32,
                        host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}",
                        search_rate_per_minute=1_000_000, login_max_failures=1000,
                        call_fallback_seconds=FALLBACK_SECONDS, call_link_debug=True)
    server = BackgroundServer(settings)
    server.start()
    try:
        yield Live(url=settings.base_url, server=server)
    finally:
        server.stop()


# Per module: Playwright's sync API holds the main thread's event loop while it runs, so
# it must stop before pytest-asyncio's loop runs the async tests of other modules.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        missing_service(f"Chromium ({CHROMIUM}) for the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("Playwright for Python")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        try:
            yield instance
        finally:
            instance.close()


#: Hands a call page's link machine to the test (VISIO_CALL_LINK_DEBUG): where a test is
#: about negotiation, a loaded machine's real measures must not switch the call to audio
#: only by themselves (tests/web/test_call_links.py tests that).
MANUAL_LINK = ("window.visioLinkQuality.feed("
               "{t: 0, kbps: 1500, rttMs: 40, loss: 0, packets: 0})")


def log_in(page: Any, url: str, email: str) -> None:
    """Through the login form, as a person would."""
    page.goto(f"{url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "visio-demo-2026")
    page.click("button[type=submit].primary")
    page.wait_for_url(lambda u: "/login" not in u)

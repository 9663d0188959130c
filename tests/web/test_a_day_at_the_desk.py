"""A day at the desk, end to end: Chromium, a real SMTP server, a real SMS gateway.

One visio server of this module runs its dispatcher (every 0.2 s) towards an aiosmtpd
sink and the HTTP SMS sink of tests/notify/receivers.py. Its clock is the real one moved
to 08:30 at the site on the next day open in France and in Belgium (Monday to
Thursday), so that usagers may hear from visio at once (quiet hours end at 08:00) and
the day still has slots two hours ahead, whatever hour CI runs at.

The day: the Hondschoote agent books a cross-border usager (Belgian mobile, no e-mail,
consent, a note) and, without consent, another usager; the Belgian pensions cell's
counsellor reads the note and follows the invitation's join link logged out; the usager
opens the link of their SMS on a phone, downloads the calendar file and cancels; the
room closes, the CANCEL reaches the counsellor, Today shows the cancellation as new;
the agent finds the usager by a fragment of their name, moves their other appointment
and corrects their phone: only the new number hears of it. Screenshots of every step in
var/screenshots/day-*.png.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest
import sqlalchemy as sa
from aiohttp import web

from tests.conftest import in_thread
from tests.notify.receivers import SmsSink, SmtpSink
from tests.web.conftest import SCREENSHOTS, BackgroundServer, _free_port, log_in
from tests.web.test_browser import wait_until
from visio import models as m
from visio.app import create_app
from visio.clock import utcnow
from visio.db import open_database
from visio.domain.calendars import HolidayCalendar
from visio.i18n import catalogue
from visio.keys import database_key
from visio.migrate import upgrade
from visio.seed import demo_id, seed_demo
from visio.settings import Settings

PARIS = ZoneInfo("Europe/Paris")
AGENT = "agent.hondschoote@visio.test"
#: The Belgian pensions cell's counsellor (the demo's first staff member of SFP-TF).
STAFF = "staff.sfp-tf@visio.test"
SITE_PHONE = "03 53 48 00 01"  # Hondschoote's +33353480001, as France dials it
USAGER_PHONE = "+32470123456"
NEW_PHONE = "+32471987654"
OTHER_PHONE = "+33611223344"
NOTE = "Carrière mixte : 12 ans chez un employeur belge, pension belge à calculer"
PHONE_SIZE = {"width": 390, "height": 844}


def desk_morning() -> datetime:
    """08:30 at the site on the next Monday to Thursday that is no holiday in France
    (the site) nor in Belgium (the cell): usagers may be written to, slots remain."""
    holidays = HolidayCalendar()
    day = utcnow().astimezone(PARIS).date() + timedelta(days=1)
    while (day.weekday() > 3 or holidays.is_holiday("FR", day)
           or holidays.is_holiday("BE", day)):
        day += timedelta(days=1)
    return datetime.combine(day, time(8, 30), tzinfo=PARIS).astimezone(UTC)


class ClockedServer(BackgroundServer):
    """The background server, on a clock that runs from ``desk_morning()``."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        super().__init__(settings)
        self.clock = clock

    async def _start(self) -> None:
        await seed_demo(self.settings)
        # One counsellor on duty at the pensions cell: the one with an account, who
        # therefore gets the invitation by e-mail.
        db = open_database(self.settings.database_url)
        try:
            async with db.write() as session:
                await session.execute(
                    sa.update(m.StaffMember)
                    .where(m.StaffMember.id == demo_id("staff", "SFP-TF", "2"))
                    .values(active=False))
        finally:
            await db.dispose()
        self.app = create_app(self.settings, clock=self.clock)
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.host, self.settings.port).start()


@dataclass
class Day:
    url: str
    server: ClockedServer
    smtp: SmtpSink
    sms: SmsSink
    today: date

    def now(self) -> datetime:
        return self.server.clock()

    def rows(self, appointment_id: str | None = None) -> list[m.OutboxRow]:
        """The outbox rows (of one appointment), oldest first."""
        async def read() -> list[m.OutboxRow]:
            assert self.server.app is not None
            query = sa.select(m.OutboxRow).order_by(m.OutboxRow.created_at, m.OutboxRow.id)
            if appointment_id is not None:
                query = query.where(m.OutboxRow.appointment_id == appointment_id)
            async with self.server.app[database_key].read() as session:
                return list((await session.scalars(query)).all())
        return list(self.server.run(read()))

    def appointment(self, appointment_id: str) -> m.Appointment:
        async def read() -> m.Appointment:
            assert self.server.app is not None
            async with self.server.app[database_key].read() as session:
                row = await session.get(m.Appointment, appointment_id)
            assert row is not None
            return row
        return self.server.run(read())  # type: ignore[no-any-return]

    def settled(self) -> bool:
        """Every message due by now has been dealt with (sent, skipped, retired)."""
        now = self.now()
        return all(r.status != "pending" or r.due_at.replace(tzinfo=UTC) > now
                   for r in self.rows())

    def sms_to(self, number: str) -> list[dict[str, Any]]:
        return [s for s in list(self.sms.received) if s["to"] == number]

    def sms_of(self, appointment_id: str, kind: str) -> list[dict[str, Any]]:
        """The SMS the sink accepted for rows of that appointment and kind."""
        ids = {r.id for r in self.rows(appointment_id) if r.kind == kind}
        return [s for s in list(self.sms.received) if s["reference"] in ids]

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [msg for msg in list(self.smtp.messages) if str(msg["To"]) == address]


def calendar_of(message: EmailMessage) -> icalendar.Calendar:
    """The invitation an e-mail carries (its text/calendar part)."""
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return icalendar.Calendar.from_ical(part.get_payload(decode=True))
    raise AssertionError("no text/calendar part")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    path = tmp_path_factory.mktemp("day") / "visio.db"
    url = f"sqlite+aiosqlite:///{path}"
    in_thread(lambda: upgrade(url))
    port = _free_port()
    smtp, sms = SmtpSink(), SmsSink()
    settings = Settings(database_url=url, secret_key="day-secret-" + "x" * 32,
                        host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}",
                        search_rate_per_minute=1_000_000, login_max_failures=1000,
                        smtp_host="127.0.0.1", smtp_port=smtp.port, mail_from="rdv@visio.test",
                        sms_adapter="http", sms_http_url=sms.url, sms_http_token=sms.token,
                        dispatch=True, dispatch_interval_seconds=0.2,
                        dispatch_retry_seconds=1, dispatch_retry_max_seconds=4)
    offset = desk_morning() - utcnow()
    lock = threading.Lock()

    def clock() -> datetime:
        with lock:
            return utcnow() + offset

    smtp.start()
    server = ClockedServer(settings, clock)
    server.start()
    server.run(sms.start())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield Day(url=settings.base_url, server=server, smtp=smtp, sms=sms,
                  today=clock().astimezone(PARIS).date())
    finally:
        server.run(sms.stop())
        server.stop()
        smtp.stop()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"day-{name}.png"), full_page=True)


def book(page: Any, day: Day, *, theme: str, country: str, first: str, last: str, phone: str,
         phone_country: str, consent: bool, note: str = "", screenshot: str = "") -> str:
    """Through the booking page, the first free slot of the day; the appointment's id."""
    page.goto(f"{day.url}/agent/book?theme={theme}&country={country}"
              f"&day={day.today.isoformat()}")
    page.wait_for_selector("input[name=slot]")
    page.check("input[name=slot] >> nth=0")
    page.fill("#first_name", first)
    page.fill("#last_name", last)
    page.select_option("#phone_country", phone_country)
    page.fill("#phone", phone)
    wait_until(lambda: page.get_attribute("#phone-check", "data-valid") == "true",
               what="the phone accepted as typed in its country")
    if note:
        page.fill("#note", note)
    if consent:
        page.check("input[name=consent]")
    if screenshot:
        shot(page, screenshot)
    page.click("#book-button")
    page.wait_for_selector("#confirmation")
    return str(page.url.rsplit("/", 1)[1])


def test_a_day_at_the_desk(day: Day, browser: Any) -> None:
    """Booked with consent and without, read by the counsellor, cancelled by the usager's
    link, seen at the desk, found again, moved and corrected: every message where it
    belongs and nowhere else."""
    agent = browser.new_context(locale="fr-FR", viewport={"width": 1366, "height": 900})
    desk = agent.new_page()
    log_in(desk, day.url, AGENT)

    # 1. A cross-border usager: Belgian mobile typed as Belgians write it, no e-mail,
    # consent, a question for the pensions cell.
    first = book(desk, day, theme="retraite", country="BE", first="Marie", last="Lefèvre-Héloïse",
                 phone="0470 12 34 56", phone_country="BE", consent=True, note=NOTE,
                 screenshot="1-booking")
    shot(desk, "1-booked")
    booked = day.appointment(first)
    assert booked.usager_phone == USAGER_PHONE
    assert booked.usager_email is None
    assert booked.staff_id == demo_id("staff", "SFP-TF", "1")
    assert "Confirmation par SMS" in desk.inner_text("#messages")
    assert "Réservé, par l'agent France Services" in desk.inner_text("#history")
    # Their second question, on taxes, with the Belgian finance cell the same day.
    second = book(desk, day, theme="fiscalite", country="BE", first="Marie", last="Lefèvre-Héloïse",
                  phone="0470 12 34 56", phone_country="BE", consent=True)
    # Another usager, who does not want messages.
    silent = book(desk, day, theme="famille", country="FR", first="Paul", last="Durand",
                  phone="06 11 22 33 44", phone_country="FR", consent=False)
    assert desk.locator("#no-consent").is_visible()
    shot(desk, "1-no-consent")

    wait_until(lambda: day.sms_of(first, "confirmation"), what="the confirmation SMS")
    [sms] = day.sms_of(first, "confirmation")
    assert sms["to"] == USAGER_PHONE
    assert SITE_PHONE in sms["text"]
    assert "France Services" in sms["text"]
    wait_until(lambda: day.mails_to(STAFF), what="the counsellor's invitation")
    wait_until(day.settled, what="every message due by now dealt with")
    assert day.sms_to(OTHER_PHONE) == []
    usager_rows = [r for r in day.rows(silent) if r.audience == "usager"]
    assert usager_rows
    assert {(r.status, r.last_error) for r in usager_rows} == {("skipped", "no_consent")}
    # Neither receiver got anything written for them (staff invitations still go).
    theirs = {r.id for r in usager_rows}
    assert not [s for s in day.sms.received if s["reference"] in theirs]
    assert not theirs & set(day.smtp.ids())
    assert all(str(msg["To"]).endswith("@visio.test") for msg in day.smtp.messages)

    # 2. The counsellor reads the note in the agenda, then follows the invitation's link
    # from a browser that is not logged in: the login, then the call.
    counsellor = browser.new_context(locale="fr-FR")
    agenda = counsellor.new_page()
    log_in(agenda, day.url, STAFF)
    agenda.goto(f"{day.url}/staff/agenda?view=day&date={day.today.isoformat()}")
    entry = agenda.locator(f'li[data-appointment="{first}"]')
    assert NOTE in entry.locator(".note").inner_text()
    shot(agenda, "2-agenda")
    counsellor.close()
    [invitation] = [cal for cal in map(calendar_of, day.mails_to(STAFF))
                    if cal["METHOD"] == "REQUEST"]
    [event] = invitation.walk("VEVENT")
    link = str(event["URL"])
    assert link.startswith(day.url)
    assert urlsplit(link).path == f"/call/{first}"
    stranger = browser.new_context(locale="fr-FR")
    joining = stranger.new_page()
    joining.goto(link)
    joining.wait_for_url("**/login**")
    shot(joining, "2-login")
    joining.fill("input[name=email]", STAFF)
    joining.fill("input[name=password]", "visio-demo-2026")
    joining.click("button[type=submit].primary")
    joining.wait_for_url(f"**/call/{first}")
    assert urlsplit(joining.url).path == f"/call/{first}"
    joining.wait_for_selector("#call-state")
    shot(joining, "2-call")
    stranger.close()

    # 3. The usager, on a phone, opens the link of their SMS, keeps the calendar file and
    # cancels after saying yes a second time.
    url = re.search(r"https?://\S+/u/\S+", sms["text"])
    assert url is not None
    phone = browser.new_context(locale="fr-FR", viewport=PHONE_SIZE, is_mobile=True,
                                has_touch=True, accept_downloads=True)
    mine = phone.new_page()
    mine.goto(url.group(0))
    assert SITE_PHONE in mine.inner_text("main")
    assert mine.evaluate("document.documentElement.scrollWidth"
                         " - document.documentElement.clientWidth") <= 0
    shot(mine, "3-link")
    with mine.expect_download() as got:
        mine.click("#calendar-file")
    ics = Path(got.value.path()).read_text(encoding="utf-8")
    assert "METHOD:PUBLISH" in ics
    assert "ATTENDEE" not in ics
    assert "/call/" not in ics.replace("\r\n ", "")
    mine.click("#cancel-start")
    mine.wait_for_selector("#cancel-confirm")
    shot(mine, "3-confirm")
    assert day.appointment(first).status == "booked"  # the question changed nothing
    mine.click("#cancel-confirm")
    mine.wait_for_selector("#cancelled")
    assert SITE_PHONE in mine.inner_text("#rebook")
    assert mine.inner_text("main").count(SITE_PHONE) == 2  # the details, and #rebook
    shot(mine, "3-cancelled")
    phone.close()
    assert day.appointment(first).cancelled_by == "usager"

    # 4. The room is closed, the counsellor gets the CANCEL, the desk sees it as new.
    api = browser.new_context(locale="fr-FR")
    token = api.request.post(f"{day.url}/api/v1/auth/token",
                             data={"email": STAFF, "password": "visio-demo-2026"})
    assert token.status == 200, token.text()
    refused = api.request.post(
        f"{day.url}/api/v1/appointments/{first}/join",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert refused.status == 422, refused.text()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == catalogue("fr").gettext(
        "This appointment was cancelled; there is no call to join.")
    api.close()
    wait_until(lambda: [msg for msg in day.mails_to(STAFF)
                        if calendar_of(msg)["METHOD"] == "CANCEL"], what="the CANCEL")
    wait_until(lambda: day.sms_of(first, "cancelled"), what="the usager's cancel notice")
    desk.goto(f"{day.url}/agent/today")
    row = desk.locator(f'tr[data-appointment="{first}"]')
    assert row.get_attribute("class") == "cancelled"
    assert row.locator("s").first.evaluate(
        "e => getComputedStyle(e).textDecorationLine") == "line-through"
    assert "Annulé par l'usager" in row.inner_text()
    assert row.locator(".new").is_visible()
    # The silent usager's messages say why they were not sent.
    assert "non envoyé : l'usager n'a pas donné son consentement" in desk.inner_text(
        f'[data-notifications="{silent}"]')
    shot(desk, "4-today")

    # 5. Found again by a fragment of the name, typed without accents. A cancelled
    # appointment can no longer be moved (its page offers no change), so the agent moves
    # the usager's other appointment, reached from the cancelled one's page, then corrects
    # the phone there.
    desk.click("nav >> text=Rendez-vous")
    desk.fill("#q", "heloi")
    desk.click("#find-button")
    desk.wait_for_selector(f'tr[data-appointment="{first}"]')
    found = desk.locator("#results tr[data-appointment]")
    assert sorted(found.evaluate_all("rows => rows.map(r => r.dataset.appointment)")) == (
        sorted([first, second]))
    shot(desk, "5-found")
    desk.click(f'tr[data-appointment="{first}"] a')
    desk.wait_for_selector("#others")
    assert desk.locator("#reschedule-link").count() == 0
    desk.click(f'#others a[href="/agent/appointments/{second}"]')
    desk.wait_for_selector("#reschedule-link")
    before = day.appointment(second).start
    desk.click("#reschedule-link")
    desk.wait_for_selector("#move-day")
    desk.fill("#day", day.today.isoformat())
    desk.click("#day-button")
    desk.wait_for_selector("input[name=slot]")
    desk.check("input[name=slot] >> nth=1")
    shot(desk, "5-move")
    desk.click("#move-button")
    desk.wait_for_selector("#done")
    assert day.appointment(second).start != before
    wait_until(lambda: day.sms_of(second, "rescheduled"), what="the notice of the move")
    wait_until(day.settled, what="every message due by now dealt with")
    to_old = len(day.sms_to(USAGER_PHONE))

    desk.fill("#phone", "+32 471 98 76 54")
    desk.click("#correct-button")
    desk.wait_for_selector("#done")
    shot(desk, "5-corrected")
    assert day.appointment(second).usager_phone == NEW_PHONE
    wait_until(lambda: day.sms_to(NEW_PHONE), what="the confirmation to the new number")
    wait_until(day.settled, what="every message due by now dealt with")
    [confirmation] = day.sms_to(NEW_PHONE)
    assert confirmation["reference"] in {r.id for r in day.rows(second)
                                         if r.kind == "confirmation"}
    assert SITE_PHONE in confirmation["text"]
    assert len(day.sms_to(USAGER_PHONE)) == to_old
    agent.close()

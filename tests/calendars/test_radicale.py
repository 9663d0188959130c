"""A real CalDAV server: Radicale started on a free loopback port with a temporary storage;
events put with the caldav client; the collection URL registered makes them busy."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.calendars.test_imported_calendars import NOW, MakeClient, make_world, paris
from tests.support import missing_service
from visio.db import Database

PARIS = ZoneInfo("Europe/Paris")
USER, PASSWORD = "paul", "radicale-pw-42"

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//visio tests//caldav//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261001T080000Z
DTSTART;TZID=Europe/Paris:{start}
DTEND;TZID=Europe/Paris:{end}
SUMMARY:Permanence
{extra}END:VEVENT
END:VCALENDAR
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def radicale(tmp: Path) -> AsyncIterator[str]:
    """Radicale with htpasswd (plain) auth, until the block ends; its base URL."""
    try:
        import radicale as _radicale  # noqa: F401
    except ImportError:
        missing_service("Radicale is not installed (pip install radicale)")
    users = tmp / "users"
    users.write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}",
        "--storage-filesystem-folder", str(tmp / "collections"),
        "--auth-type", "htpasswd", "--auth-htpasswd-filename", str(users),
        "--auth-htpasswd-encryption", "plain", "--logging-level", "warning",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        for _ in range(200):  # up to 20 s for the port to open
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError as err:
                if process.returncode is not None:
                    raise AssertionError("Radicale stopped: " + (
                        (await process.stderr.read()).decode() if process.stderr else "")
                    ) from err
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            break
        else:
            raise AssertionError("Radicale did not open its port")
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        await process.wait()


def put_events(base: str) -> str:
    """Create a calendar and three events with the caldav client; the collection URL."""
    import caldav

    with caldav.DAVClient(url=base, username=USER, password=PASSWORD) as client:
        calendar = client.principal().make_calendar(name="Travail", cal_id="travail")
        calendar.save_event(EVENT.format(uid="one@visio.test", start="20261021T090000",
                                         end="20261021T100000", extra=""))
        calendar.save_event(EVENT.format(uid="weekly@visio.test", start="20261022T140000",
                                         end="20261022T150000",
                                         extra="RRULE:FREQ=WEEKLY;COUNT=2\n"))
        calendar.save_event(EVENT.format(uid="free@visio.test", start="20261023T090000",
                                         end="20261023T120000", extra="TRANSP:TRANSPARENT\n"))
        return str(calendar.url)


async def test_a_radicale_collection_becomes_busy_time(
    db: Database, make_client: MakeClient, tmp_path: Path,
) -> None:
    """Events saved through CalDAV are busy once the collection URL is registered (with the
    account's credentials); without them the server refuses and nothing is stored."""
    world = await make_world(db, await make_client(now=NOW))
    async with radicale(tmp_path) as base:
        collection = await asyncio.to_thread(put_events, base)
        assert collection.startswith(base)
        anonymous = (await world.register(collection))["id"]
        with_account = (await world.register(collection, username=USER,
                                             password=PASSWORD))["id"]
        results = await world.fetch()
    assert results == {anonymous: "http_401", with_account: None}
    assert await world.busy(anonymous) == set()
    assert await world.busy(with_account) == {
        (paris(2026, 10, 21, 9), paris(2026, 10, 21, 10)),
        (paris(2026, 10, 22, 14), paris(2026, 10, 22, 15)),
        (paris(2026, 10, 29, 14), paris(2026, 10, 29, 15)),  # winter time: 13:00 UTC
    }
    assert paris(2026, 10, 29, 14) == datetime(2026, 10, 29, 13, tzinfo=UTC)
    slots = await world.slots("2026-10-21", "2026-10-22")
    assert "2026-10-21T09:00:00+02:00" not in slots
    assert "2026-10-21T10:00:00+02:00" in slots

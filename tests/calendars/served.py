"""Calendar files of real-world shapes, written from RFC 5545 and the vendors' documents,
served over HTTP by a local aiohttp server started by the test (never read from disk).

- Outlook / Exchange publishes with Windows zone names ("Romance Standard Time"), its own
  VTIMEZONE with DTSTART 1601, X-MICROSOFT-CDO-BUSYSTATUS, EXDATE and moved occurrences
  (RECURRENCE-ID), and sometimes a TZID without its VTIMEZONE.
- Google's secret address writes UTC instants (…Z), X-WR-TIMEZONE, cancelled occurrences.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

CRLF = "\r\n"

ROMANCE = """BEGIN:VTIMEZONE
TZID:Romance Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""


def calendar(*parts: str, prodid: str = "-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
             extra: str = "") -> bytes:
    """A VCALENDAR around ``parts``, with CRLF line ends as RFC 5545 says."""
    head = f"BEGIN:VCALENDAR\nPRODID:{prodid}\nVERSION:2.0\nMETHOD:PUBLISH\n{extra}"
    text = head + "\n".join(p.strip("\n") for p in parts) + "\nEND:VCALENDAR\n"
    return text.replace("\n", CRLF).encode()


def outlook_event(uid: str, start: str, end: str, *lines: str, tz: str = "Romance Standard Time",
                  busy: str = "BUSY") -> str:
    body = "\n".join(lines)
    return f"""BEGIN:VEVENT
CLASS:PUBLIC
DTSTAMP:20261001T080000Z
UID:040000008200E00074C5B7101A82E008000000{uid}
DTSTART;TZID={tz}:{start}
DTEND;TZID={tz}:{end}
SUMMARY;LANGUAGE=fr-FR:Réunion
PRIORITY:5
SEQUENCE:0
TRANSP:OPAQUE
X-MICROSOFT-CDO-BUSYSTATUS:{busy}
{body}
END:VEVENT""".replace("\n\nEND:VEVENT", "\nEND:VEVENT")


# Mondays 19 and 26 October and 2 November 2026, 10:00–11:00 in Paris: across the change
# to winter time on Sunday 25 October.
MONDAY_MEETING = calendar(ROMANCE, outlook_event(
    "monday", "20261019T100000", "20261019T110000", "RRULE:FREQ=WEEKLY;COUNT=3;BYDAY=MO"))

OUTLOOK = calendar(
    ROMANCE,
    # Tuesdays 14:00–15:00 until 10 November; 27 October deleted; 3 November moved to
    # Wednesday 4 November 09:00–10:00.
    outlook_event("tuesday", "20261020T140000", "20261020T150000",
                  "RRULE:FREQ=WEEKLY;UNTIL=20261110T130000Z;INTERVAL=1;BYDAY=TU;WKST=MO",
                  "EXDATE;TZID=Romance Standard Time:20261027T140000"),
    outlook_event("tuesday", "20261104T090000", "20261104T100000",
                  "RECURRENCE-ID;TZID=Romance Standard Time:20261103T140000"),
    # A zone named the Windows way with no VTIMEZONE: icalendar's table maps it.
    outlook_event("thursday", "20261022T160000", "20261022T163000",
                  tz="W. Europe Standard Time"),
    # "Free" in Outlook: not busy, though opaque.
    outlook_event("free", "20261022T090000", "20261022T100000", busy="FREE"),
)

GOOGLE = calendar("""BEGIN:VEVENT
DTSTART:20261021T073000Z
DTEND:20261021T083000Z
DTSTAMP:20261010T101010Z
UID:5n1k0d9mbb2dp1t0ls5nkt2mck@google.com
CREATED:20261001T090000Z
LAST-MODIFIED:20261001T090000Z
SEQUENCE:0
STATUS:CONFIRMED
SUMMARY:Point équipe
TRANSP:OPAQUE
END:VEVENT
BEGIN:VEVENT
DTSTART:20261021T120000Z
DTEND:20261021T130000Z
DTSTAMP:20261010T101010Z
UID:3c2annulee@google.com
SEQUENCE:1
STATUS:CANCELLED
SUMMARY:Annulé
TRANSP:OPAQUE
END:VEVENT""", prodid="-//Google Inc//Google Calendar 70.9054//EN",
    extra="CALSCALE:GREGORIAN\nX-WR-CALNAME:paul@example.com\nX-WR-TIMEZONE:Europe/Paris\n")

ALL_DAY = calendar("""BEGIN:VEVENT
DTSTART;VALUE=DATE:20261023
DTEND;VALUE=DATE:20261024
DTSTAMP:20261010T101010Z
UID:allday-1@example.com
SUMMARY:Formation
END:VEVENT""", prodid="-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN")

TRANSPARENT = calendar("""BEGIN:VEVENT
DTSTART:20261021T130000Z
DTEND:20261021T150000Z
DTSTAMP:20261010T101010Z
UID:transparent-1@example.com
SUMMARY:Rappel
TRANSP:TRANSPARENT
END:VEVENT""", prodid="-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN")

BROKEN = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:broken@example.com\r\n"
          b"DTSTART:2026-10-21 at ten\r\nRRULE:FREQ=SOMETIMES;COUNT=many\r\nEND:VEVENT\r\n"
          b"END:VCALENDAR\r\n")

NOT_ICS = b"<!doctype html><title>Sign in</title><p>Please sign in.</p>"


def six_megabytes() -> bytes:
    """A syntactically fine calendar of 6 MB (padding in an X- property's folded lines)."""
    line = b" " + b"x" * 73 + b"\r\n"
    padding = b"X-PADDING:x\r\n" + line * (6 * 1024 * 1024 // len(line))
    return b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + padding + b"END:VCALENDAR\r\n"


@dataclass
class Served:
    """The fixture server: its base URL, what /changing.ics serves, what it was asked."""

    base: str
    changing: bytes = b""
    changing_etag: str = '"v1"'
    changing_status: int = 200
    changing_redirect: str | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # /gated.ics waits on it
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


@asynccontextmanager
async def serve() -> AsyncIterator[Served]:
    """Start the fixture server on a free loopback port."""
    served = Served(base="")
    fixed = {"/monday.ics": MONDAY_MEETING, "/outlook.ics": OUTLOOK, "/google.ics": GOOGLE,
             "/allday.ics": ALL_DAY, "/transparent.ics": TRANSPARENT, "/broken.ics": BROKEN,
             "/login.html": NOT_ICS}
    big = six_megabytes()

    async def handle(request: web.Request) -> web.StreamResponse:
        served.requests.append((request.path, dict(request.headers)))
        if request.path in fixed:
            return web.Response(body=fixed[request.path], content_type="text/calendar")
        if request.path in BOMBS:  # each written once (cached): some take a moment
            return web.Response(body=BOMBS[request.path](), content_type="text/calendar")
        if request.path == "/changing.ics":
            if served.changing_redirect is not None:
                raise web.HTTPFound(served.changing_redirect)
            if served.changing_status != 200:
                return web.Response(status=served.changing_status, text="unavailable")
            if request.headers.get("If-None-Match") == served.changing_etag:
                return web.Response(status=304, headers={"ETag": served.changing_etag})
            return web.Response(body=served.changing, content_type="text/calendar",
                                headers={"ETag": served.changing_etag})
        if request.path == "/big.ics":  # announced
            return web.Response(body=big, content_type="text/calendar")
        if request.path == "/big-chunked.ics":  # not announced: the cap counts bytes
            response = web.StreamResponse(headers={"Content-Type": "text/calendar"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(big), 256 * 1024):
                await response.write(big[start:start + 256 * 1024])
            await response.write_eof()
            return response
        if request.path == "/to-metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if request.path == "/to-outlook":
            raise web.HTTPFound("/outlook.ics")
        if request.path == "/gated.ics":  # OUTLOOK, once the test opens the gate
            await served.gate.wait()
            return web.Response(body=OUTLOOK, content_type="text/calendar")
        if request.path == "/hang":  # answers nothing until the server stops
            await asyncio.Event().wait()
        if request.path == "/error":
            return web.Response(status=500, text="oops")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    # A short shutdown: /hang never ends by itself.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    served.base = f"http://127.0.0.1:{port}"
    try:
        yield served
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- recurrence bombs
# Small files whose expansion would cost minutes of CPU and gigabytes if left to run: each
# must end as an error code on its calendar while the server keeps answering.


def _bomb_event(uid: str, *lines: str, start: str = "20261012T080000Z") -> str:
    body = "\n".join(lines)
    return f"BEGIN:VEVENT\nUID:{uid}@bomb.example\nDTSTAMP:20261001T000000Z\n" \
           f"DTSTART:{start}\nDURATION:PT1S\n{body}\nEND:VEVENT"


@functools.cache
def secondly() -> bytes:
    """About 200 bytes: an occurrence every second, forever."""
    return calendar(_bomb_event("secondly", "RRULE:FREQ=SECONDLY"), prodid="-//x//x//EN")


@functools.cache
def minutely_50() -> bytes:
    """Fifty events, each every minute."""
    return calendar(*(_bomb_event(f"minutely-{n}", "RRULE:FREQ=MINUTELY")
                      for n in range(50)), prodid="-//x//x//EN")


@functools.cache
def daily_20000() -> bytes:
    """Twenty thousand events, each every day."""
    return calendar(*(_bomb_event(f"daily-{n}", "RRULE:FREQ=DAILY") for n in range(20_000)),
                    prodid="-//x//x//EN")


@functools.cache
def long_rdate() -> bytes:
    """One event repeated on 250,000 explicit dates (RDATE lists), within the window."""
    lines = []
    for chunk in range(250):
        days = ",".join(f"202610{13 + n % 18:02d}T{n // 60 % 24:02d}{n % 60:02d}{chunk % 60:02d}Z"
                        for n in range(1000))
        lines.append(f"RDATE:{days}")
    return calendar(_bomb_event("rdate", *lines), prodid="-//x//x//EN")


@functools.cache
def many_zones() -> bytes:
    """Five thousand VTIMEZONEs written as Outlook does (rules from 1601), each used."""
    zones, events = [], []
    for n in range(5000):
        zones.append(ROMANCE.replace("TZID:Romance Standard Time", f"TZID:Zone {n}"))
        events.append(f"BEGIN:VEVENT\nUID:zone-{n}@bomb.example\nDTSTAMP:20261001T000000Z\n"
                      f"DTSTART;TZID=Zone {n}:20261013T090000\nDURATION:PT1H\nEND:VEVENT")
    return calendar(*zones, *events, prodid="-//x//x//EN")


@functools.cache
def never_matching() -> bytes:
    """About 200 bytes: a rule whose filters no instant meets (30 February), searched by
    the minute until the year 9999."""
    return calendar(_bomb_event("never", "RRULE:FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30"),
                    prodid="-//x//x//EN")


@functools.cache
def never_by_setpos() -> bytes:
    """A BYSETPOS combination that selects nothing: the last second of 31 April."""
    return calendar(_bomb_event(
        "setpos", "RRULE:FREQ=SECONDLY;BYMONTH=4;BYMONTHDAY=31;BYSETPOS=-1"),
        prodid="-//x//x//EN")


BOMBS: dict[str, Callable[[], bytes]] = {
    "/bomb/secondly.ics": secondly, "/bomb/minutely-50.ics": minutely_50,
    "/bomb/daily-20000.ics": daily_20000, "/bomb/long-rdate.ics": long_rdate,
    "/bomb/many-zones.ics": many_zones, "/bomb/never.ics": never_matching,
    "/bomb/never-setpos.ics": never_by_setpos}

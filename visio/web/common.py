"""What every page shares: the signed-in caller, sentences, "today" and labels.

Stated once: the join window, "today" in a zone, the theme's label in a language, and
where a login may lead back to.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from visio.access import Principal
from visio.domain.messages import Message
from visio.errors import VisioError
from visio.i18n import catalogue
from visio.keys import clock_key, settings_key
from visio.services import agenda
from visio.web import session
from visio.web.render import render

PARIS = "Europe/Paris"


def safe_next(value: str | None) -> str:
    """Only a path of this site (never //elsewhere) after a login or a language switch.

    The value is checked as it will be sent, whole: browsers drop tabs and line breaks
    from a Location, so "/\t/evil.example" would become "//evil.example". Anything but
    printable ASCII (a path here is percent-encoded), a second slash or a backslash
    anywhere at its start, a scheme or a host: the home page instead.
    """
    if not value or not value.startswith("/") or len(value) > 2048:
        return "/"
    if any(not "!" <= char <= "~" for char in value) or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if value.startswith("//") or parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return "/"
    return value


def login_redirect(request: web.Request) -> web.Response:
    """Send the browser to the login, coming back here afterwards."""
    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")


async def signed_in(request: web.Request) -> Principal:
    """The session's caller, or a redirect to the login."""
    found = await session.principal(request)
    if found is None:
        login_redirect(request)
    assert found is not None
    return found


def text(request: web.Request, message: Message | str) -> str:
    """A sentence of the catalogue in the page's language."""
    return catalogue(session.language(request)).render(message)


def local_today(request: web.Request, zone: str = PARIS) -> date:
    """Today's date in ``zone``."""
    return request.app[clock_key]().astimezone(ZoneInfo(zone)).date()


def parse_day(value: str | None, default: date) -> date:
    """A YYYY-MM-DD query value, or ``default``."""
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def theme_label(lang: str, item: agenda.AgendaItem) -> str:
    """The theme's name in the page's language."""
    return item.theme_nl if lang == "nl" else item.theme_fr


def join_opens(request: web.Request, item: agenda.AgendaItem) -> datetime:
    """When the call of ``item`` may first be joined, on the site's wall clock."""
    settings = request.app[settings_key]
    return (item.start - timedelta(seconds=settings.join_before_seconds)).astimezone(
        ZoneInfo(item.zone))


def joinable(request: web.Request, item: agenda.AgendaItem) -> bool:
    """Whether the call of ``item`` may be joined now (the join tokens' window)."""
    now = request.app[clock_key]()
    settings = request.app[settings_key]
    return (join_opens(request, item) <= now
            < item.end + timedelta(seconds=settings.join_after_seconds))


def join_early(request: web.Request, item: agenda.AgendaItem) -> bool:
    """Whether the call of ``item`` is still to open (a page says from when, in words)."""
    return request.app[clock_key]() < join_opens(request, item)


async def refusal_page(request: web.Request, err: VisioError) -> web.Response:
    """A refusal on a page, as a sentence."""
    return render(request, "error.html", who=await session.principal(request),
                  status=err.status, message=text(request, err.detail))

"""The audit trail's page, for administrators and coordinators: filters, a table, CSV."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from visio.access import Principal
from visio.api.audit import write_csv
from visio.domain.messages import N_, _
from visio.errors import Forbidden
from visio.keys import database_key
from visio.services import audit
from visio.web.common import PARIS, signed_in, text
from visio.web.render import render

PAGE_SIZE = 50

#: What happened, as the page says it (codes of other writers are shown as they are).
ACTIONS = {
    "booked": N_("Appointment booked"),
    "rescheduled": N_("Appointment moved"),
    "cancelled": N_("Appointment cancelled"),
    "corrected": N_("Usager's details corrected"),
    "resent": N_("Message sent again"),
    "done": N_("Appointment held"),
    "no_show": N_("The usager did not come"),
    "availability.replaced": N_("Availability and absences changed"),
    "closure.added": N_("Closed day added"),
    "site.created": N_("Site created"),
    "site.changed": N_("Site changed"),
    "stops.added": N_("Tour stops added"),
    "stop.removed": N_("Tour stop removed"),
    "operator.created": N_("Operator created"),
    "operator.changed": N_("Operator changed"),
    "desk.created": N_("Desk created"),
    "service.created": N_("Service created"),
    "service.changed": N_("Service changed"),
    "territory.set": N_("Desk's territory changed"),
    "feed.created": N_("Agenda feed created"),
    "feed.revoked": N_("Agenda feed revoked"),
    "calendar.imported": N_("Calendar imported"),
    "calendar.removed": N_("Imported calendar removed"),
    "account.created": N_("Account created"),
    "login.succeeded": N_("Logged in"),
    "login.refused": N_("Login refused"),
    "retention.purged": N_("Personal data past its retention erased"),
}

#: Who acted, when no account name says it.
ACTORS = {
    "system": N_("visio itself"),
    "usager": N_("The usager, by their link"),
    "anonymous": N_("Someone naming no account"),
    "closure": N_("A closure"),
}


def _day(value: str | None) -> tuple[date | None, bool]:
    if not value:
        return None, True
    try:
        return date.fromisoformat(value), True
    except ValueError:
        return None, False


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZoneInfo(PARIS))


async def _reader(request: web.Request) -> Principal:
    who = await signed_in(request)
    if not audit.may_read(who):
        raise Forbidden(_("Only an administrator or a coordinator can read the audit trail."))
    return who


def _query(request: web.Request) -> tuple[audit.Query, dict[str, str], dict[str, str]]:
    form = {k: v.strip() for k, v in request.query.items() if isinstance(v, str)}
    errors: dict[str, str] = {}
    start, ok = _day(form.get("from"))
    if not ok:
        errors["from"] = text(request, _("Write the date as day, month and year."))
    end, ok = _day(form.get("to"))
    if not ok:
        errors["to"] = text(request, _("Write the date as day, month and year."))
    elif start and end and end < start:
        errors["to"] = text(request, _("The last day comes before the first one."))
    cursor = form.get("cursor", "")
    return audit.Query(
        start=_midnight(start) if start else None,
        end=_midnight(end + timedelta(days=1)) if end else None,
        actor=form.get("actor") or None, target=form.get("target") or None,
        after=int(cursor) if cursor.isdigit() else 0, limit=PAGE_SIZE), form, errors


async def audit_page(request: web.Request) -> web.Response:
    """The trail in the order it was written, filtered by dates, actor and target."""
    who = await _reader(request)
    query, form, errors = _query(request)
    rows = [] if errors else await audit.entries(db=request.app[database_key],
                                                 principal=who, query=query)
    tz = ZoneInfo(PARIS)
    shown = [(r, r.at.astimezone(tz),
              text(request, ACTIONS[r.action]) if r.action in ACTIONS else r.action,
              r.actor_name or (text(request, ACTORS[r.actor_kind])
                               if r.actor_kind in ACTORS else r.actor_kind or ""))
             for r in rows]
    kept = {k: v for k, v in form.items() if k != "cursor" and v}
    return render(request, "audit.html", who=who, status=400 if errors else 200,
                  rows=shown, form=form, errors=errors, kept=kept,
                  next_query={**kept, "cursor": str(rows[-1].seq)}
                  if len(rows) == PAGE_SIZE else None,
                  first_query=kept if form.get("cursor") else None)


async def audit_csv(request: web.Request) -> web.StreamResponse:
    """The filtered trail as CSV (``sep=;`` for spreadsheets set up in French)."""
    who = await _reader(request)
    query, form, errors = _query(request)
    if errors:
        raise web.HTTPSeeOther("/network/audit")
    return await write_csv(request, principal=who, query=query,
                           sep=";" if form.get("sep") == ";" else ",")

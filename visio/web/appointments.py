"""The agent's desk: find an appointment, read its file, correct, move, cancel, resend.

``/agent/appointments`` finds appointments at the agent's sites by the usager's name or
phone, dates, status and operator. ``/agent/appointments/{id}`` is the appointment's file
(the page a booking lands on): details, messages, history, the same usager's other
appointments, and the forms that change it, each through the API's own service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web

from visio.access import Principal
from visio.api import codec
from visio.contract import bodies as api
from visio.contract.fields import FORBIDDEN
from visio.domain.contact import takes_sms
from visio.domain.kinds import Role, Status
from visio.domain.messages import Message, _
from visio.domain.usager_search import MAX_QUERY
from visio.errors import InvalidInput, VisioError
from visio.keys import (
    clock_key,
    database_key,
    holidays_key,
    limits_key,
    rooms_key,
    search_cache_key,
    settings_key,
)
from visio.notify.compose import load_facts
from visio.services import (
    agenda,
    changes,
    corrections,
    desk,
    directory,
    outcomes,
    slot_search,
)
from visio.services.appointments import AppointmentFilter
from visio.web import session
from visio.web.common import PARIS, local_today, parse_day, signed_in, text
from visio.web.render import render

PAGE_SIZE = 25
STATUSES = ("booked", "cancelled", "done", "no_show")
#: What the file says after a change went through (``?done=``).
DONE = {
    "corrected": _("The usager's details are corrected."),
    "resent": _("The message is being sent again."),
    "rescheduled": _("The appointment is moved."),
    "cancelled": _("The appointment is cancelled."),
    "outcome": _("The outcome is saved."),
}


@dataclass
class FormErrors:
    """A refused form: a sentence per field (in page order), or for the whole form."""

    fields: dict[str, str] = field(default_factory=dict)
    general: str | None = None

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


async def _agent(request: web.Request) -> Principal:
    who = await signed_in(request)
    if who.role is Role.STAFF:
        raise web.HTTPSeeOther("/staff/agenda")
    return who


def _bound(value: str | None) -> tuple[date | None, bool]:
    """A YYYY-MM-DD field as a date; whether it was written well (or left empty)."""
    if not value:
        return None, True
    try:
        return date.fromisoformat(value), True
    except ValueError:
        return None, False


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone))


async def list_page(request: web.Request) -> web.Response:
    """Appointments at the agent's sites, found by usager, dates, status and operator."""
    who = await _agent(request)
    params = {k: v.strip() for k, v in request.query.items() if isinstance(v, str)}
    if not request.query:
        # What is coming, unless the agent looks for someone or some dates.
        params["from"] = local_today(request).isoformat()
    errors = FormErrors()
    q = params.get("q", "")
    if len(q) > MAX_QUERY or FORBIDDEN.search(q):
        errors.fields["q"] = text(request, _(
            "Type at most {count} letters or digits of the name or the phone.",
            count=MAX_QUERY))
    start_day, ok = _bound(params.get("from"))
    if not ok:
        errors.fields["from"] = text(request, _("Write the date as day, month and year."))
    end_day, ok = _bound(params.get("to"))
    if not ok:
        errors.fields["to"] = text(request, _("Write the date as day, month and year."))
    elif start_day and end_day and end_day < start_day:
        errors.fields["to"] = text(request, _("The last day comes before the first one."))
    status = params.get("status", "")
    operator_id = params.get("operator_id", "")
    db = request.app[database_key]
    operators = [o.operator for o in await directory.list_operators(
        db=db, query=api.OperatorQuery())]
    page = desk.DeskPage([], None)
    if not errors:
        try:
            page = await desk.find(
                db=db, principal=who, filters=AppointmentFilter(
                    start_from=_midnight(start_day, PARIS) if start_day else None,
                    start_to=(_midnight(end_day + timedelta(days=1), PARIS)
                              if end_day else None),
                    status=status if status in STATUSES else None,
                    operator_id=operator_id or None, q=q or None),
                cursor=params.get("cursor") or None, limit=PAGE_SIZE)
        except VisioError as err:
            errors.general = text(request, err.detail)
    rows = [(r, r.start.astimezone(ZoneInfo(r.zone))) for r in page.rows]
    kept = {k: v for k, v in params.items() if k != "cursor" and v}
    return render(request, "appointments.html", who=who,
                  status=400 if errors else 200, rows=rows, form=params, errors=errors,
                  operators=operators, statuses=STATUSES,
                  next_query={**kept, "cursor": page.next_cursor} if page.next_cursor
                  else None, first_query=kept if params.get("cursor") else None)


async def _file_context(request: web.Request, who: Principal,
                        appointment_id: str) -> dict[str, Any]:
    db = request.app[database_key]
    now = request.app[clock_key]()
    found = await desk.open_file(db=db, principal=who, appointment_id=appointment_id,
                                 now=now)
    row = found.row
    zone = ZoneInfo(row.zone)
    messages = (await agenda.usager_messages(db=db, principal=who,
                                             appointment_ids=[row.id]))[row.id]
    # The place as the usager reads it: a bus is named with its stop.
    facts = await load_facts(db=db, appointment_id=row.id)
    done = DONE.get(request.query.get("done", ""))
    return {
        "item": row, "row": row, "start": row.start.astimezone(zone),
        "theme": row.theme_nl if session.language(request) == "nl" else row.theme_fr,
        "messages": [(msg, msg.due_at.astimezone(zone)) for msg in messages],
        "phone": row.phone, "email": row.email,
        "sms": takes_sms(row.phone), "consent": row.consent,
        "convocation": True,
        "place": facts.where(session.language(request)) if facts is not None else "",
        "history": [(h, h.at.astimezone(zone)) for h in found.history],
        "others": [(o, o.start.astimezone(ZoneInfo(o.zone))) for o in found.others],
        "changeable": row.status == Status.BOOKED and who.role is not Role.STAFF,
        "outcome_settable": row.status != Status.CANCELLED and who.may_correct_outcome(row)
        and row.start <= now <= row.end + outcomes.CORRECT_WITHIN,
        "done": text(request, done) if done else None,
        "errors": FormErrors(), "form": {}, "cancelling": False,
    }


async def appointment_page(request: web.Request) -> web.Response:
    """The appointment's file; opening it marks a usager's cancellation as seen."""
    who = await _agent(request)
    context = await _file_context(request, who, codec.path_id(request))
    return render(request, "confirmation.html", who=who, **context)


async def _refused(request: web.Request, who: Principal, appointment_id: str,
                   errors: FormErrors, form: dict[str, str], status: int,
                   **extra: Any) -> web.Response:
    context = await _file_context(request, who, appointment_id)
    context.update(errors=errors, form=form, **extra)
    return render(request, "confirmation.html", who=who, status=status, **context)


def _version(form: dict[str, str]) -> int | None:
    value = form.get("version", "")
    return int(value) if value.isdigit() and len(value) < 10 else None


async def _form(request: web.Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await session.checked_form(request)).items()}


def _field_of(err: VisioError) -> str | None:
    name = str(err.extra.get("field", ""))
    return name.removeprefix("usager.") or None


async def correct(request: web.Request) -> web.Response:
    """The correction form: the same checks and service as the API's PATCH."""
    who = await _agent(request)
    appointment_id = codec.path_id(request)
    form = await _form(request)
    note = " ".join(form.get("note", "").split())
    raw: dict[str, Any] = {
        "first_name": form.get("first_name", ""), "last_name": form.get("last_name", ""),
        "phone": form.get("phone", "").strip() or None,
        "email": form.get("email", "").strip() or None,
        "language": form.get("language") or "fr", "consent": form.get("consent") == "yes",
        "note": note or None}
    try:
        try:
            data = msgspec.convert(raw, api.UsagerCorrection)
        except msgspec.ValidationError as err:
            raise codec._invalid(err) from err
        codec.check_values(data)
        await corrections.correct_usager(
            db=request.app[database_key], principal=who, appointment_id=appointment_id,
            data=data, expected_version=_version(form), now=request.app[clock_key]())
    except VisioError as err:
        errors = FormErrors()
        name = _field_of(err)
        if name in raw:
            errors.fields[name] = text(request, _sentence(err, name))
        else:
            errors.general = text(request, err.detail)
        return await _refused(request, who, appointment_id, errors, form, err.status)
    raise web.HTTPSeeOther(f"/agent/appointments/{appointment_id}?done=corrected")


def _sentence(err: VisioError, name: str) -> Message:
    """A field's refusal in words the form's reader knows (not the API's field path)."""
    if name == "phone":
        return _("Write a French or Belgian phone number, such as 06 12 34 56 78 or "
                 "+32 470 12 34 56.")
    if isinstance(err, InvalidInput):
        return {"first_name": _("Write the usager's first name."),
                "last_name": _("Write the usager's last name."),
                "email": _("Write an e-mail address such as name@example.org."),
                "note": _("Write the note in at most 1000 characters."),
                }.get(name, err.detail)
    return err.detail


async def set_outcome(request: web.Request) -> web.Response:
    """Held or usager absent, with a reason: the API's service and checks."""
    who = await _agent(request)
    appointment_id = codec.path_id(request)
    form = await _form(request)
    try:
        await outcomes.correct(
            db=request.app[database_key], principal=who, appointment_id=appointment_id,
            outcome=form.get("outcome", ""), reason=form.get("reason", "")[:500],
            expected_version=_version(form), now=request.app[clock_key]())
    except VisioError as err:
        errors = FormErrors()
        if err.extra.get("field") == "reason":
            errors.fields["reason"] = text(request, err.detail)
        else:
            errors.general = text(request, err.detail)
        return await _refused(request, who, appointment_id, errors, form, err.status)
    raise web.HTTPSeeOther(f"/agent/appointments/{appointment_id}?done=outcome")


async def cancel(request: web.Request) -> web.Response:
    """Cancel with a reason, once the agent confirmed it on a second step."""
    who = await _agent(request)
    appointment_id = codec.path_id(request)
    form = await _form(request)
    reason = " ".join(form.get("reason", "").split())
    if not reason or len(reason) > 500:
        errors = FormErrors(fields={"reason": text(request, _(
            "Write why the appointment is cancelled (at most 500 characters)."))})
        return await _refused(request, who, appointment_id, errors, form, 400)
    if form.get("confirm") != "yes":
        return await _refused(request, who, appointment_id, FormErrors(), form, 200,
                              cancelling=True)
    try:
        await changes.cancel(db=request.app[database_key], principal=who,
                             appointment_id=appointment_id, reason=reason,
                             expected_version=_version(form), now=request.app[clock_key](),
                             rooms=request.app[rooms_key])
    except VisioError as err:
        return await _refused(request, who, appointment_id,
                              FormErrors(general=text(request, err.detail)), form, err.status)
    raise web.HTTPSeeOther(f"/agent/appointments/{appointment_id}?done=cancelled")


async def resend(request: web.Request) -> web.Response:
    """Send the usager's last message again."""
    who = await _agent(request)
    appointment_id = codec.path_id(request)
    form = await _form(request)
    try:
        await corrections.resend(db=request.app[database_key], principal=who,
                                 appointment_id=appointment_id, now=request.app[clock_key](),
                                 daily_cap=request.app[settings_key].notify_daily_cap)
    except VisioError as err:
        return await _refused(request, who, appointment_id,
                              FormErrors(general=text(request, err.detail)), form, err.status)
    raise web.HTTPSeeOther(f"/agent/appointments/{appointment_id}?done=resent")


@dataclass(frozen=True, slots=True)
class MoveChoice:
    """A slot the appointment may move to (its radio value names it whole)."""

    value: str
    start: datetime
    staff: str


async def _move_context(request: web.Request, who: Principal, appointment_id: str,
                        day_text: str | None) -> dict[str, Any]:
    db = request.app[database_key]
    row = await desk.one(db=db, principal=who, appointment_id=appointment_id)
    zone = ZoneInfo(row.zone)
    current = row.start.astimezone(zone)
    day = parse_day(day_text, max(current.date(), local_today(request, row.zone)))
    context: dict[str, Any] = {"row": row, "current": current, "day": day, "slots": [],
                               "refusal": None, "today": local_today(request, row.zone),
                               "errors": FormErrors()}
    window = slot_search.check_window(_midnight(day, row.zone),
                                      _midnight(day + timedelta(days=1), row.zone))
    try:
        async with request.app[limits_key].expensive(who.user_id):
            slots = await slot_search.find_slots(
                db=db, principal=who, query=slot_search.SlotQuery(
                    site_id=row.site_id, theme=row.theme, window=window,
                    operator_id=row.operator_id),
                now=request.app[clock_key](), holidays=request.app[holidays_key],
                cache=request.app[search_cache_key])
    except VisioError as err:
        context["refusal"] = text(request, err.detail)
        return context
    context["slots"] = [MoveChoice(value=f"{s.start.isoformat()}|{s.staff_id}",
                                   start=s.start.astimezone(zone), staff=s.staff_id)
                        for s in slots.slots if s.start != row.start]
    return context


async def move_page(request: web.Request) -> web.Response:
    """The free slots of a chosen day, from the booking page's search."""
    who = await _agent(request)
    appointment_id = codec.path_id(request)
    context = await _move_context(request, who, appointment_id, request.query.get("day"))
    return render(request, "reschedule.html", who=who, **context)


async def move(request: web.Request) -> web.Response:
    """Move to the chosen slot; the old time is freed only if the new one is obtained."""
    who = await _agent(request)
    appointment_id = codec.path_id(request)
    form = await _form(request)
    start_text, _sep, staff_id = form.get("slot", "").partition("|")
    try:
        try:
            start = datetime.fromisoformat(start_text)
            if start.tzinfo is None:
                raise ValueError(start_text)
        except ValueError as err:
            raise InvalidInput(_("Choose one of the free slots."),
                               extra={"field": "slot"}) from err
        await changes.reschedule(
            db=request.app[database_key], principal=who, appointment_id=appointment_id,
            start=start, staff_id=staff_id or None, expected_version=_version(form),
            now=request.app[clock_key](), holidays=request.app[holidays_key],
            rooms=request.app[rooms_key])
    except VisioError as err:
        context = await _move_context(request, who, appointment_id, form.get("day"))
        if err.extra.get("field") == "slot":
            context["errors"] = FormErrors(fields={"slot": text(request, err.detail)})
        else:
            context["errors"] = FormErrors(general=text(request, err.detail))
        return render(request, "reschedule.html", who=who, status=err.status, **context)
    raise web.HTTPSeeOther(f"/agent/appointments/{appointment_id}?done=rescheduled")

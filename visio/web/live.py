"""Small JSON endpoints for the pages' scripts, authenticated by the session cookie.

POSTs carry the page's CSRF token in ``X-CSRF-Token``. Refusals are problem+json like
the API's (the scripts send the page's language as ``Accept-Language``).
"""

from __future__ import annotations

from aiohttp import web

from visio.api import codec, views
from visio.contract import bodies as api
from visio.domain import contact
from visio.domain.messages import _
from visio.errors import NotFound, VisioError
from visio.i18n import catalogue
from visio.keys import call_policy_key, clock_key, database_key
from visio.services import agenda, availability, booking, calls
from visio.web import session

MAX_PRESENCE_IDS = 200


async def join(request: web.Request) -> web.Response:
    """A join grant for the session's seat in the appointment's call."""
    who = await session.required(request)
    await session.check_csrf(request)
    grant = await calls.grant_join(
        db=request.app[database_key], principal=who, appointment_id=codec.path_id(request),
        now=request.app[clock_key](), policy=request.app[call_policy_key],
        refuse_early=True)
    return codec.respond(api.JoinGrant(
        signaling_url=grant.signaling_url, token=grant.token, not_before=grant.not_before,
        expires_at=grant.expires_at, role=grant.role,  # type: ignore[arg-type]
        peer_id=grant.peer_id, ice_servers=views.ice_servers(grant.ice_servers)))


async def test_call(request: web.Request) -> web.Response:
    """A token for the echo peer (camera, microphone and network check)."""
    who = await session.required(request)
    await session.check_csrf(request)
    grant = calls.grant_test_call(principal=who, now=request.app[clock_key](),
                                  policy=request.app[call_policy_key])
    return codec.respond(api.TestCall(echo_url=grant.signaling_url, token=grant.token,
                                      expires_at=grant.expires_at,
                                      ice_servers=views.ice_servers(grant.ice_servers)))


async def presence(request: web.Request) -> web.Response:
    """Which of these appointments have their kiosk in the call now (``ids`` comma-separated)."""
    who = await session.required(request)
    ids = [i for i in request.query.get("ids", "").split(",") if i][:MAX_PRESENCE_IDS]
    present = await agenda.kiosks_present(db=request.app[database_key], principal=who,
                                          appointment_ids=ids)
    return web.json_response({"present": sorted(present)},
                             headers={"Cache-Control": "no-store"})


async def check_phone(request: web.Request) -> web.Response:
    """Whether a phone number is a valid French or Belgian one, and takes SMS, in words.

    ``country`` (FR or BE, FR by default) reads a national number as that country's.
    """
    await session.required(request)
    texts = catalogue(session.language(request))
    number = request.query.get("number", request.query.get("phone", ""))[:40]
    country = request.query.get("country", "FR").upper()[:2]
    if not number.strip():
        return web.json_response({"ok": True, "message": ""})
    try:
        normalised = booking.normalised_phone(number, country=country)
    except VisioError as err:
        return web.json_response({"ok": False, "message": texts.render(err.detail)})
    assert normalised is not None
    kind = contact.phone_type(normalised)
    said = {
        contact.PhoneType.MOBILE: _("Valid number: {number}.", number=normalised),
        contact.PhoneType.FIXED: _("Valid number: {number}. This is a landline: no SMS "
                                   "will be sent to it.", number=normalised),
        contact.PhoneType.OTHER: _("Valid number: {number}. It is not a mobile: no SMS "
                                   "will be sent to it.", number=normalised),
    }[kind]
    return web.json_response({"ok": True, "normalised": normalised, "type": kind.value,
                              "sms": kind is contact.PhoneType.MOBILE,
                              "message": texts.render(said)})


def _own_staff(who: object) -> str:
    staff_id = getattr(who, "staff_id", None)
    if staff_id is None:
        raise NotFound(_("Only operator staff have an availability."))
    return str(staff_id)


async def get_availability(request: web.Request) -> web.Response:
    """The session's staff member's availability, as the API writes it."""
    who = await session.required(request)
    return codec.respond(views.availability(await availability.get_availability(
        db=request.app[database_key], principal=who, staff_id=_own_staff(who))))


async def put_availability(request: web.Request) -> web.Response:
    """Replace it: the API's body and checks."""
    who = await session.required(request)
    await session.check_csrf(request)
    data = await codec.body(request, api.AvailabilityUpdate)
    return codec.respond(views.availability(await availability.replace_availability(
        db=request.app[database_key], principal=who, staff_id=_own_staff(who), data=data,
        now=request.app[clock_key]())))

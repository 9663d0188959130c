"""The call page: preview, test call, the call itself."""

from __future__ import annotations

import secrets
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web

from visio.access import KIOSK
from visio.api import codec
from visio.keys import (
    database_key,
    settings_key,
)
from visio.services import (
    agenda,
)
from visio.web import session
from visio.web.common import (
    join_early,
    join_opens,
    signed_in,
    theme_label,
)
from visio.web.render import render


async def call_page(request: web.Request) -> web.Response:
    """Preview and devices, the test call, then the call itself.

    Opened before the join window, the page says from when the call can be joined and
    connects by itself then; the fallback number is the one this seat should call.
    """
    who = await signed_in(request)
    context = await agenda.call_context(db=request.app[database_key], principal=who,
                                        appointment_id=codec.path_id(request))
    settings = request.app[settings_key]
    item = context.item
    config = {"appointment": item.id, "lang": session.language(request),
              "fallbackAfter": settings.call_fallback_seconds,
              "videoMaxKbps": settings.call_video_max_kbps,
              "linkDebug": settings.call_link_debug,
              "nonce": secrets.token_hex(4)}
    return render(request, "call.html", who=who, item=item,
                  start=item.start.astimezone(ZoneInfo(item.zone)),
                  theme=theme_label(session.language(request), item),
                  kiosk=context.role == KIOSK, fallback_phone=context.fallback_phone,
                  note=context.note, early=join_early(request, item),
                  opens=join_opens(request, item),
                  config=msgspec.json.encode(config).decode())

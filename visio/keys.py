"""Every piece of application state, as a typed ``web.AppKey``."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import jinja2
from aiohttp import web
from argon2 import PasswordHasher

from visio.api.limits import ExpensiveLimits
from visio.calendars.expand import Expander
from visio.db import Database
from visio.domain.calendars import HolidayCalendar
from visio.observability import Metrics
from visio.services.calls import CallPolicy
from visio.services.changes import RoomCloser
from visio.services.proconnect import Provider
from visio.services.search_cache import SearchCache
from visio.settings import Settings

settings_key = web.AppKey("settings", Settings)
database_key = web.AppKey("database", Database)
hasher_key = web.AppKey("hasher", PasswordHasher)
dummy_hash_key = web.AppKey("dummy_hash", str)
holidays_key = web.AppKey("holidays", HolidayCalendar)


class Clock(Protocol):
    """Gives the current instant (``visio.clock.utcnow``, or a fixed one in tests)."""

    def __call__(self) -> datetime: ...


clock_key = web.AppKey("clock", Clock)
call_policy_key = web.AppKey("call_policy", CallPolicy)
signaling_app_key = web.AppKey("signaling_app", web.Application)
#: Closes the calls of changed appointments on every instance (the use cases call it).
rooms_key = web.AppKey("rooms", RoomCloser)
limits_key = web.AppKey("limits", ExpensiveLimits)
search_cache_key = web.AppKey("search_cache", SearchCache)
metrics_key = web.AppKey("metrics", Metrics)
templates_key = web.AppKey("templates", jinja2.Environment)
calendar_expander_key = web.AppKey("calendar_expander", Expander)
#: ProConnect's provider (metadata and keys cached), only when the settings configure it.
proconnect_key = web.AppKey("proconnect", Provider)

"""Reading requests: JSON bodies, fields, query parameters, with errors people understand."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time
from typing import Any, TypeVar

from aiohttp import web

from visio.clock import ensure_aware_utc
from visio.domain.messages import _
from visio.errors import InvalidInput

T = TypeVar("T")
MAX_BODY = 64 * 1024


async def json_object(request: web.Request, *, allowed: Iterable[str]) -> dict[str, Any]:
    """The request body as a JSON object with only the allowed fields."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise InvalidInput(_("The request body is too large."))
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise InvalidInput(_("The request body is too large."))
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInput(_("The request body is not valid JSON.")) from err
    if not isinstance(body, dict):
        raise InvalidInput(_("The request body must be a JSON object."))
    return only(body, allowed, where="the request body")


def only(obj: Mapping[str, Any], allowed: Iterable[str], *, where: str) -> dict[str, Any]:
    """Refuse unknown fields, so typos do not pass silently."""
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise InvalidInput(_("Unknown field(s) in {where}: {value}.", where=where, value=', '.join(unknown)))
    return dict(obj)


def text(obj: Mapping[str, Any], name: str, *, max_length: int = 200,
         required: bool = True) -> str | None:
    """A non-empty string field."""
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidInput(_("{name} is required.", name=name))
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(_("{name} must be a non-empty string.", name=name))
    if len(value) > max_length:
        raise InvalidInput(_("{name} must be at most {max_length} characters.", name=name, max_length=max_length))
    return value.strip()


def required_text(obj: Mapping[str, Any], name: str, *, max_length: int = 200) -> str:
    """A required non-empty string field."""
    value = text(obj, name, max_length=max_length)
    assert value is not None
    return value


def integer(obj: Mapping[str, Any], name: str, *, low: int, high: int,
            default: int | None = None) -> int:
    """An integer field within bounds."""
    value = obj.get(name, default)
    if value is None:
        raise InvalidInput(_("{name} is required.", name=name))
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(_("{name} must be an integer.", name=name))
    if not low <= value <= high:
        raise InvalidInput(_("{name} must be between {low} and {high}.", name=name, low=low, high=high))
    return value


def boolean(obj: Mapping[str, Any], name: str, *, default: bool | None = None) -> bool:
    """A boolean field."""
    value = obj.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(_("{name} must be true or false.", name=name))
    return value


def instant(value: object, name: str) -> datetime:
    """An RFC 3339 date-time with an offset, as aware UTC."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(_("{name} must be an RFC 3339 date-time with an offset.", name=name))
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as err:
        raise InvalidInput(_("{name} is not a valid date-time: {value}.", name=name, value=value)) from err
    if parsed.tzinfo is None:
        raise InvalidInput(
            _("{name} has no offset; write e.g. 2026-03-23T09:00:00+01:00 or …Z.", name=name))
    if not 2000 <= parsed.year <= 2100:
        raise InvalidInput(_("{name} is out of range.", name=name))
    return ensure_aware_utc(parsed)


def day(value: object, name: str) -> date:
    """An ISO date."""
    if not isinstance(value, str):
        raise InvalidInput(_("{name} must be a date like 2026-07-14.", name=name))
    try:
        parsed = date.fromisoformat(value)
    except ValueError as err:
        raise InvalidInput(_("{name} is not a valid date: {value}.", name=name, value=value)) from err
    if not 2000 <= parsed.year <= 2100:
        raise InvalidInput(_("{name} is out of range.", name=name))
    return parsed


def clock(value: object, name: str) -> time:
    """A wall-clock time HH:MM."""
    if not isinstance(value, str):
        raise InvalidInput(_("{name} must be a time like 09:30.", name=name))
    try:
        parsed = time.fromisoformat(value)
    except ValueError as err:
        raise InvalidInput(_("{name} is not a valid time: {value}.", name=name, value=value)) from err
    if parsed.tzinfo is not None:
        raise InvalidInput(_("{name} is a wall-clock time; give no offset.", name=name))
    return parsed


def time_range(obj: object, name: str) -> tuple[time, time]:
    """``{"opens": "09:00", "closes": "12:00"}`` with opens before closes."""
    if not isinstance(obj, dict):
        raise InvalidInput(_("{name} must be an object with opens and closes.", name=name))
    only(obj, ("opens", "closes"), where=name)
    opens = clock(obj.get("opens"), f"{name}.opens")
    closes = clock(obj.get("closes"), f"{name}.closes")
    if opens >= closes:
        raise InvalidInput(_("{name}: opens must be before closes.", name=name))
    return opens, closes


def items(obj: Mapping[str, Any], name: str, parse: Callable[[Any, str], T], *,
          max_items: int = 500, required: bool = True) -> list[T]:
    """A list field, each element parsed."""
    value = obj.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise InvalidInput(_("{name} must be a list.", name=name))
    if len(value) > max_items:
        raise InvalidInput(_("{name} has more than {max_items} items.", name=name, max_items=max_items))
    return [parse(v, f"{name}[{i}]") for i, v in enumerate(value)]


def query_value(request: web.Request, name: str, *, required: bool = False) -> str | None:
    """A query parameter, refusing repeats."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise InvalidInput(_("Give the query parameter {name} once.", name=name))
    if not values or values[0] == "":
        if required:
            raise InvalidInput(_("The query parameter {name} is required.", name=name))
        return None
    if len(values[0]) > 200:
        raise InvalidInput(_("The query parameter {name} is too long.", name=name))
    return values[0]


def path_id(request: web.Request, name: str = "id") -> str:
    """An identifier from the path."""
    value = request.match_info[name]
    if len(value) > 64:
        raise InvalidInput(_("{name} is too long.", name=name))
    return value

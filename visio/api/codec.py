"""The contract at the edge: decode requests into declared types, encode responses.

Decoding failures become 400 problems naming the field and the reason, in the caller's
language; values the document allows but the service cannot take (a date-time outside
2000–2100) become 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar, get_args

import msgspec
from aiohttp import web

from visio.contract.fields import FORBIDDEN, HHMM_PATTERN, ID_PATTERN, TEXT_PATTERN
from visio.domain.messages import Message, _
from visio.errors import InvalidInput, Unprocessable

T = TypeVar("T")
MAX_BODY = 64 * 1024
JSON = "application/json"
FIRST_YEAR, LAST_YEAR = 2000, 2100

_encoder = msgspec.json.Encoder()

_KINDS: dict[str, Message] = {
    "str": _("a text"),
    "int": _("a whole number"),
    "float": _("a number"),
    "bool": _("true or false"),
    "array": _("a list"),
    "object": _("an object"),
    "null": _("null"),
    "datetime": _("a date-time with an offset, like 2026-03-23T09:00:00+01:00"),
    "date": _("a date like 2026-07-14"),
}


def _kind(name: str) -> Message:
    return _KINDS.get(name, _("a value of another type"))


def _shown(pattern: str) -> str:
    """A pattern as msgspec quotes it in its messages (its repr, without the quotes)."""
    return repr(pattern)[1:-1]


def _field(path: str) -> str:
    text = path.removeprefix("$").removeprefix(".")
    return text or "body"


def _explain(error: str) -> tuple[str, Message]:
    """The field and a sentence for one msgspec validation message."""
    reason, _sep, where = error.partition(" - at `")
    field = _field(where.rstrip("`")) if where else "body"
    if m := re.match(r"Object missing required field `([^`]+)`", reason):
        name = m.group(1) if field == "body" else f"{field}.{m.group(1)}"
        return name, _("The field {field} is required.", field=name)
    if m := re.match(r"Object contains unknown field `([^`]+)`", reason):
        name = m.group(1) if field == "body" else f"{field}.{m.group(1)}"
        return name, _("The field {field} is not expected here.", field=name)
    if m := re.match(r"Expected `(\w+)` of length >= (\d+)", reason):
        if m.group(2) == "1":
            return field, _("The field {field} must not be empty.", field=field)
        return field, _("The field {field} needs at least {count} characters or items.",
                        field=field, count=int(m.group(2)))
    if m := re.match(r"Expected `(\w+)` of length <= (\d+)", reason):
        return field, _("The field {field} allows at most {count} characters or items.",
                        field=field, count=int(m.group(2)))
    if m := re.match(r"Expected `(\w+)` >= (-?\d+)", reason):
        return field, _("The field {field} must be at least {low}.", field=field,
                        low=int(m.group(2)))
    if m := re.match(r"Expected `(\w+)` <= (-?\d+)", reason):
        return field, _("The field {field} must be at most {high}.", field=field,
                        high=int(m.group(2)))
    if m := re.match(r"Expected `str` matching regex '(.*)'$", reason):
        pattern = m.group(1)
        if pattern == _shown(TEXT_PATTERN):
            return field, _("The field {field} is blank or holds control or invisible "
                            "characters.", field=field)
        if pattern == _shown(HHMM_PATTERN):
            return field, _("The field {field} must be a time like 09:30.", field=field)
        if pattern == _shown(ID_PATTERN):
            return field, _("The field {field} is not a valid identifier.", field=field)
        return field, _("The field {field} is not written in the expected form.", field=field)
    if reason.startswith("Invalid enum value"):
        return field, _("The field {field} is not one of the accepted values.", field=field)
    if "datetime" in reason or "RFC3339" in reason:
        return field, _("The field {field} must be a date-time with an offset, like "
                        "2026-03-23T09:00:00+01:00.", field=field)
    if "date" in reason:
        return field, _("The field {field} must be a date like 2026-07-14.", field=field)
    if m := re.match(r"Expected `([\w |]+)`, got `(\w+)`", reason):
        expected = m.group(1).split(" | ")[0]
        return field, _("The field {field} must be {kind}.", field=field, kind=_kind(expected))
    return field, _("The field {field} is not valid.", field=field)


def _invalid(err: msgspec.ValidationError) -> InvalidInput:
    field, message = _explain(str(err))
    return InvalidInput(message, extra={"field": field})


def check_values(value: Any, path: str = "") -> None:
    """Refuse what a pattern cannot say in both regex dialects, and out-of-range instants."""
    if isinstance(value, str):
        if FORBIDDEN.search(value):
            name = path or "body"
            raise InvalidInput(_("The field {field} is blank or holds control or invisible "
                                 "characters.", field=name), extra={"field": name})
    elif isinstance(value, datetime | date):
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            name = path or "body"
            raise Unprocessable(_("The field {field} is outside the years {first}–{last}.",
                                  field=name, first=str(FIRST_YEAR), last=str(LAST_YEAR)),
                                extra={"field": name, "reason": "out_of_range"})
    elif isinstance(value, msgspec.Struct):
        for name, label in zip(value.__struct_fields__, value.__struct_encode_fields__,
                               strict=True):
            check_values(getattr(value, name), f"{path}.{label}" if path else label)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_values(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_values(item, f"{path}.{key}" if path else str(key))


async def body(request: web.Request, kind: type[T], *, required: bool = False) -> T:
    """The request body decoded as ``kind``; a 400 naming the field when it does not fit.

    An empty body reads as ``{}`` unless ``required`` (a change says what it changes).
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise InvalidInput(_("The request body is too large."))
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise InvalidInput(_("The request body is too large."))
    if not raw.strip():
        if required:
            raise InvalidInput(_("The request body is required: a JSON object."))
        raw = b"{}"
    try:
        try:
            value = msgspec.json.decode(raw, type=kind)
        except msgspec.ValidationError as err:
            if "got `float`" not in str(err):
                raise
            # JSON Schema counts 2.0 as an integer; msgspec does not: read it again.
            value = msgspec.convert(_integral(msgspec.json.decode(raw)), kind)
    except msgspec.ValidationError as err:
        raise _invalid(err) from err
    except msgspec.DecodeError as err:
        _name_unreadable_field(raw, err)
        raise InvalidInput(_("The request body is not valid JSON.")) from err
    except RecursionError as err:
        raise InvalidInput(_("The request body is nested too deeply.")) from err
    check_values(value)
    return value


def _name_unreadable_field(raw: bytes, err: msgspec.DecodeError) -> None:
    """When msgspec refuses a body for a lone surrogate ("\\ud800"), name its field.

    Python's reader takes such escapes: what it reads shows the field holding one.
    """
    try:
        loose = json.loads(raw)
    except (ValueError, RecursionError):
        return
    try:
        check_values(loose)
    except InvalidInput as named:
        raise named from err


def _integral(value: Any) -> Any:
    """The decoded JSON with floats that are whole numbers as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _wants_int(annotation: Any) -> bool:
    """Whether a declared field type is an integer (possibly optional, annotated)."""
    if annotation is int:
        return True
    return any(_wants_int(arg) for arg in get_args(annotation) if arg is not type(None))


def header(request: web.Request, name: str, *, pattern: str) -> str | None:
    """A request header that must fit its declared pattern when present."""
    value = request.headers.get(name)
    if value is not None and not re.fullmatch(pattern, value):
        raise InvalidInput(_("The header {field} is not written in the expected form.",
                             field=name), extra={"field": name})
    return value


def query(request: web.Request, kind: type[T]) -> T:
    """The query string decoded as ``kind``: no repeats, no empty values."""
    values: dict[str, str] = {}
    for name in request.query:
        found = request.query.getall(name)
        if len(found) > 1:
            raise InvalidInput(_("Give the query parameter {field} once.", field=name),
                               extra={"field": name})
        if found[0] == "":
            raise InvalidInput(_("The query parameter {field} is empty; give a value or "
                                 "leave it out.", field=name), extra={"field": name})
        values[name] = found[0]
    typed: dict[str, Any] = dict(values)
    for info in msgspec.structs.fields(kind):  # type: ignore[arg-type]
        text = values.get(info.encode_name)
        if text is not None and _wants_int(info.type):
            # ASCII digits only: not "+5", "5_0" nor "٣", which int() would take.
            typed[info.encode_name] = int(text) if re.fullmatch(r"-?[0-9]{1,9}", text) \
                else text
    try:
        value = msgspec.convert(typed, kind, strict=True)
    except msgspec.ValidationError as err:
        raise _invalid(err) from err
    check_values(value)
    return value


def path_id(request: web.Request, name: str = "id") -> str:
    """An identifier from the path (the router only matches non-empty segments)."""
    value = request.match_info[name]
    if len(value) > 64 or not re.fullmatch(ID_PATTERN, value) or "\n" in value:
        raise InvalidInput(_("The identifier in the address is not valid."),
                           extra={"field": name})
    return value


def respond(value: Any, *, status: int = 200,
            headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response of a declared type."""
    return web.Response(status=status, body=_encoder.encode(value), content_type=JSON,
                        headers=headers)


def encode(value: Any) -> bytes:
    """The JSON bytes of a declared type (for stored idempotent answers)."""
    return _encoder.encode(value)

"""The field types of the API contract, with the constraints the OpenAPI document shows.

Every text a person types refuses C0/C1 control, bidi-override and zero-width characters
and blank values; the same pattern is declared in the document and enforced on decoding.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from msgspec import Meta

from visio.domain.contact import NAME_MAX
from visio.domain.territory import COMMUNE_PATTERN, DEPARTEMENT_PATTERN

#: Characters no name, reason or address may hold: C0 and C1 controls, zero-width and
#: bidi controls, line separators, the byte-order mark.
FORBIDDEN_CLASS = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
TEXT_PATTERN = rf"^[^{FORBIDDEN_CLASS}]*[^\s{FORBIDDEN_CLASS}][^{FORBIDDEN_CLASS}]*$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# Lone surrogates cannot be stored as UTF-8; JSON can still escape them ("\ud800"). They
# are refused on decoding too, but not written in the patterns: regex engines of other
# languages reject a surrogate range.
FORBIDDEN = re.compile(f"[{FORBIDDEN_CLASS}\ud800-\udfff]")


def _text(max_length: int, description: str) -> Meta:
    return Meta(min_length=1, max_length=max_length, pattern=TEXT_PATTERN,
                description=description)


Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=ID_PATTERN,
                         description="An identifier (UUID for stored rows).")]
Code = Annotated[str, Meta(min_length=1, max_length=40, pattern=CODE_PATTERN,
                           description="A short lower-case code (themes, operators).")]
Name = Annotated[str, _text(200, "A name as people write it.")]
PersonName = Annotated[str, _text(100, "A first or last name.")]
UsagerName = Annotated[str, _text(NAME_MAX, (
    "The usager's first or last name, as messages to them say it; no web or e-mail "
    "address."))]
Commune = Annotated[str, _text(120, "A commune's name.")]
Address = Annotated[str, _text(300, "A postal address or a place.")]
Reason = Annotated[str, _text(500, "A reason, in the writer's words.")]
Note = Annotated[str, _text(1000, "A note for the operator (the usager's question); "
                                  "staff and agents read it, the usager's messages never "
                                  "carry it.")]
SearchText = Annotated[str, _text(100, "Part of the usager's name (any case, accents or "
                                       "not) or their phone number (any format).")]
Email = Annotated[str, Meta(min_length=3, max_length=254,
                            pattern=rf"^[^\s@{FORBIDDEN_CLASS}]+@[^\s@{FORBIDDEN_CLASS}]+$",
                            description=(
                                "An e-mail address: one mailbox, without a display name, "
                                "comment or quotes; stored normalised."))]
Password = Annotated[str, Meta(min_length=1, max_length=1024,
                               pattern=rf"^[^{FORBIDDEN_CLASS}]+$",
                               description="A password.")]
NewPassword = Annotated[str, Meta(min_length=12, max_length=1024,
                                  pattern=rf"^[^{FORBIDDEN_CLASS}]+$",
                                  description="A new password (12 characters or more).")]
Phone = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[0-9+() .-]+$",
                            description=(
                                "A French or Belgian phone number, in E.164 or national "
                                "(read as phone_country's); stored in E.164. SMS go only "
                                "to mobiles."))]
Timezone = Annotated[str, Meta(min_length=1, max_length=64,
                               pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
                               description="An IANA time zone, e.g. Europe/Paris.")]
HourMinute = Annotated[str, Meta(pattern=HHMM_PATTERN, description="A wall-clock time HH:MM.")]
Instant = Annotated[datetime, Meta(tz=True, description=(
    "An RFC 3339 date-time with an offset; answers use the site's offset."))]
Day = Annotated[date, Meta(description="A calendar date, YYYY-MM-DD.")]
Cursor = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$",
                             description="An opaque cursor from next_cursor.")]
Version = Annotated[int, Meta(ge=1, description="Grows with every change.")]
Departement = Annotated[str, Meta(pattern=DEPARTEMENT_PATTERN, description=(
    "A département's INSEE code: 01–95, 2A, 2B, 971–976."))]
CommuneCode = Annotated[str, Meta(pattern=COMMUNE_PATTERN, description=(
    "A commune's INSEE code (5 characters, starting with its département's code)."))]
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_PCHAR = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
#: Whatever fits is an address the fetcher can read (host names, a port, a path, a query):
#: a schema-valid body is never refused as unreadable, and a garbled one is a 400 here.
#: (A name and password, or an IPv6 literal, fit too: the service refuses them, 422.)
CALENDAR_URL_PATTERN = (rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9._~%!$&'()*+,;=:-]*@)?"
                        rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]{{2,45}}\])(?::{_PORT})?"
                        rf"(?:/{_PCHAR}*)*(?:\?(?:{_PCHAR}|[/?])*)?$")
CalendarUrl = Annotated[str, Meta(
    min_length=10, max_length=2000, pattern=CALENDAR_URL_PATTERN,
    description="An http(s) address answering GET with a whole iCalendar file (published "
                "ICS link, Google secret address, CalDAV collection); no user:password@.")]

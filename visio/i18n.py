"""The message catalogue: French by default, Dutch and English, read with Babel.

Catalogues are gettext ``.po`` files in ``visio/locale/<lang>/LC_MESSAGES/visio.po``;
message ids are the English source texts written with ``_()`` (``visio.domain.messages``).
They are read once at start-up (no compile step). A test extracts every ``_()`` and
``N_()`` of the code with Babel and fails when a catalogue misses one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path

from babel.dates import format_date, format_datetime, format_time
from babel.messages.pofile import read_po

from visio.domain.messages import N_, Message, Param, Plain

LANGUAGES = ("fr", "nl", "en")
DEFAULT_LANGUAGE = "fr"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "visio"


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One language's translations."""

    language: str
    translations: Mapping[str, str]

    def gettext(self, msgid: str) -> str:
        """The translation of ``msgid``, or ``msgid`` itself when it has none."""
        return self.translations.get(msgid) or msgid

    def render(self, message: Message | str) -> str:
        """The message as a sentence in this language, its parameters formatted."""
        if isinstance(message, str):
            return self.gettext(message)
        values = {name: self.format_value(value) for name, value in message.params.items()}
        return self.gettext(message.msgid).format_map(values)

    def format_value(self, value: Param) -> str:
        """One parameter: dates and times in this language's style."""
        locale = self.language
        if isinstance(value, Message):
            return self.render(value)
        if isinstance(value, Plain):
            return value.text
        if isinstance(value, datetime):
            day = format_date(value, format="full", locale=locale)
            clock = format_time(value, format="HH:mm", locale=locale)
            return self.gettext(N_("{day} at {time}")).format(day=day, time=clock)
        if isinstance(value, date):
            return format_date(value, format="long", locale=locale)
        if isinstance(value, time):
            return format_time(value, format="HH:mm", locale=locale)
        return str(value)

    def day(self, value: date) -> str:
        """A date in long form (« 14 juillet 2026 »)."""
        return format_date(value, format="long", locale=self.language)

    def moment(self, value: datetime) -> str:
        """An aware datetime in its own zone, date and hour, for headings and lists."""
        return format_datetime(value, format="medium", tzinfo=value.tzinfo,
                               locale=self.language)


def _read(language: str) -> Catalogue:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    translations: dict[str, str] = {}
    for entry in catalog:
        if entry.id and isinstance(entry.id, str) and isinstance(entry.string, str) \
                and entry.string and not entry.fuzzy:
            translations[entry.id] = entry.string
    return Catalogue(language=language, translations=translations)


@cache
def catalogue(language: str) -> Catalogue:
    """The catalogue of ``language`` (one of LANGUAGES), read once."""
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    return _read(language)


def negotiate(accept_language: str | None, *, default: str = DEFAULT_LANGUAGE) -> str:
    """The best of LANGUAGES for an ``Accept-Language`` header (RFC 9110), else ``default``."""
    if not accept_language:
        return default
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip()))
    for _, _, tag in sorted(ranked):
        if tag == "*":
            return default
        language = tag.split("-")[0].lower()
        if language in LANGUAGES:
            return language
    return default


def available(languages: Iterable[str]) -> list[str]:
    """The given languages that have a catalogue, in order."""
    return [language for language in languages if language in LANGUAGES]

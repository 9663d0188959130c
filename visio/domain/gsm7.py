"""SMS text in the GSM 03.38 alphabet: transliteration and honest segment counts.

A message that stays in GSM-7 fits 160 characters in one segment (153 per segment when
concatenated); the extension table (``{}[]~\\^|€`` and form feed) costs two each. One
character outside GSM-7 would switch the whole SMS to UCS-2 (70 characters, 67 per
segment), so visio transliterates first: ``ê`` becomes ``e`` while ``é`` stays.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENDED = frozenset("\f^{}\\[~]|€")
SINGLE, MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

# Characters outside GSM-7 with a better reading than their stripped accents.
_REPLACEMENTS = {
    "\u2019": "'", "\u2018": "'", "“": '"', "”": '"', "«": '"', "»": '"', "–": "-", "—": "-",
    "…": "...", "\u00a0": " ", "\u202f": " ", "œ": "oe", "Œ": "OE", "ç": "c", "·": ".",
    "À": "A", "È": "E", "Ê": "E", "Ë": "E", "Î": "I", "Ï": "I", "Ô": "O", "Û": "U",
}


def is_gsm7(char: str) -> bool:
    """Whether ``char`` is in the GSM-7 basic or extension table."""
    return char in BASIC or char in EXTENDED


def transliterate(text: str) -> str:
    """``text`` in GSM-7 only: known replacements, then accents stripped, then ``?``."""
    out: list[str] = []
    for char in text:
        if is_gsm7(char):
            out.append(char)
            continue
        if char in _REPLACEMENTS:
            out.append(_REPLACEMENTS[char])
            continue
        stripped = "".join(c for c in unicodedata.normalize("NFKD", char)
                           if not unicodedata.combining(c))
        out.append(stripped if stripped and all(is_gsm7(c) for c in stripped) else "?")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Segments:
    """How an SMS travels: its encoding, its length in septets or characters, its parts."""

    encoding: str  # "gsm7" or "ucs2"
    units: int
    count: int


def segments(text: str) -> Segments:
    """Count the segments ``text`` takes, as a network would."""
    if all(is_gsm7(c) for c in text):
        units = sum(2 if c in EXTENDED else 1 for c in text)
        count = 1 if units <= SINGLE else -(-units // MULTI)
        return Segments("gsm7", units, count)
    # UCS-2 counts UTF-16 code units (an emoji takes two).
    units = len(text.encode("utf-16-le")) // 2
    count = 1 if units <= UCS2_SINGLE else -(-units // UCS2_MULTI)
    return Segments("ucs2", units, count)


def fit(head: str, optional: list[str], tail: str, *, limit: int = SINGLE) -> str:
    """``head``, as many ``optional`` parts as fit in ``limit``, then ``tail``; in GSM-7.

    Head and tail (what, when, the link) are always kept; optional parts are dropped from
    the end until the text fits one segment, so what goes is the least needed. When even
    head and tail do not fit, the text takes more segments (counted by ``segments``).
    """
    kept = [transliterate(head)]
    end = transliterate(tail)
    for part in optional:
        candidate = " ".join([*kept, transliterate(part), end])
        if segments(candidate).units <= limit:
            kept.append(transliterate(part))
    return " ".join([*kept, end])

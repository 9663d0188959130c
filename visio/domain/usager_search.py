"""Finding an usager as an agent types them: names without case or accents, phones in any
format.

One normalised text per appointment (``appointments.usager_search``) holds the first and
last names folded to lower-case ASCII words, the phone's E.164 digits and its national
digits ("Hélène Dupont", +33 6 12 34 56 78 → ``helene dupont 33612345678 0612345678``).
A query becomes terms that must all be found in it, so a partial name, a phone typed
with spaces, a leading 0 or +33 all meet the same text. Pure: no database here.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

#: What may separate the digits of a phone number as people type it.
_PHONE_LIKE = re.compile(r"^\+?[0-9][0-9 ().-]*$")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
#: Queries and stored texts are bounded (the column is 400 characters).
MAX_QUERY = 100
MIN_PHONE_DIGITS = 4


def fold(text: str) -> str:
    """Lower-case ASCII words: accents stripped, ligatures opened, punctuation a space."""
    decomposed = unicodedata.normalize("NFKD", text.replace("ß", "ss").replace("æ", "ae")
                                       .replace("Æ", "ae").replace("œ", "oe")
                                       .replace("Œ", "oe").replace("ø", "o").replace("Ø", "o"))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NOT_WORD.split(ascii_only.lower())).strip()


def phone_digits(phone: str | None) -> list[str]:
    """The digits an E.164 number is searched by: international, then national."""
    if not phone:
        return []
    try:
        number = phonenumbers.parse(phone, "FR")
    except phonenumbers.NumberParseException:
        return ["".join(c for c in phone if c.isdigit())]
    international = f"{number.country_code}{number.national_number}"
    national = "".join(c for c in phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.NATIONAL) if c.isdigit())
    return [international] if national == international else [international, national]


def search_text(first_name: str, last_name: str, phone: str | None) -> str:
    """The normalised text an appointment is found by."""
    return " ".join(part for part in (fold(first_name), fold(last_name),
                                      *phone_digits(phone)) if part)[:400]


def query_terms(query: str) -> list[str]:
    """What must all be found in the text: a phone's digits, or the query's words.

    A number with its country code (+33…, 0032…) becomes its E.164 digits; one typed
    nationally (06 12…, 0470…) its digits, found in the national form whichever country
    it is from.
    """
    query = query.strip()[:MAX_QUERY]
    if _PHONE_LIKE.match(query):
        digits = "".join(c for c in query if c.isdigit())
        if len(digits) >= MIN_PHONE_DIGITS:
            if query.startswith("00"):
                return [digits[2:]]
            return [digits]
    return [word for word in fold(query).split(" ") if word]

"""The catalogue: every sentence of the code translated in fr, nl and en; negotiation; dates.

The messages are extracted from the source with Babel, exactly as ``make messages`` does
(``babel.cfg``, keywords ``_`` and ``N_`` only), so a sentence added without its
translations fails here rather than reaching a reader in English.
"""

from __future__ import annotations

import ast
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from string import Formatter
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from visio.domain.messages import Plain, _
from visio.i18n import DEFAULT_LANGUAGE, LANGUAGES, LOCALE_DIR, catalogue, negotiate

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "visio"
KEYWORDS = {"_": None, "N_": None}  # None: the message id is the first argument.


@cache
def extracted() -> dict[str, list[str]]:
    """Every message id of the source and where it is used, as ``make messages`` sees them."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        SOURCE, method_map, options_map, keywords=KEYWORDS
    ):
        assert isinstance(message, str), f"visio/{filename}:{lineno}: plural or odd call"
        found.setdefault(message, []).append(f"visio/{filename}:{lineno}")
    return found


@cache
def po(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "visio.po").open("rb") as handle:
        return read_po(handle, locale=language)


def fields(text: str) -> set[str]:
    """The ``{placeholders}`` of a format string."""
    return {name for _text, name, _spec, _conv in Formatter().parse(text) if name is not None}


def literal_calls() -> set[str]:
    """The literal first arguments of ``_()`` and ``N_()`` calls, read with ``ast``."""
    ids: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in KEYWORDS and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                ids.add(node.args[0].value)
    return ids


# ---------------------------------------------------------------- completeness


def test_babel_extracts_every_literal_message_of_the_source() -> None:
    # Keyword parameters (_("x {a}", a=1)) and implicit concatenation must not confuse
    # the extractor: it finds exactly what the Python parser finds.
    assert len(extracted()) > 100
    from_python = {m for m, places in extracted().items()
                   if any(p.endswith(".py") or ".py:" in p for p in places)}
    assert from_python == literal_calls()


def test_babel_extracts_the_page_templates() -> None:
    # The Jinja2 templates of visio/web write their texts with _() into the same catalogue.
    in_templates = {m for m, places in extracted().items()
                    if any(".html:" in p for p in places)}
    assert {"Log in", "The usager has arrived", "Audio only"} <= in_templates


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_translates_every_message(language: str) -> None:
    catalog = po(language)
    problems = []
    for msgid, where in sorted(extracted().items()):
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(f"absent: {msgid!r} ({where[0]})")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {msgid!r} ({where[0]})")
        elif not isinstance(entry.string, str) or not entry.string.strip():
            problems.append(f"untranslated: {msgid!r} ({where[0]})")
    assert not problems, (
        f"{len(problems)} message(s) missing in {language} — run `make messages` and "
        "translate them:\n" + "\n".join(problems))


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_the_placeholders_of_their_message(language: str) -> None:
    wrong = []
    for entry in po(language):
        if not entry.id or not isinstance(entry.string, str) or not entry.string:
            continue
        assert isinstance(entry.id, str)
        try:
            expected, got = fields(entry.id), fields(entry.string)
        except ValueError as err:  # an unbalanced brace
            wrong.append(f"{entry.id!r}: {err}")
            continue
        if expected != got:
            wrong.append(f"{entry.id!r}: {sorted(expected)} but {sorted(got)} in "
                         f"{entry.string!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_has_no_fuzzy_entry(language: str) -> None:
    assert [m.id for m in po(language) if m.id and m.fuzzy] == []


def test_english_is_the_source_text() -> None:
    assert [m.id for m in po("en") if m.id and m.string != m.id] == []


def test_the_catalogue_reads_every_message() -> None:
    for language in LANGUAGES:
        assert set(extracted()) <= set(catalogue(language).translations)


# ---------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("nl-BE,nl;q=0.9", "nl"),
        ("nl", "nl"),
        ("en", "en"),
        ("EN-GB", "en"),
        ("fr-BE", "fr"),
        ("de", "fr"),
        ("de, en;q=0.1", "en"),
        ("en;q=0.5, nl;q=0.8", "nl"),
        ("en;q=0.8, nl;q=0.8", "en"),
        ("nl;q=0, en;q=0.1", "en"),
        ("nl;q=0", "fr"),
        ("nl;q=oops, en;q=0.2", "en"),
        ("*", "fr"),
        ("de, *;q=0.5, nl;q=0.1", "fr"),
        ("", "fr"),
        (None, "fr"),
        (",,;;==", "fr"),
        ("\x00garbage\xff; q=", "fr"),
        ("x" * 10_000, "fr"),
    ],
)
def test_negotiate_picks_the_best_known_language(header: str | None, language: str) -> None:
    assert negotiate(header) == language


def test_negotiate_falls_back_to_the_given_default() -> None:
    assert DEFAULT_LANGUAGE == "fr"
    assert negotiate("de", default="en") == "en"
    assert negotiate(None, default="nl") == "nl"


# ---------------------------------------------------------------- rendering

JULY_14 = date(2026, 7, 14)
HOLIDAY = _("{day} is a public holiday in France ({holiday}): the site is closed.",
            day=JULY_14, holiday=Plain("Fête nationale"))


def test_the_14_july_refusal_in_each_language() -> None:
    assert catalogue("fr").render(HOLIDAY) == (
        "Le 14 juillet 2026 est un jour férié en France (Fête nationale) : le site est fermé.")
    assert catalogue("nl").render(HOLIDAY) == (
        "14 juli 2026 is een feestdag in Frankrijk (Fête nationale): de site is gesloten.")
    assert catalogue("en").render(HOLIDAY) == (
        "July 14, 2026 is a public holiday in France (Fête nationale): the site is closed.")


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("fr", "Le site est fermé le 14 juillet 2026."),
        ("nl", "De site is gesloten op 14 juli 2026."),
        ("en", "The site is closed on July 14, 2026."),
    ],
)
def test_a_date_is_written_in_the_readers_language(language: str, text: str) -> None:
    assert catalogue(language).render(_("The site is closed on {day}.", day=JULY_14)) == text


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("fr", "Le conseiller est absent le mardi 14 juillet 2026 à 09:00 "
               "(fuseau horaire Europe/Paris)."),
        ("nl", "De adviseur is afwezig op dinsdag 14 juli 2026 om 09:00 "
               "(tijdzone Europe/Paris)."),
        ("en", "The advisor is absent on Tuesday, July 14, 2026 at 09:00 "
               "(Europe/Paris time)."),
    ],
)
def test_a_moment_is_written_in_the_readers_language(language: str, text: str) -> None:
    start = datetime(2026, 7, 14, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    message = _("The advisor is absent on {start} ({zone} time).", start=start,
                zone=Plain("Europe/Paris"))
    assert catalogue(language).render(message) == text


def test_nested_messages_and_times_are_rendered_in_the_same_language() -> None:
    hours = _("{first}, {rest}",
              first=_("{opens}-{closes}", opens=time(9), closes=time(12)),
              rest=_("{opens}-{closes}", opens=time(14), closes=time(17)))
    status = _("This appointment is {status}; it can no longer be changed.",
               status=_("cancelled"))
    assert catalogue("fr").render(hours) == "09:00-12:00, 14:00-17:00"
    assert catalogue("fr").render(status) == (
        "Ce rendez-vous est annulé : il ne peut plus être modifié.")
    assert catalogue("nl").render(status) == (
        "Deze afspraak is geannuleerd: ze kan niet meer worden gewijzigd.")
    assert catalogue("en").render(status) == (
        "This appointment is cancelled; it can no longer be changed.")


def test_a_plain_value_is_never_translated() -> None:
    message = _("There is no site {site_id}.", site_id=Plain("cancelled"))
    assert catalogue("fr").render(message) == "Il n'y a pas de site cancelled."


def test_an_unknown_language_reads_the_default_catalogue() -> None:
    assert catalogue("de").language == DEFAULT_LANGUAGE
    assert catalogue("de").gettext("Not found") == "Introuvable"

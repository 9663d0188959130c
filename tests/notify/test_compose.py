"""What the usager reads: the place (a site, or a bus and its stop), the site's phone, and
SMS that hold in one GSM-7 segment in every language."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from visio.domain import gsm7, places
from visio.domain.messages import Plain
from visio.domain.reminders import Kind
from visio.i18n import LANGUAGES, catalogue
from visio.notify.compose import Facts, sms_text, usager_email, usager_url
from visio.usager_link import LinkKey

PARIS = ZoneInfo("Europe/Paris")
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
#: The Département's own domain: a realistic length for the usager's link.
BASE_URL = "https://rdv.lenord.fr"
#: The longest name of the Nord's fixed sites, and the longest of its operators.
LONG_SITE = "France Services du Cateau-Cambrésis"
LONG_OPERATOR = "CPAM du Nord (Lille-Douai, Roubaix-Tourcoing, Flandres, Hainaut)"
BUS = "France Services itinérante du Cambrésis"


def fixed_facts(**overrides: object) -> Facts:
    facts = Facts(
        appointment_id="6f1c1d8e-4b57-4d0f-9d0e-3c1f6c2a9b10", version=1, status="booked",
        start=MONDAY_9, end=MONDAY_9 + timedelta(minutes=30), zone="Europe/Paris",
        operator=LONG_OPERATOR, theme_fr="Santé, assurance maladie",
        theme_nl="Gezondheid en ziekteverzekering",
        place=Plain(places.site_place(
            LONG_SITE, "26 place du Commandant Richez, 59360 Le Cateau-Cambrésis",
            "Le Cateau-Cambrésis")),
        site_name=LONG_SITE, site_phone=places.phone_display("+33353480002", "FR"),
        first_name="Jeanne", last_initial="M", usager_language="fr",
        usager_phone="+33612345678", usager_email="jeanne@example.fr")
    return dataclasses.replace(facts, **overrides)  # type: ignore[arg-type]


def bus_facts() -> Facts:
    return fixed_facts(
        place=places.bus_place(BUS, "place de la Mairie", "Solesmes"), site_name=BUS,
        stop=places.stop_place("place de la Mairie", "Solesmes"))


def url_of(facts: Facts) -> str:
    return usager_url(facts, key=LinkKey.from_secret("s" * 32), base_url=BASE_URL)


def test_the_place_names_the_commune_once() -> None:
    """An address or a stop that already ends with its commune does not get it twice."""
    assert (places.site_place("France Services de Bruay",
                              "Rue Jean Jaurès, 59860 Bruay-sur-l'Escaut", "Bruay-sur-l'Escaut")
            == "France Services de Bruay, Rue Jean Jaurès, 59860 Bruay-sur-l'Escaut")
    assert (places.site_place("France Services", "1 place de la mairie", "Hondschoote")
            == "France Services, 1 place de la mairie, Hondschoote")
    assert places.stop_place("place de la Mairie", "Solesmes") == "place de la Mairie, Solesmes"
    assert (places.stop_place("Place de la mairie, Solesmes", "Solesmes")
            == "Place de la mairie, Solesmes")


@pytest.mark.parametrize(("language", "text"), [
    ("fr", "France Services itinérante du Cambrésis — arrêt : place de la Mairie, Solesmes"),
    ("nl", "France Services itinérante du Cambrésis — halte: place de la Mairie, Solesmes"),
    ("en", "France Services itinérante du Cambrésis — stop: place de la Mairie, Solesmes"),
])
def test_a_bus_is_named_with_its_stop(language: str, text: str) -> None:
    """The bus and its stop, the commune written once, in each language."""
    already = places.bus_place(BUS, "place de la Mairie, Solesmes", "Solesmes")
    assert catalogue(language).render(already) == text
    assert catalogue(language).format_value(bus_facts().place) == text


@pytest.mark.parametrize(("phone", "country", "shown"), [
    ("+33328680000", "FR", "03 28 68 00 00"),
    ("+3250123456", "BE", "050 12 34 56"),
    ("+3250123456", "FR", "+32 50 12 34 56"),  # another country's number stays dialable
    (None, "FR", None),
])
def test_the_site_phone_is_written_as_its_country_dials_it(
        phone: str | None, country: str, shown: str | None) -> None:
    """National format for the site's country, international for another."""
    assert places.phone_display(phone, country) == shown


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", [Kind.CONFIRMATION, Kind.SHORT_REMINDER])
def test_confirmation_and_short_reminder_fit_one_segment(language: str, kind: str) -> None:
    """With the longest site name, its phone and a real link: one GSM-7 segment, signed."""
    facts = fixed_facts()
    url = url_of(facts)
    assert len(url) >= 70
    text = sms_text(facts, kind, language, url)
    assert gsm7.segments(text) == gsm7.Segments("gsm7", len(text), 1)
    assert text.startswith(gsm7.transliterate(LONG_SITE))
    assert "03 53 48 00 02" in text
    assert "30/11 09:00" in text
    assert text.endswith(url)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_48h_reminder_takes_at_most_two_segments(language: str) -> None:
    """The 48 h reminder says it is a reminder; two segments at most, even for a bus."""
    for facts in (fixed_facts(), bus_facts()):
        text = sms_text(facts, Kind.REMINDER, language, url_of(facts))
        assert gsm7.segments(text).count <= 2
        assert "03 53 48 00 02" in text


def test_the_exact_french_confirmation_sms() -> None:
    """Word for word: the site signs, says when, gives its phone, then the link."""
    facts = fixed_facts()
    url = url_of(facts)
    assert sms_text(facts, Kind.CONFIRMATION, "fr", url) == (
        f"France Services du Cateau-Cambrésis : RDV lun. 30/11 09:00. Tél. 03 53 48 00 02 {url}")
    assert sms_text(facts, Kind.SHORT_REMINDER, "nl", url) == (
        f"France Services du Cateau-Cambrésis: herinnering ma 30/11 09:00. "
        f"Tel. 03 53 48 00 02 {url}")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", [Kind.CONFIRMATION, Kind.REMINDER, Kind.SHORT_REMINDER,
                                  Kind.RESCHEDULED, Kind.CANCELLED])
def test_every_usager_message_gives_the_phone_and_names_the_bus(language: str,
                                                                kind: str) -> None:
    """SMS and e-mail of a bus booking: the bus, the stop (commune once), the phone."""
    facts = bus_facts()
    url = url_of(facts)
    sms = sms_text(facts, kind, language, url)
    assert sms.startswith(gsm7.transliterate(BUS))
    assert "03 53 48 00 02" in sms
    if kind != Kind.CANCELLED:
        assert "place de la Mairie, Solesmes" in sms
        assert sms.count("Solesmes") == 1
    mail = usager_email(facts, kind, language, url)
    assert "03 53 48 00 02" in mail.text
    assert catalogue(language).format_value(facts.place) in mail.text
    assert mail.text.count("Solesmes") == (1 if kind == Kind.CANCELLED else 2)
    desk = catalogue(language).gettext(
        "Please come to the France Services desk a few minutes before the time.")
    assert desk not in mail.text


def test_the_bus_email_says_to_come_to_the_bus_stop() -> None:
    """Word for word in French: come to the bus at its stop, call the desk's number."""
    facts = bus_facts()
    text = usager_email(facts, Kind.CONFIRMATION, "fr", url_of(facts)).text
    assert ("Merci de venir au bus quelques minutes avant l'heure, à l'arrêt : "
            "place de la Mairie, Solesmes.") in text
    assert "Si vous ne pouvez pas venir, appelez l'accueil au 03 53 48 00 02." in text
    assert ("Où : France Services itinérante du Cambrésis — arrêt : "
            "place de la Mairie, Solesmes") in text
    fixed = usager_email(fixed_facts(), Kind.CONFIRMATION, "fr", url_of(facts)).text
    assert ("Merci de venir à l'accueil France Services quelques minutes avant l'heure."
            in fixed)


def test_the_usager_link_is_of_the_length_the_segment_count_assumes() -> None:
    """The token stays short (the SMS budget counts on it)."""
    url = url_of(fixed_facts())
    assert url.startswith(f"{BASE_URL}/u/")
    assert len(url) <= len(BASE_URL) + 3 + 50


def test_a_cancellation_gives_the_phone_to_book_again() -> None:
    """Once cancelled, the phone is given to book another appointment, not « if you cannot
    come »."""
    facts = fixed_facts()
    text = usager_email(facts, Kind.CANCELLED, "fr", url_of(facts)).text
    assert "Pour prendre un autre rendez-vous, appelez l'accueil au 03 53 48 00 02." in text
    assert "Si vous ne pouvez pas venir" not in text
    nl = usager_email(facts, Kind.CANCELLED, "nl", url_of(facts)).text
    assert "Voor een nieuwe afspraak belt u het onthaal op 03 53 48 00 02." in nl

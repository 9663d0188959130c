"""How a site, a bus stop and a site's phone number are written for the people who read them.

A fixed site is its name and address (its commune once). A bus is named with its stop:
« France Services itinérante du Cambrésis — arrêt : place de la Mairie, Solesmes », the
commune written once even when the stop's place already ends with it. A phone number is
written the way the site's country dials it (« 03 28 68 00 00 » for a French site), and
internationally when it belongs to another country.
"""

from __future__ import annotations

import phonenumbers

from visio.domain.messages import Message, Plain, _


def _ends_with(text: str, tail: str) -> bool:
    return bool(tail.strip()) and text.rstrip().casefold().endswith(tail.strip().casefold())


def site_place(name: str, address: str, commune: str) -> str:
    """Name, address and commune, without repeating a commune the address ends with."""
    if _ends_with(address, commune):
        return f"{name}, {address}"
    return f"{name}, {address}, {commune}"


def stop_place(place: str, commune: str) -> str:
    """The stop's place and its commune, the commune written once."""
    place = place.strip().rstrip(",").strip()
    if not place:
        return commune.strip()
    if _ends_with(place, commune):
        return place
    return f"{place}, {commune.strip()}"


def bus_place(bus: str, place: str, commune: str) -> Message:
    """The bus and the stop where the usager comes (the commune once)."""
    return _("{bus} — stop: {stop}", bus=Plain(bus), stop=Plain(stop_place(place, commune)))


def phone_display(phone: str | None, country: str) -> str | None:
    """``phone`` (E.164) as the site's country writes it; None when there is none.

    A number of another country keeps its international form, so it can still be dialled.
    """
    if not phone:
        return None
    try:
        parsed = phonenumbers.parse(phone, country.upper() or None)
    except phonenumbers.NumberParseException:
        return phone
    if phonenumbers.region_code_for_number(parsed) == country.upper():
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))
    return str(phonenumbers.format_number(parsed,
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL))

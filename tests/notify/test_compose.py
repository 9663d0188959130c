"""How messages name the place of an appointment."""

from __future__ import annotations

from visio.notify.compose import _site_place


def test_the_place_names_the_commune_once() -> None:
    """An address that already ends with its commune does not get it twice."""
    assert (_site_place("France Services de Bruay", "Rue Jean Jaurès, 59860 Bruay-sur-l'Escaut",
                        "Bruay-sur-l'Escaut")
            == "France Services de Bruay, Rue Jean Jaurès, 59860 Bruay-sur-l'Escaut")
    assert (_site_place("France Services", "1 place de la mairie", "Hondschoote")
            == "France Services, 1 place de la mairie, Hondschoote")

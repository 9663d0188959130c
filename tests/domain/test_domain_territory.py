"""Territories as pure rules: INSEE codes and which desk covers which place."""

from __future__ import annotations

import re

import pytest

from visio.domain.territory import (
    COMMUNE_PATTERN,
    DEPARTEMENT_PATTERN,
    Place,
    Territory,
    departement_of,
)


@pytest.mark.parametrize(("commune", "departement"),
                         [("59309", "59"), ("02361", "02"), ("2A004", "2A"), ("97105", "971")])
def test_a_communes_departement_comes_from_its_code(commune: str, departement: str) -> None:
    """The département of a commune is its code's first two (overseas: three) characters."""
    assert departement_of(commune) == departement


def test_codes_that_are_no_departement_are_refused() -> None:
    """20 (Corsica before 1976), 96, 00 and 977 are no département; 2A, 2B, 01, 95 are."""
    pattern = re.compile(DEPARTEMENT_PATTERN)
    assert [c for c in ("01", "2A", "2B", "59", "95", "971", "976") if pattern.match(c)] == [
        "01", "2A", "2B", "59", "95", "971", "976"]
    assert not [c for c in ("00", "20", "96", "977", "9", "590") if pattern.match(c)]
    assert not re.match(COMMUNE_PATTERN, "20004")
    with pytest.raises(ValueError, match="INSEE"):
        departement_of("5930")


def test_an_unscoped_desk_covers_everywhere_and_a_scoped_one_its_departements() -> None:
    """No territory covers every place, a place without a département included; a territory
    covers its départements only."""
    assert Territory().covers(Place("29"))
    assert Territory().covers(Place(None))
    nord = Territory.of(["59", "62"])
    assert nord.covers(Place("59"))
    assert nord.covers(Place.of(None, "62767"))
    assert not nord.covers(Place("29"))
    assert not nord.covers(Place(None))


def test_communes_narrow_only_their_own_departement() -> None:
    """Communes listed for the Nord narrow the Nord; the Pas-de-Calais stays whole."""
    territory = Territory.of(["59", "62"], ["59309"])
    assert territory.covers(Place.of("59", "59309"))
    assert not territory.covers(Place.of("59", "59043"))
    assert not territory.covers(Place("59"))  # a Nord site whose commune is unknown
    assert territory.covers(Place.of(None, "62767"))
    assert territory.covers(Place("62"))

"""Territories: INSEE codes of départements and communes, and which desk covers a place.

A desk's territory is a set of départements, each optionally narrowed to some of its
communes. A desk with no département at all is not scoped: it covers every place (the
rule before territories existed, kept for desks an administrator has not scoped yet).
A place without a département (a site not yet coded) is covered only by such desks.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

__all__ = ["COMMUNE_PATTERN", "DEPARTEMENT_PATTERN", "Place", "Territory",
           "departement_of"]

#: Metropolitan départements 01–95 (Corsica as 2A and 2B, never 20) and overseas 971–976.
DEPARTEMENT_PATTERN = r"^(0[1-9]|1[0-9]|2[1-9AB]|[3-8][0-9]|9[0-5]|97[1-6])$"
#: A commune's INSEE code: its département's code, then digits to five characters.
COMMUNE_PATTERN = r"^((0[1-9]|1[0-9]|2[1-9AB]|[3-8][0-9]|9[0-5])[0-9]{3}|97[1-6][0-9]{2})$"

_COMMUNE = re.compile(COMMUNE_PATTERN)


def departement_of(commune_insee: str) -> str:
    """The département of a commune's INSEE code ("59350" → "59", "97105" → "971")."""
    if not _COMMUNE.match(commune_insee):
        raise ValueError(f"{commune_insee!r} is not a commune INSEE code")
    return commune_insee[:3] if commune_insee.startswith("97") else commune_insee[:2]


@dataclass(frozen=True, slots=True)
class Place:
    """Where an usager sits: a fixed site, or the bus's stop that day."""

    departement: str | None
    commune_insee: str | None = None

    @staticmethod
    def of(departement: str | None, commune_insee: str | None) -> Place:
        """A place from a site's or stop's codes; the commune's département wins."""
        if commune_insee is not None:
            return Place(departement_of(commune_insee), commune_insee)
        return Place(departement, None)


@dataclass(frozen=True, slots=True)
class Territory:
    """The départements a desk serves, and per département the communes it narrows to."""

    departements: frozenset[str] = frozenset()
    communes: Mapping[str, frozenset[str]] | None = None

    @staticmethod
    def of(departements: Collection[str], communes: Collection[str] = ()) -> Territory:
        """A territory from codes; each commune narrows its own département."""
        narrowed: dict[str, set[str]] = {}
        for code in communes:
            narrowed.setdefault(departement_of(code), set()).add(code)
        return Territory(frozenset(departements),
                         {d: frozenset(c) for d, c in narrowed.items()})

    @property
    def scoped(self) -> bool:
        """Whether the desk is limited to a territory at all."""
        return bool(self.departements)

    def covers(self, place: Place) -> bool:
        """Whether a desk with this territory may serve an usager at ``place``."""
        if not self.scoped:
            return True
        if place.departement is None or place.departement not in self.departements:
            return False
        narrowed = (self.communes or {}).get(place.departement)
        return narrowed is None or place.commune_insee in narrowed

"""Territories: which desks serve a place, and an administrator setting a desk's territory.

The rule itself is pure (``visio.domain.territory``); this module loads what it needs,
in SQL narrowed to the départements asked about, so a search for one site reads the few
desks of its département (and unscoped ones), never the country's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.contract import bodies as api
from visio.db import Database
from visio.domain.kinds import SiteKind
from visio.domain.messages import _
from visio.domain.territory import Place, Territory, departement_of
from visio.errors import Forbidden, NotFound, Unprocessable
from visio.services import audit


def site_place(site: m.Site) -> Place:
    """Where a fixed site is (an itinerant one is wherever its stop is that day)."""
    return Place.of(site.departement, site.commune_insee)


def stop_place(site: m.Site, commune_insee: str | None) -> Place:
    """Where a bus's stop is: its commune; without a code, the site's own place."""
    if commune_insee is not None:
        return Place.of(None, commune_insee)
    return site_place(site)


async def covering_desks(
    session: AsyncSession, operator_ids: Collection[str], places: Collection[Place],
) -> dict[Place, frozenset[str]]:
    """For each place, the desks of these operators whose territory covers it."""
    departements = sorted({p.departement for p in places if p.departement is not None})
    dd, dc = m.DeskDepartement, m.DeskCommune
    scoped = sa.exists().where(dd.desk_id == m.Desk.id)
    query = sa.select(m.Desk.id).where(m.Desk.operator_id.in_(sorted(operator_ids)))
    if departements:
        query = query.where(sa.or_(~scoped, sa.exists().where(
            dd.desk_id == m.Desk.id, dd.departement.in_(departements))))
    else:
        query = query.where(~scoped)
    desk_ids = list((await session.scalars(query)).all())
    served: dict[str, set[str]] = defaultdict(set)
    narrowed: dict[str, list[str]] = defaultdict(list)
    if desk_ids and departements:
        for desk_id, departement in (await session.execute(sa.select(dd.desk_id, dd.departement)
                                     .where(dd.desk_id.in_(desk_ids),
                                            dd.departement.in_(departements)))).all():
            served[desk_id].add(departement)
        for desk_id, commune in (await session.execute(sa.select(dc.desk_id, dc.commune_insee)
                                 .where(dc.desk_id.in_(desk_ids),
                                        dc.departement.in_(departements)))).all():
            narrowed[desk_id].append(commune)
    territories = {d: Territory.of(served[d], narrowed[d]) for d in desk_ids}
    return {place: frozenset(d for d, t in territories.items() if t.covers(place))
            for place in places}


async def stop_places(session: AsyncSession, site: m.Site,
                      stop_ids: Collection[str]) -> dict[str, Place]:
    """Where each of these stops of an itinerant site is."""
    if not stop_ids:
        return {}
    query = sa.select(m.TourStop.id, m.TourStop.commune_insee).where(
        m.TourStop.site_id == site.id, m.TourStop.id.in_(sorted(stop_ids)))
    return {sid: stop_place(site, commune)
            for sid, commune in (await session.execute(query)).all()}


async def place_of(session: AsyncSession, site: m.Site, stop_id: str | None) -> Place:
    """Where an appointment at this site (and stop) takes place."""
    if site.kind != SiteKind.ITINERANT or stop_id is None:
        return site_place(site)
    commune = await session.scalar(sa.select(m.TourStop.commune_insee)
                                   .where(m.TourStop.id == stop_id))
    return stop_place(site, commune)


# ---------------------------------------------------------------- administration


@dataclass(frozen=True, slots=True)
class DeskTerritory:
    """A desk and the départements and communes it serves."""

    desk_id: str
    departements: Sequence[str]
    communes: Sequence[str]


def check_codes(departement: str | None, commune_insee: str | None) -> str | None:
    """A site's département: the one given, else its commune's; a 422 if they disagree."""
    if commune_insee is None:
        return departement
    own = departement_of(commune_insee)
    if departement is not None and departement != own:
        raise Unprocessable(_("Commune {commune} is not in département {departement}.",
                              commune=commune_insee, departement=departement),
                            extra={"field": "commune_insee"})
    return own


async def set_territory(*, db: Database, principal: Principal, desk_id: str,
                        data: api.TerritoryUpdate) -> DeskTerritory:
    """Replace the territory of a desk (admins)."""
    if not principal.may_administer():
        raise Forbidden(_("Only an administrator can do this."))
    departements = sorted(set(data.departements))
    communes = sorted(set(data.communes))
    for index, commune in enumerate(data.communes):
        if departement_of(commune) not in departements:
            raise Unprocessable(
                _("Commune {commune} is not in any of the départements given.",
                  commune=commune), extra={"field": f"communes[{index}]"})
    async with db.write() as session:
        if await session.get(m.Desk, desk_id) is None:
            raise NotFound(_("There is no desk {desk_id}.", desk_id=desk_id))
        await session.execute(sa.delete(m.DeskCommune).where(m.DeskCommune.desk_id == desk_id))
        await session.execute(sa.delete(m.DeskDepartement)
                              .where(m.DeskDepartement.desk_id == desk_id))
        session.add_all(m.DeskDepartement(desk_id=desk_id, departement=d) for d in departements)
        await session.flush()
        session.add_all(m.DeskCommune(desk_id=desk_id, commune_insee=c,
                                      departement=departement_of(c)) for c in communes)
        audit.record(session, actor=audit.actor_of(principal), action="territory.set",
                     target_kind="desk", target_id=desk_id,
                     fields=("departements", "communes"),
                     detail={"departements": departements, "communes": communes})
    return DeskTerritory(desk_id, departements, communes)

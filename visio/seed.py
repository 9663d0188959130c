"""Demo data of the Département du Nord (``visio seed --demo``), idempotent.

Identifiers are derived from names (UUID5), so running the seed again updates rows in
place instead of duplicating them.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.clock import utcnow
from visio.db import database_for
from visio.domain.calendars import HolidayCalendar
from visio.security import hash_password, password_hasher
from visio.settings import Settings

NAMESPACE = uuid.UUID("6f1c1d8e-4b57-4d0f-9d0e-3c1f6c2a9b10")
DEMO_PASSWORD = "visio-demo-2026"
PARIS = "Europe/Paris"
BRUSSELS = "Europe/Brussels"


def demo_id(*parts: str) -> str:
    """A stable id for a demo row."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


FIXED_SITES = [
    ("Hondschoote", "France Services de Hondschoote", "2 rue de Bergues, 59122 Hondschoote"),
    ("Le Cateau-Cambrésis", "France Services du Cateau-Cambrésis",
     "26 place du Commandant Richez, 59360 Le Cateau-Cambrésis"),
    ("Bruay-sur-l'Escaut", "France Services de Bruay-sur-l'Escaut",
     "Rue Jean Jaurès, 59860 Bruay-sur-l'Escaut"),
]
#: INSEE codes of the fixed sites' communes (all in the Nord, 59).
SITE_INSEE = {"Hondschoote": "59309", "Le Cateau-Cambrésis": "59136",
              "Bruay-sur-l'Escaut": "59112"}
NORD = "59"
#: Sites of the neighbouring départements, so that territories show: (commune, name,
#: address, département).
NEIGHBOUR_SITES = [
    ("Saint-Pol-sur-Ternoise", "France Services de Saint-Pol-sur-Ternoise",
     "Place de l'Hôtel de Ville, 62130 Saint-Pol-sur-Ternoise", "62"),
    ("Marquise", "France Services de Marquise", "Rue Pasteur, 62250 Marquise", "62"),
    ("Guise", "France Services de Guise", "Place d'Armes, 02120 Guise", "02"),
    ("Hirson", "France Services de Hirson", "Rue Charles de Gaulle, 02500 Hirson", "02"),
]
#: The border départements the Belgian cross-border cells serve: Nord, Pas-de-Calais,
#: Aisne, Ardennes, Meuse, Meurthe-et-Moselle.
BORDER = ("59", "62", "02", "08", "55", "54")
HAUTS_DE_FRANCE = ("59", "62", "02", "60", "80")
FIXED_HOURS: Mapping[int, tuple[tuple[time, time], ...]] = {
    d: ((time(9), time(12)), (time(14), time(17))) for d in range(4)} | {
    4: ((time(9), time(13)), (time(14), time(16)))}

TOURS: dict[str, list[str]] = {
    "Avesnois": ["Avesnes-sur-Helpe", "Fourmies", "Trélon", "Sains-du-Nord", "Landrecies",
                 "Maroilles", "Le Quesnoy", "Bavay", "Solre-le-Château", "Anor", "Wignehies",
                 "Glageon", "Liessies", "Felleries", "Berlaimont", "Aulnoye-Aymeries",
                 "Hautmont", "Jeumont", "Ferrière-la-Grande", "Sars-Poteries"],
    "Cambrésis": ["Caudry", "Solesmes", "Walincourt-Selvigny", "Clary", "Bertry", "Busigny",
                  "Avesnes-les-Aubert", "Carnières", "Iwuy", "Marcoing", "Masnières",
                  "Gouzeaucourt", "Villers-Outréaux", "Beauvois-en-Cambrésis", "Quiévy",
                  "Saint-Python", "Viesly", "Honnechy", "Maretz", "Esnes"],
    "Douaisis": ["Arleux", "Aniche", "Somain", "Orchies", "Marchiennes", "Flines-lez-Raches",
                 "Pecquencourt", "Lallaing", "Sin-le-Noble", "Waziers", "Cuincy",
                 "Lambres-lez-Douai", "Guesnain", "Lewarde", "Masny", "Montigny-en-Ostrevent",
                 "Auby", "Roost-Warendin", "Râches", "Anhiers"],
    "Flandres": ["Bailleul", "Steenvoorde", "Cassel", "Wormhout", "Bergues", "Bourbourg",
                 "Merville", "Estaires", "Hazebrouck", "Steenwerck", "Nieppe",
                 "Godewaersvelde", "Boeschepe", "Esquelbecq", "Ledringhem", "Arnèke",
                 "Rexpoëde", "Bambecque", "Herzeele", "Watten"],
    "Valenciennois": ["Condé-sur-l'Escaut", "Vieux-Condé", "Onnaing", "Quarouble", "Crespin",
                      "Saint-Amand-les-Eaux", "Raismes", "Denain", "Trith-Saint-Léger", "Marly",
                      "Aulnoy-lez-Valenciennes", "Saultain", "Sebourg", "Estreux", "Curgies",
                      "Préseau", "Maing", "Thiant", "Haulchin", "Escaudain"],
    "Pays Lillois": ["Seclin", "Templemars", "Wavrin", "Don", "Annœullin", "Provin", "Bauvin",
                     "Phalempin", "Avelin", "Pont-à-Marcq", "Cysoing", "Templeuve-en-Pévèle",
                     "Genech", "Bouvines", "Baisieux", "Comines", "Wervicq-Sud",
                     "Quesnoy-sur-Deûle", "Fournes-en-Weppes", "Herlies"],
}
TOUR_NAMES = {"Avesnois": "de l'Avesnois", "Cambrésis": "du Cambrésis",
              "Douaisis": "du Douaisis", "Flandres": "des Flandres",
              "Valenciennois": "du Valenciennois", "Pays Lillois": "du Pays Lillois"}
#: Where each bus parks in a commune (the commune itself is written beside it).
STOP_PLACE = "place de la Mairie"
#: Every site that sends messages gives a number to call. These are meant to be in the
#: range the ARCEP keeps for fiction in the 03 zone (03 53 48 xx xx), beside the 01 99 00
#: the desks use, so that a demo never rings anyone (to check against the numbering plan).
SITE_PHONES = {
    "Hondschoote": "+33353480001", "Le Cateau-Cambrésis": "+33353480002",
    "Bruay-sur-l'Escaut": "+33353480003", "Saint-Pol-sur-Ternoise": "+33353480004",
    "Marquise": "+33353480005", "Guise": "+33353480006", "Hirson": "+33353480007",
    "Avesnois": "+33353480011", "Cambrésis": "+33353480012", "Douaisis": "+33353480013",
    "Flandres": "+33353480014", "Valenciennois": "+33353480015",
    "Pays Lillois": "+33353480016",
}
# The fifth commune of each tour holds its market the day the bus comes: it ends at 13:00.
MARKET_INDEX = 4


def itinerant_hours(day: date, *, market: bool) -> list[list[str]]:
    """Default itinerant hours of a weekday; a market day ends at 13:00."""
    if day.weekday() == 4:
        return [["09:00", "13:00"]]
    if market:
        return [["09:30", "13:00"]]
    return [["09:30", "12:30"], ["13:30", "16:00"]]


@dataclass(frozen=True, slots=True)
class DemoOperator:
    code: str
    name: str
    country: str
    kind: str
    languages: tuple[str, ...]
    themes: tuple[str, ...]
    desk: str
    buffer_minutes: int = 0
    #: The départements the operator's desk serves.
    departements: tuple[str, ...] = (NORD,)


OPERATORS = [
    DemoOperator("CAF59", "CAF du Nord", "FR", "national", ("fr",), ("famille",),
                 "CAF du Nord – visio"),
    DemoOperator("CPAM59", "CPAM du Nord (Lille-Douai, Roubaix-Tourcoing, Flandres, Hainaut)",
                 "FR", "national", ("fr",), ("sante",), "CPAM du Nord – visio"),
    DemoOperator("CARSAT-HDF", "Carsat Hauts-de-France", "FR", "national", ("fr",),
                 ("retraite",), "Carsat – visio retraite", 10, HAUTS_DE_FRANCE),
    DemoOperator("FT-HDF", "France Travail Hauts-de-France", "FR", "national", ("fr",),
                 ("emploi",), "France Travail – visio", 0, HAUTS_DE_FRANCE),
    DemoOperator("DDFIP59", "DDFiP du Nord", "FR", "national", ("fr",), ("fiscalite",),
                 "DDFiP du Nord – accueil visio"),
    DemoOperator("MSA-NPDC", "MSA Nord-Pas de Calais", "FR", "national", ("fr",),
                 ("retraite", "sante", "famille"), "MSA – visio", 0, ("59", "62")),
    DemoOperator("AGIRC-ARRCO", "Agirc-Arrco", "FR", "national", ("fr",), ("retraite",),
                 "Agirc-Arrco – visio", 0, HAUTS_DE_FRANCE),
    DemoOperator("PREF59", "Préfecture du Nord (ANTS)", "FR", "national", ("fr",),
                 ("papiers", "mobilite"), "Préfecture – titres sécurisés"),
    DemoOperator("CDAD59", "Conseil départemental de l'accès au droit du Nord", "FR",
                 "national", ("fr",), ("droit",), "CDAD – visio"),
    DemoOperator("SFP-TF", "Service fédéral des Pensions – cellule transfrontalière", "BE",
                 "cross_border", ("fr", "nl"), ("retraite",),
                 "SFP – cellule transfrontalière", 10, BORDER),
    DemoOperator("ONEM-TF", "ONEM – cellule frontaliers", "BE", "cross_border", ("fr",),
                 ("emploi",), "ONEM – frontaliers", 0, BORDER),
    DemoOperator("INAMI-TF", "INAMI et mutualités – cellule transfrontalière", "BE",
                 "cross_border", ("fr", "nl"), ("sante",), "INAMI – transfrontalier", 0,
                 BORDER),
    DemoOperator("SPF-FIN-TF", "SPF Finances – cellule frontaliers", "BE", "cross_border",
                 ("fr", "nl"), ("fiscalite",), "SPF Finances – frontaliers", 0, BORDER),
    DemoOperator("FAMIWAL-TF", "FAMIWAL – allocations familiales transfrontalières", "BE",
                 "cross_border", ("fr",), ("famille",), "FAMIWAL – frontaliers", 0, BORDER),
    DemoOperator("VDAB-GA", "VDAB – grensarbeid", "BE", "cross_border", ("nl",),
                 ("emploi", "mobilite"), "VDAB – grensarbeiders", 0, BORDER),
    # The Pas-de-Calais and the Aisne have their own CAF and CPAM.
    DemoOperator("CAF62", "CAF du Pas-de-Calais", "FR", "national", ("fr",), ("famille",),
                 "CAF du Pas-de-Calais – visio", 0, ("62",)),
    DemoOperator("CPAM62", "CPAM de l'Artois", "FR", "national", ("fr",), ("sante",),
                 "CPAM de l'Artois – visio", 0, ("62",)),
    DemoOperator("CAF02", "CAF de l'Aisne", "FR", "national", ("fr",), ("famille",),
                 "CAF de l'Aisne – visio", 0, ("02",)),
    DemoOperator("CPAM02", "CPAM de l'Aisne", "FR", "national", ("fr",), ("sante",),
                 "CPAM de l'Aisne – visio", 0, ("02",)),
]
STAFF_PER_DESK = 2
STAFF_HOURS: Mapping[int, tuple[tuple[time, time], ...]] = {
    d: ((time(9), time(12)), (time(13, 30), time(16, 30))) for d in range(4)} | {
    4: ((time(9), time(12)),)}


def _tour_days(start: date, months: int, holidays: HolidayCalendar) -> list[list[date]]:
    """Working days (Mon–Fri, not French holidays) of each month, for 3 months from ``start``."""
    result: list[list[date]] = []
    year, month = start.year, start.month
    for _ in range(months):
        day = date(year, month, 1)
        days = []
        while day.month == month:
            if (day.weekday() < 5 and not holidays.is_holiday("FR", day)
                    and start <= day <= start + timedelta(days=92)):
                days.append(day)
            day += timedelta(days=1)
        result.append(days)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return result


async def _merge(session: AsyncSession, rows: list[Any]) -> None:
    for row in rows:
        await session.merge(row)


async def _load(session: AsyncSession, today: date) -> dict[str, Any]:
    holidays = HolidayCalendar()
    # Themes are reference data inserted by the first migration.
    sites: list[m.Site] = []
    for commune, name, address in FIXED_SITES:
        site = m.Site(id=demo_id("site", commune), name=name, kind="fixed", commune=commune,
                      address=address, timezone=PARIS, country="FR", booths=2,
                      departement=NORD, commune_insee=SITE_INSEE[commune],
                      phone=SITE_PHONES[commune])
        sites.append(site)
    for commune, name, address, departement in NEIGHBOUR_SITES:
        sites.append(m.Site(id=demo_id("site", commune), name=name, kind="fixed",
                            commune=commune, address=address, timezone=PARIS, country="FR",
                            booths=1, departement=departement, commune_insee=None,
                            phone=SITE_PHONES[commune]))
    await _merge(session, list(sites))
    for site in sites:
        await session.execute(sa.delete(m.SiteHours).where(m.SiteHours.site_id == site.id))
        for weekday, ranges in FIXED_HOURS.items():
            for opens, closes in ranges:
                session.add(m.SiteHours(site_id=site.id, weekday=weekday, opens=opens,
                                        closes=closes))
    stops = 0
    for area, communes in TOURS.items():
        site = m.Site(id=demo_id("site", area), name=f"France Services itinérante "
                      f"{TOUR_NAMES[area]}", kind="itinerant", commune=communes[0],
                      address=f"Bus France Services, {area}", timezone=PARIS, country="FR",
                      booths=1, departement=NORD, phone=SITE_PHONES[area])
        await session.merge(site)
        sites.append(site)
        for month_days in _tour_days(today, 4, holidays):
            for index, day in enumerate(month_days[:len(communes)]):
                commune = communes[index]
                await session.merge(m.TourStop(
                    id=demo_id("stop", area, day.isoformat()), site_id=site.id, day=day,
                    commune=commune, place=STOP_PLACE,
                    hours=itinerant_hours(day, market=index == MARKET_INDEX)))
                stops += 1
    staff_ids: dict[str, list[str]] = {}
    for op in OPERATORS:
        zone = PARIS if op.country == "FR" else BRUSSELS
        operator = m.Operator(id=demo_id("operator", op.code), name=op.name, code=op.code,
                              country=op.country, kind=op.kind, languages=list(op.languages),
                              timezone=zone)
        # A number of the range French regulation keeps for fiction (01 99 00 xx xx).
        desk = m.Desk(id=demo_id("desk", op.code), operator_id=operator.id, name=op.desk,
                      fallback_phone="+33 1 99 00 00 59")
        await _merge(session, [operator, desk])
        await session.execute(sa.delete(m.DeskCommune).where(m.DeskCommune.desk_id == desk.id))
        await session.execute(sa.delete(m.DeskDepartement).where(
            m.DeskDepartement.desk_id == desk.id))
        await session.flush()
        session.add_all(m.DeskDepartement(desk_id=desk.id, departement=d)
                        for d in op.departements)
        for theme in op.themes:
            await session.merge(m.Service(
                id=demo_id("service", op.code, theme), operator_id=operator.id, theme=theme,
                duration_minutes=30, buffer_minutes=op.buffer_minutes,
                languages=list(op.languages), notice_minutes=120, horizon_days=56))
        staff_ids[op.code] = []
        for n in range(1, STAFF_PER_DESK + 1):
            staff = m.StaffMember(id=demo_id("staff", op.code, str(n)), desk_id=desk.id,
                                  display_name=f"Conseiller·ère {n} – {op.name.split(' –')[0]}",
                                  languages=list(op.languages), active=True)
            await session.merge(staff)
            staff_ids[op.code].append(staff.id)
            await session.execute(sa.delete(m.AvailabilityRule).where(
                m.AvailabilityRule.staff_id == staff.id))
            for weekday, ranges in STAFF_HOURS.items():
                for opens, closes in ranges:
                    session.add(m.AvailabilityRule(staff_id=staff.id, weekday=weekday,
                                                   opens=opens, closes=closes,
                                                   valid_from=None, valid_until=None))
    return {"sites": sites, "staff_ids": staff_ids, "stops": stops}


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    keep = "".join(c.lower() if c.isalnum() else "-" for c in ascii_text)
    return "-".join(p for p in keep.split("-") if p)


async def seed_demo(settings: Settings) -> str:
    """Load the demo; returns the text `make run` prints (logins)."""
    db = database_for(settings)
    hasher = password_hasher()
    accounts: list[tuple[str, str, str]] = []
    try:
        async with db.write() as session:
            loaded = await _load(session, utcnow().date())
            wanted: list[tuple[str, str, str, str | None, str | None]] = [
                ("admin@visio.test", "Administration visio", "admin", None, None)]
            for site in loaded["sites"]:
                place = (site.commune if site.kind == "fixed"
                         else site.name.removeprefix("France Services itinérante "))
                wanted.append((f"agent.{_slug(place)}@visio.test", f"Agent – {site.name}",
                               "agent", site.id, None))
            for code in ("CAF59", "CARSAT-HDF", "SFP-TF", "VDAB-GA"):
                wanted.append((f"staff.{_slug(code)}@visio.test", f"Conseiller·ère {code}",
                               "staff", None, loaded["staff_ids"][code][0]))
            for email, name, role, site_id, staff_id in wanted:
                exists = await session.scalar(sa.select(m.User.id).where(m.User.email == email))
                if exists is None:
                    user = m.User(id=demo_id("user", email), email=email, display_name=name,
                                  password_hash=hash_password(hasher, DEMO_PASSWORD), role=role,
                                  staff_id=staff_id, active=True)
                    session.add(user)
                    await session.flush()
                    if site_id is not None:
                        session.add(m.UserSite(user_id=user.id, site_id=site_id))
                accounts.append((email, role, name))
    finally:
        await db.dispose()
    lines = [f"Demo data of the Nord, the Pas-de-Calais and the Aisne loaded "
             f"({len(loaded['sites'])} sites, "
             f"{loaded['stops']} bus stops, {len(OPERATORS)} operators).",
             f"Demo accounts (password for all: {DEMO_PASSWORD}):"]
    lines += [f"  {role:<6} {email:<45} {name}" for email, role, name in accounts]
    return "\n".join(lines)

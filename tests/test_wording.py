"""The catalogue's words as the reader meets them: « de burger » in Dutch, counts that
agree with their number, themes as a Flemish civil servant names them, French without
« vers le mardi »."""

from __future__ import annotations

import html
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from babel.messages.pofile import read_po

from tests.conftest import Client
from tests.factories import make_operator, make_user
from tests.web.test_pages import log_in
from visio import models as m
from visio.db import Database
from visio.domain.messages import _
from visio.i18n import LOCALE_DIR, catalogue


def test_no_dutch_sentence_calls_the_usager_gebruiker() -> None:
    """In Dutch the usager is « de burger »: no translation says « gebruiker »."""
    with (LOCALE_DIR / "nl" / "LC_MESSAGES" / "visio.po").open("rb") as handle:
        entries = [e for e in read_po(handle, locale="nl") if e.id]
    said = [e.string for e in entries if "gebruiker" in str(e.string).casefold()]
    assert said == []
    assert catalogue("nl").gettext("Messages to the usager") == "Berichten aan de burger"
    assert catalogue("nl").gettext("The usager has arrived") == "De burger is aangekomen"


@pytest.mark.parametrize(("msgid", "nl"), [
    ("No appointment.", "Geen afspraken."),
    ("No appointment on this day.", "Geen afspraken op deze dag."),
])
def test_empty_lists_read_naturally_in_dutch(msgid: str, nl: str) -> None:
    """An empty agenda says « Geen afspraken »."""
    assert catalogue("nl").render(_(msgid)) == nl


def test_a_refusal_does_not_say_vers_le_mardi() -> None:
    """The advisor's other appointment overlaps the slot « du mercredi … à 09:00 »."""
    start = datetime(2026, 7, 15, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    text = catalogue("fr").render(
        _("The advisor already has an appointment around {start}.", start=start))
    assert text == ("Le conseiller a déjà un rendez-vous qui chevauche le créneau du "
                    "mercredi 15 juillet 2026 à 09:00.")


@pytest.mark.parametrize(("language", "expected"), [
    ("fr", ["lu, aucune période occupée", "lu, 1 période occupée", "lu, 3 périodes occupées"]),
    ("nl", ["gelezen, geen bezette periodes", "gelezen, 1 bezette periode",
            "gelezen, 3 bezette periodes"]),
    ("en", ["read, no busy period", "read, 1 busy period", "read, 3 busy periods"]),
])
async def test_busy_periods_agree_with_their_number(
        client: Client, db: Database, language: str, expected: list[str]) -> None:
    """The availability page counts 0, 1 and 3 busy periods in good grammar."""
    op = await make_operator(db)
    staff = await make_user(db, role="staff", staff=op.staff[0])
    async with db.write() as session:
        for count in (0, 1, 3):
            session.add(m.ImportedCalendar(
                staff_id=op.staff[0].id, url=f"https://93.184.215.14/{count}.ics",
                status="ok", busy_count=count))
    await log_in(client, staff)
    await client.get(f"/lang?to={language}&next=/", allow_redirects=False)
    page = html.unescape(await (await client.get("/staff/availability")).text())
    shown = [re.sub(r"\s+", " ", s).strip()
             for s in re.findall(r"(?:lu|gelezen|read), [^<]*", page)]
    assert shown == expected


async def test_the_themes_carry_flemish_labels(db: Database) -> None:
    """After the migrations, « Werk en activering » and its siblings."""
    async with db.read() as session:
        rows = (await session.execute(sa.select(m.Theme.code, m.Theme.label_nl))).all()
    labels = {code: label for code, label in rows}
    assert labels["emploi"] == "Werk en activering"
    assert labels["famille"] == "Gezin en kinderbijslag"
    assert labels["sante"] == "Gezondheid en ziekteverzekering"
    assert labels["papiers"] == "Identiteitsdocumenten en rijbewijs"

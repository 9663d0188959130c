"""What the usager can do from their link: cancel their own appointment."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from visio import models as m
from visio.db import Database
from visio.domain.kinds import Status
from visio.services.changes import mark_cancelled


async def cancel_by_usager(*, db: Database, appointment_id: str, now: datetime) -> bool:
    """Cancel from the usager's link (frees the slot, notifies the staff); whether it did.

    Only a booked appointment that has not started can be cancelled this way; anything
    else changes nothing (a second click, an old page).
    """
    async with db.write() as session:
        appointment = await session.scalar(
            sa.select(m.Appointment).where(m.Appointment.id == appointment_id)
            .with_for_update())
        if appointment is None or appointment.status != Status.BOOKED \
                or now >= appointment.start:
            return False
        await mark_cancelled(session, appointment, reason="usager", actor_id=None, now=now)
    return True

"""Granting an account what its role works with (sites, a staff member, départements)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.factories import make_operator, make_site, make_user
from visio import models as m
from visio.db import Database
from visio.errors import NotFound, Unprocessable
from visio.services import accounts


async def test_an_agent_with_no_site_is_given_sites_and_they_replace_the_old(
        db: Database) -> None:
    first, second = await make_site(db), await make_site(db)
    agent = await make_user(db, role="agent")
    granted = await accounts.grant(db=db, user_id=agent.id, site_ids=[first.id])
    assert granted.site_ids == (first.id,)
    again = await accounts.grant(db=db, user_id=agent.id, site_ids=[second.id])
    assert again.site_ids == (second.id,)
    with pytest.raises(Unprocessable):
        await accounts.grant(db=db, user_id=agent.id)
    with pytest.raises(NotFound):
        await accounts.grant(db=db, user_id=agent.id, site_ids=["no-such-site"])
    async with db.read() as session:
        kept = (await session.scalars(sa.select(m.UserSite.site_id).where(
            m.UserSite.user_id == agent.id))).all()
        trail = (await session.scalars(sa.select(m.AuditEntry.action).where(
            m.AuditEntry.target_id == agent.id))).all()
    assert kept == [second.id]  # a refused grant changes nothing
    assert trail.count("account.granted") == 2


async def test_staff_is_linked_to_a_staff_member_and_a_coordinator_given_departements(
        db: Database) -> None:
    bundle = await make_operator(db, staff=1)
    staff = await make_user(db, role="agent")
    async with db.write() as session:
        row = await session.get(m.User, staff.id)
        assert row is not None
        row.role = "staff"  # as ProConnect provisioning leaves one: no staff member
    linked = await accounts.grant(db=db, user_id=staff.id, staff_id=bundle.staff[0].id)
    assert (linked.staff_id, linked.desk_id) == (bundle.staff[0].id, bundle.desk.id)
    coordinator = await make_user(db, role="coordinator")
    granted = await accounts.grant(db=db, user_id=coordinator.id,
                                   departements=["59", "2a", "59"])
    assert granted.departements == ("2A", "59")
    with pytest.raises(Unprocessable):
        await accounts.grant(db=db, user_id=coordinator.id, departements=["Nord"])
    admin = await make_user(db, role="admin")
    with pytest.raises(Unprocessable):
        await accounts.grant(db=db, user_id=admin.id, site_ids=["x"])
    with pytest.raises(NotFound):
        await accounts.grant(db=db, user_id="no-such-account", site_ids=["x"])

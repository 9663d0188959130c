"""Forgotten passwords: a single-use link by e-mail, and an administrator's forced reset.

A request writes, in one transaction, the request itself (counted for throttling), and,
when the address is an active account's and no budget is spent, a reset (only the
token's digest is kept) and the e-mail that carries its link (``account_mail``, sent by
the dispatcher after commit; the link is erased from the row once sent). The caller
gets the same answer, after the same work, whether or not the address is an account's
and whether or not the request was throttled.

Choosing the new password through the link ends every session and API token of the
account, and every other link still pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.db import Database
from visio.domain.messages import _
from visio.errors import NotFound, Unprocessable
from visio.i18n import LANGUAGES
from visio.security import digest, hash_password, new_api_token
from visio.settings import Settings

RESET_KIND = "password_reset"
#: A password hash no password verifies: a forced reset leaves the account without one.
NO_PASSWORD = "!reset"
MIN_LENGTH = 12
RESET_PATH = "/password/new"


@dataclass(frozen=True, slots=True)
class ResetPolicy:
    """How long a link lives, and the request budgets inside the window."""

    ttl: timedelta
    window: timedelta
    per_account: int
    per_address: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ResetPolicy:
        """The policy the ``VISIO_PASSWORD_RESET_*`` settings give."""
        return cls(ttl=timedelta(minutes=settings.password_reset_minutes),
                   window=timedelta(seconds=settings.password_reset_window_seconds),
                   per_account=settings.password_reset_per_account,
                   per_address=settings.password_reset_per_address)


def reset_link(base_url: str, token: str) -> str:
    """The address of the page choosing a new password with ``token``."""
    return f"{base_url}{RESET_PATH}?token={token}"


async def account_language(session: AsyncSession, user: m.User) -> str:
    """The account's language: its own, else its staff member's first, else French."""
    if user.language in LANGUAGES:
        return user.language
    if user.staff_id is not None:
        languages = await session.scalar(
            sa.select(m.StaffMember.languages).where(m.StaffMember.id == user.staff_id))
        for language in languages or []:
            if language in LANGUAGES:
                return str(language)
    return "fr"


async def _issue(session: AsyncSession, *, user: m.User, base_url: str, policy: ResetPolicy,
                 now: datetime, forced_by: str | None) -> None:
    token = new_api_token()
    session.add(m.PasswordReset(user_id=user.id, token_hash=digest(token), created_at=now,
                                expires_at=now + policy.ttl, forced_by=forced_by))
    session.add(m.AccountMail(user_id=user.id, kind=RESET_KIND, recipient=user.email,
                              language=await account_language(session, user),
                              link=reset_link(base_url, token), status="pending",
                              attempts=0, due_at=now, created_at=now))


async def request_reset(*, db: Database, email: str, address: str, base_url: str,
                        policy: ResetPolicy, now: datetime) -> None:
    """Ask for a reset link for ``email``; returns the same (nothing) in every case.

    Throttled per account (``policy.per_account`` e-mails inside the window) and per
    client address (``policy.per_address`` requests, whatever the address asked for):
    a request past either budget is recorded and sends nothing.
    """
    email = email.strip().lower()[:254]
    account_key = digest(email)
    since = now - policy.window
    request = m.PasswordResetRequest
    async with db.write() as session:
        by_address = await session.scalar(
            sa.select(sa.func.count()).select_from(request)
            .where(request.address == address, request.at > since))
        user = await session.scalar(
            sa.select(m.User).where(m.User.email == email, m.User.active))
        issued = await session.scalar(
            sa.select(sa.func.count()).select_from(m.PasswordReset)
            .where(m.PasswordReset.user_id == (user.id if user else ""),
                   m.PasswordReset.created_at > since,
                   m.PasswordReset.forced_by.is_(None)))
        session.add(request(account_key=account_key, address=address, at=now))
        if user is not None and (by_address or 0) < policy.per_address \
                and (issued or 0) < policy.per_account:
            await _issue(session, user=user, base_url=base_url, policy=policy, now=now,
                         forced_by=None)


async def force_reset(*, db: Database, user_id: str, admin_id: str, base_url: str,
                      policy: ResetPolicy, now: datetime) -> None:
    """An administrator's reset: the password stops working at once, every session and
    token ends, and a link to choose a new one goes to the account's address."""
    async with db.write() as session:
        user = await session.get(m.User, user_id)
        if user is None:
            raise NotFound(_("There is no account {user_id}.", user_id=user_id))
        user.password_hash = NO_PASSWORD
        await _end_everything(session, user_id=user.id, now=now)
        await _issue(session, user=user, base_url=base_url, policy=policy, now=now,
                     forced_by=admin_id)


async def _end_everything(session: AsyncSession, *, user_id: str, now: datetime) -> None:
    await session.execute(
        sa.update(m.ApiToken)
        .where(m.ApiToken.user_id == user_id, m.ApiToken.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    await session.execute(
        sa.update(m.PasswordReset)
        .where(m.PasswordReset.user_id == user_id, m.PasswordReset.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False))


def _invalid_link() -> Unprocessable:
    return Unprocessable(_("This link is not valid any more: it was used, it expired, or a "
                           "newer one was sent. Ask for a new one."))


async def check_link(*, db: Database, token: str, now: datetime) -> None:
    """Unprocessable unless ``token`` is a pending, unexpired reset link."""
    async with db.read() as session:
        reset = await session.scalar(sa.select(m.PasswordReset).where(
            m.PasswordReset.token_hash == digest(token)))
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        raise _invalid_link()


async def choose_password(*, db: Database, hasher: PasswordHasher, token: str,
                          password: str, now: datetime) -> None:
    """Set the password with a reset link: once, inside its 30 minutes; every session,
    API token and other pending link of the account ends."""
    if len(password) < MIN_LENGTH:
        raise Unprocessable(_("The password must have at least 12 characters."))
    password_hash = hash_password(hasher, password)
    async with db.write() as session:
        # Used up in the same statement that checks it: two posts of one link, one wins.
        user_id = await session.scalar(
            sa.update(m.PasswordReset)
            .where(m.PasswordReset.token_hash == digest(token),
                   m.PasswordReset.used_at.is_(None), m.PasswordReset.expires_at > now)
            .values(used_at=now).returning(m.PasswordReset.user_id)
            .execution_options(synchronize_session=False))
        if user_id is None:
            raise _invalid_link()
        await session.execute(
            sa.update(m.User).where(m.User.id == user_id)
            .values(password_hash=password_hash).execution_options(synchronize_session=False))
        await _end_everything(session, user_id=user_id, now=now)


async def purge_requests(*, db: Database, window: timedelta, now: datetime) -> int:
    """Forget reset requests older than the window (their addresses are personal data)."""
    async with db.write() as session:
        result = await session.execute(sa.delete(m.PasswordResetRequest)
                                       .where(m.PasswordResetRequest.at <= now - window))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


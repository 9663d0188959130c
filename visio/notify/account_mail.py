"""E-mails to accounts (password reset links), sent after the transaction that wrote them.

Rows of ``account_mail`` are claimed with a lease (``SKIP LOCKED`` on PostgreSQL, the
write lock on SQLite), sent through the same SMTP client as notifications, and marked;
the link a row carries is erased once it is sent or given up, so that the database
keeps no usable link beyond the mailbox. Temporary failures are retried with backoff.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa

from visio import models as m
from visio.db import Database
from visio.domain import reminders as r
from visio.domain.messages import _
from visio.i18n import catalogue
from visio.notify.compose import Email
from visio.notify.senders import Mailer, build_email
from visio.settings import Settings

log = logging.getLogger("visio.notify")

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8


def reset_email(*, language: str, link: str, minutes: int) -> Email:
    """The reset e-mail in ``language``."""
    cat = catalogue(language)
    subject = cat.render(_("Choose a new password"))
    lines = [
        cat.render(_("Someone (you, we hope) asked to choose a new password for your "
                     "visio account, or an administrator asked you to.")),
        cat.render(_("To choose it, open this link within {minutes} minutes; it works "
                     "once: {link}", minutes=minutes, link=link)),
        cat.render(_("If you did not ask for it, ignore this e-mail: your password does "
                     "not change.")),
    ]
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    page = (f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
            f"<title>{html.escape(subject)}</title></head><body>{body}</body></html>")
    return Email(subject=subject, text="\n\n".join(lines) + "\n", html=page)


async def _claim(db: Database, now: datetime, limit: int) -> list[m.AccountMail]:
    async with db.write() as session:
        pick = (sa.select(m.AccountMail.id)
                .where(m.AccountMail.status == "pending", m.AccountMail.due_at <= now,
                       sa.or_(m.AccountMail.lease_until.is_(None),
                              m.AccountMail.lease_until <= now))
                .order_by(m.AccountMail.due_at).limit(limit))
        if db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        ids = list((await session.scalars(pick)).all())
        if not ids:
            return []
        rows = (await session.scalars(
            sa.update(m.AccountMail).where(m.AccountMail.id.in_(ids))
            .values(lease_until=now + LEASE, attempts=m.AccountMail.attempts + 1)
            .returning(m.AccountMail).execution_options(synchronize_session=False))).all()
        return list(rows)


async def _mark(db: Database, row_id: str, **values: object) -> None:
    async with db.write() as session:
        await session.execute(sa.update(m.AccountMail).where(m.AccountMail.id == row_id)
                              .values(**values).execution_options(synchronize_session=False))


async def send_due(*, db: Database, settings: Settings, mailer: Mailer | None,
                   now: datetime, limit: int = 50) -> int:
    """Send the account e-mails due; how many rows were claimed."""
    rows = await _claim(db, now, limit)
    domain = urlsplit(settings.base_url).hostname or "visio.invalid"
    for row in rows:
        if row.link is None:
            await _mark(db, row.id, status="failed", finished_at=now, last_error="no_link")
            continue
        if mailer is None:
            await _mark(db, row.id, lease_until=now + timedelta(
                seconds=settings.dispatch_retry_seconds), last_error="no smtp server")
            continue
        email = reset_email(language=row.language, link=row.link,
                            minutes=settings.password_reset_minutes)
        message = build_email(row_id=row.id, sender=settings.mail_from,
                              recipient=row.recipient, email=email, language=row.language,
                              domain=domain)
        outcome = await mailer.send(message)
        if outcome.result == "accepted":
            await _mark(db, row.id, status="sent", finished_at=now, link=None,
                        last_error=None, lease_until=None)
        elif outcome.result == "permanent" or row.attempts >= MAX_ATTEMPTS:
            log.warning("account mail %s: failed (%s)", row.id, outcome.error)
            await _mark(db, row.id, status="failed", finished_at=now, link=None,
                        last_error=outcome.error, lease_until=None)
        else:
            wait = r.backoff(row.attempts, base=settings.dispatch_retry_seconds,
                             cap=settings.dispatch_retry_max_seconds)
            await _mark(db, row.id, lease_until=now + wait, last_error=outcome.error)
    return len(rows)

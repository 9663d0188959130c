"""Forgotten passwords: a single-use link by e-mail in the account's language, the same
answer for every address, throttled, and a reset that ends every session."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import PASSWORD, auth_headers, make_site, make_user
from tests.notify.receivers import SmtpSink
from visio import models as m
from visio.app import create_app
from visio.db import Database
from visio.errors import Unprocessable
from visio.notify.dispatcher import Dispatcher
from visio.security import password_hasher
from visio.services import passwords
from visio.settings import Settings

NEW_PASSWORD = "a brand new passphrase 42"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def mail_settings(settings: Settings, smtp: SmtpSink) -> Settings:
    return dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=smtp.port,
                               mail_from="rdv@visio.test", dispatch=False,
                               base_url="http://visio.test")


@pytest.fixture
async def web_client(mail_settings: Settings) -> AsyncIterator[Client]:
    app = create_app(mail_settings, clock=lambda: DEFAULT_NOW)
    async with TestClient(TestServer(app)) as client:
        yield client


async def ask(client: Client, email: str) -> str:
    """Post the forgotten-password form; the page answered."""
    csrf = csrf_of(await (await client.get("/password/forgot")).text())
    response = await client.post("/password/forgot", data={"email": email, "csrf": csrf})
    assert response.status == 200
    return await response.text()


async def deliver(db: Database, settings: Settings) -> None:
    dispatcher = Dispatcher(db=db, settings=settings, clock=lambda: DEFAULT_NOW)
    try:
        await dispatcher.drain()
    finally:
        await dispatcher.close()


def link_in(text: str) -> str:
    found = re.search(r"http://visio\.test(/password/new\?token=[A-Za-z0-9_-]+)", text)
    assert found, text
    return found.group(1)


async def test_a_forgotten_password_is_reset_once_by_the_link_in_the_accounts_language(
        web_client: Client, db: Database, mail_settings: Settings, smtp: SmtpSink) -> None:
    """The e-mail is in Dutch for a Dutch account; the link sets the password once; every
    session and token of the account ends; the old password no longer works."""
    user = await make_user(db, role="agent", sites=[await make_site(db)])
    async with db.write() as session:
        (await session.get(m.User, user.id)).language = "nl"  # type: ignore[union-attr]
    before = await auth_headers(web_client, user)
    assert (await web_client.get("/api/v1/sites", headers=before)).status == 200

    await ask(web_client, user.email.upper())
    await deliver(db, mail_settings)
    assert smtp.count() == 1
    mail = smtp.messages[0]
    assert mail["To"] == user.email
    assert mail["Content-Language"] == "nl"
    assert mail["Subject"] == "Kies een nieuw wachtwoord"
    body = mail.get_body(("plain",))
    assert body is not None
    path = link_in(body.get_content())
    async with db.read() as session:
        row = await session.scalar(sa.select(m.AccountMail))
        assert row is not None
        assert row.status == "sent"
        assert row.link is None
        stored = (await session.scalars(sa.select(m.PasswordReset.token_hash))).all()
    assert path.split("=", 1)[1] not in stored  # only the digest is kept

    page = await web_client.get(path)
    assert page.status == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = await page.text()
    token = path.split("=", 1)[1]
    short = await web_client.post("/password/new", data={
        "csrf": csrf_of(html), "token": token, "password": "short"})
    assert short.status == 422
    assert 'name="token"' in await short.text()  # the form stays, the link is not used
    done = await web_client.post("/password/new", data={
        "csrf": csrf_of(html), "token": token, "password": NEW_PASSWORD},
        allow_redirects=False)
    assert done.status == 303
    assert done.headers["Location"] == "/login?reset=1"

    assert (await web_client.get("/api/v1/sites", headers=before)).status == 401
    old = await web_client.post("/api/v1/auth/token",
                                json={"email": user.email, "password": PASSWORD})
    assert old.status == 401
    new = await web_client.post("/api/v1/auth/token",
                                json={"email": user.email, "password": NEW_PASSWORD})
    assert new.status == 200

    again = await web_client.post("/password/new", data={
        "csrf": csrf_of(html), "token": token, "password": NEW_PASSWORD + "!"})
    assert again.status == 422
    assert 'name="token"' not in await again.text()
    assert (await web_client.get(path)).status == 422


async def test_the_answer_is_the_same_whether_or_not_the_address_is_an_account(
        web_client: Client, db: Database, mail_settings: Settings, smtp: SmtpSink) -> None:
    """Known and unknown addresses get the same page; only the known one gets a mail."""
    user = await make_user(db, role="agent",
                           sites=[await make_site(db)])
    known = await ask(web_client, user.email)
    unknown = await ask(web_client, "nobody-here@visio.test")

    def scrub(page: str) -> str:
        return re.sub(r'value="[0-9a-f]+"', "", page)

    assert scrub(known) == scrub(unknown)
    assert 'id="reset-sent"' in known
    await deliver(db, mail_settings)
    assert [str(x["To"]) for x in smtp.messages] == [user.email]


async def test_requests_are_throttled_per_account_and_per_address(
        db: Database, mail_settings: Settings) -> None:
    """Past 3 e-mails an hour for an account, or 10 requests an hour from an address,
    requests send nothing (and are answered the same)."""
    policy = passwords.ResetPolicy.from_settings(mail_settings)
    site = await make_site(db)
    users = [await make_user(db, role="agent", sites=[site]) for _ in range(12)]
    for n in range(5):  # one account, five addresses
        await passwords.request_reset(db=db, email=users[0].email, address=f"192.0.2.{n}",
                                      base_url="http://visio.test", policy=policy,
                                      now=DEFAULT_NOW + timedelta(minutes=n))
    for user in users[1:]:  # eleven accounts, one address
        await passwords.request_reset(db=db, email=user.email, address="198.51.100.7",
                                      base_url="http://visio.test", policy=policy,
                                      now=DEFAULT_NOW)
    async with db.read() as session:
        per_user = dict((await session.execute(
            sa.select(m.AccountMail.user_id, sa.func.count())
            .group_by(m.AccountMail.user_id))).all())
    assert per_user[users[0].id] == 3
    assert sum(per_user.get(u.id, 0) for u in users[1:]) == 10
    # An hour later the account's budget is back.
    await passwords.request_reset(db=db, email=users[0].email, address="192.0.2.99",
                                  base_url="http://visio.test", policy=policy,
                                  now=DEFAULT_NOW + timedelta(minutes=70))
    async with db.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(m.AccountMail)
                                    .where(m.AccountMail.user_id == users[0].id)) == 4


async def test_a_link_expires_after_30_minutes(db: Database, mail_settings: Settings) -> None:
    """At 30 minutes the link no longer sets a password."""
    user = await make_user(db, role="agent", sites=[await make_site(db)])
    policy = passwords.ResetPolicy.from_settings(mail_settings)
    await passwords.request_reset(db=db, email=user.email, address="192.0.2.1",
                                  base_url="http://visio.test", policy=policy,
                                  now=DEFAULT_NOW)
    async with db.read() as session:
        link = await session.scalar(sa.select(m.AccountMail.link))
    assert link is not None
    token = link.split("=", 1)[1]
    late = DEFAULT_NOW + timedelta(minutes=30)
    with pytest.raises(Unprocessable):
        await passwords.check_link(db=db, token=token, now=late)
    with pytest.raises(Unprocessable):
        await passwords.choose_password(db=db, hasher=password_hasher(), token=token,
                                        password=NEW_PASSWORD, now=late)
    await passwords.choose_password(db=db, hasher=password_hasher(), token=token,
                                    password=NEW_PASSWORD,
                                    now=late - timedelta(seconds=1))


async def test_an_administrator_forces_a_reset(
        web_client: Client, db: Database, mail_settings: Settings, smtp: SmtpSink) -> None:
    """The password stops working, sessions end, a link goes out; others get 403."""
    site = await make_site(db)
    admin = await make_user(db, role="admin")
    agent = await make_user(db, role="agent", sites=[site])
    admin_headers = await auth_headers(web_client, admin)
    agent_headers = await auth_headers(web_client, agent)
    refused = await web_client.post(f"/api/v1/users/{admin.id}/password-reset",
                                    headers=agent_headers)
    assert refused.status == 403
    missing = await web_client.post("/api/v1/users/nobody/password-reset",
                                    headers=admin_headers)
    assert missing.status == 404
    forced = await web_client.post(f"/api/v1/users/{agent.id}/password-reset",
                                   headers=admin_headers)
    assert forced.status == 204
    assert (await web_client.get("/api/v1/sites", headers=agent_headers)).status == 401
    old = await web_client.post("/api/v1/auth/token",
                                json={"email": agent.email, "password": PASSWORD})
    assert old.status == 401
    await deliver(db, mail_settings)
    assert smtp.count() == 1
    assert smtp.messages[0]["Content-Language"] == "fr"

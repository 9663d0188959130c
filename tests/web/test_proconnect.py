"""ProConnect sign-in against a real local OpenID provider: the code flow with state, nonce
and PKCE, account linking and provisioning, logout at the provider, and every refusal as
a sentence in the caller's language, never a 500."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.conftest import DEFAULT_NOW
from tests.factories import make_operator, make_site, make_user
from tests.notify.receivers import free_port
from tests.web.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from visio import models as m
from visio.app import create_app
from visio.db import Database
from visio.services import accounts
from visio.settings import Settings


@dataclass
class Flow:
    base: str
    provider: OidcProvider
    http: aiohttp.ClientSession

    async def sign_in(self, lang: str = "fr") -> tuple[int, str, str]:
        """Click the button and follow every redirect; status, final path, page."""
        self.http.cookie_jar.update_cookies({"visio_lang": lang}, URL(self.base))
        async with self.http.get(f"{self.base}/login/proconnect?next=/agent/book") as answer:
            return answer.status, answer.url.path, await answer.text()


@pytest.fixture
async def provider() -> AsyncIterator[OidcProvider]:
    found = OidcProvider()
    await found.start()
    yield found
    await found.stop()


async def _serve(settings: Settings, provider: OidcProvider,
                 **changes: Any) -> tuple[TestServer, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(dataclasses.replace(
        settings, base_url=base, proconnect_issuer=provider.url, proconnect_client_id=CLIENT_ID,
        proconnect_client_secret=CLIENT_SECRET, **changes), clock=lambda: DEFAULT_NOW)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return server, base


@pytest.fixture
async def flow(settings: Settings, provider: OidcProvider) -> AsyncIterator[Flow]:
    server, base = await _serve(settings, provider, proconnect_acr_values=("eidas1",))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Flow(base, provider, http)
    await server.close()


async def agent_with(db: Database, email: str) -> m.User:
    user = await make_user(db, role="agent", sites=[await make_site(db)])
    async with db.write() as session:
        row = await session.get(m.User, user.id)
        assert row is not None
        row.email = email
    return user


async def test_an_agent_signs_in_by_email_then_by_sub_and_logs_out_at_the_provider(
        flow: Flow, db: Database) -> None:
    """The e-mail (any case) finds the account, which is then linked by sub; the session
    works; logging out sends the browser to the provider's end_session with
    id_token_hint, state and the way back."""
    user = await agent_with(db, "agent@example.gouv.fr")
    flow.provider.person["email"] = "Agent@Example.GOUV.fr"
    status, path, _page = await flow.sign_in()
    assert (status, path) == (200, "/agent/book")
    async with db.read() as session:
        linked = await session.get(m.User, user.id)
        assert linked is not None
        assert linked.oidc_sub == "sub-agent-1"
        audit = (await session.scalars(sa.select(m.AuditEntry.action)
                                       .where(m.AuditEntry.actor_id == user.id))).all()
    assert "signin" in audit
    # The e-mail changes at the provider: the sub still finds the account.
    flow.provider.person["email"] = "renamed@example.gouv.fr"
    flow.http.cookie_jar.clear()
    status, path, _page = await flow.sign_in()
    assert (status, path) == (200, "/agent/book")

    login = await flow.http.get(f"{flow.base}/login")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', await login.text())
    assert csrf is not None
    logout = await flow.http.post(f"{flow.base}/logout", data={"csrf": csrf.group(1)})
    page = await logout.text()
    found = re.search(r'id="provider-logout" href="([^"]+)"', page)
    assert found is not None
    async with flow.http.get(found.group(1).replace("&amp;", "&")) as back:
        assert back.url.path == "/login"
    [ended] = flow.provider.logouts
    assert ended["id_token_hint"].count(".") == 2
    assert ended["state"]
    assert ended["post_logout_redirect_uri"] == f"{flow.base}/login"
    again = await flow.http.get(f"{flow.base}/agent/book", allow_redirects=False)
    assert again.status == 303  # the visio session ended too


async def test_nobody_gets_an_account_by_signing_in_unless_provisioning_allows_it(
        settings: Settings, provider: OidcProvider, db: Database) -> None:
    """Unknown e-mail: refused (in Dutch for a Dutch reader); with the SIRET listed, an
    agent account with no site is made."""
    provider.person["email"] = "new.person@example.gouv.fr"
    server, base = await _serve(settings, provider)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            refused = Flow(base, provider, http)
            status, _path, page = await refused.sign_in("nl")
            assert status == 401
            assert "Geen visio-account heeft dit e-mailadres" in page
    finally:
        await server.close()
    server, base = await _serve(settings, provider,
                                proconnect_provision_sirets=("13002526500013",))
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            status, path, _page = await Flow(base, provider, http).sign_in()
            assert (status, path) == (200, "/agent/book")
    finally:
        await server.close()
    async with db.read() as session:
        made = await session.scalar(sa.select(m.User).where(
            m.User.email == "new.person@example.gouv.fr"))
        assert made is not None
        assert (made.role, made.staff_id, made.oidc_sub) == ("agent", None, "sub-agent-1")
        sites = await session.scalar(sa.select(sa.func.count()).select_from(m.UserSite)
                                     .where(m.UserSite.user_id == made.id))
    assert sites == 0


async def test_a_domain_listed_for_staff_gives_staff_with_no_desk(
        settings: Settings, provider: OidcProvider, db: Database) -> None:
    """``domain=staff``: an operator's domain gets a staff account with no desk, whose
    agenda opens empty until an administrator links it to a staff member."""
    provider.person["email"] = "Conseillere.Nouvelle@Carsat.Example.fr"
    server, base = await _serve(settings, provider,
                                proconnect_provision_domains=("carsat.example.fr=staff",))
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            status, path, page = await Flow(base, provider, http).sign_in()
            assert (status, path) == (200, "/staff/agenda"), page
            assert "pas encore rattaché à un guichet" in page  # said, not an empty agenda
    finally:
        await server.close()
    async with db.read() as session:
        made = await session.scalar(sa.select(m.User).where(
            sa.func.lower(m.User.email) == "conseillere.nouvelle@carsat.example.fr"))
        assert made is not None
        assert (made.role, made.staff_id) == ("staff", None)
    # An administrator then gives it a desk: a staff member is made there and linked.
    bundle = await make_operator(db, staff=0)
    granted = await accounts.grant(db=db, user_id=made.id, desk_id=bundle.desk.id)
    assert (granted.role, granted.desk_id) == ("staff", bundle.desk.id)
    assert granted.staff_id is not None


def test_provisioning_entries_name_agent_or_staff_only() -> None:
    """A listing may give agent or staff, never more (an admin by a typo is refused)."""
    assert Settings.from_env({"VISIO_PROCONNECT_PROVISION_SIRETS": "13002526500013=staff, 1"}
                             ).proconnect_provision_sirets == ("13002526500013=staff", "1")
    with pytest.raises(ValueError, match="agent or staff"):
        Settings.from_env({"VISIO_PROCONNECT_PROVISION_DOMAINS": "example.fr=admin"})


REFUSALS = {
    "expired": ({"claims": {"exp": 1_000_000_000, "iat": 999_999_000}}, "token"),
    "alg none": ({"alg": "none"}, "token"),
    "wrong key": ({"key": "stranger"}, "token"),
    "wrong audience": ({"claims": {"aud": "someone-else"}}, "token"),
    "wrong nonce": ({"claims": {"nonce": "not-the-one"}}, "token"),
    "wrong issuer": ({"claims": {"iss": "https://evil.example"}}, "token"),
    "acr too low": ({"claims": {"acr": "eidas0"}}, "acr"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_every_bad_token_is_refused_with_a_sentence(
        flow: Flow, db: Database, case: str) -> None:
    """Each bent ID token: a 401 page saying why, an audit entry, no session."""
    await agent_with(db, "agent@example.gouv.fr")
    flow.provider.tweak, reason = REFUSALS[case]
    status, path, page = await flow.sign_in("en")
    assert status == 401
    assert path == "/login/proconnect/callback"
    assert 'role="alert"' in page
    expected = ("not strong enough" if reason == "acr" else "could not be verified")
    assert expected in page
    async with db.read() as session:
        refusals = (await session.scalars(sa.select(m.AuditEntry.detail).where(
            m.AuditEntry.action == "signin_refused"))).all()
    assert [r["reason"] for r in refusals] == [reason]


async def test_an_es256_token_and_json_userinfo_are_accepted(flow: Flow, db: Database) -> None:
    """Both algorithms; userinfo as JSON as well as a signed JWT."""
    await agent_with(db, "agent@example.gouv.fr")
    flow.provider.tweak = {"alg": "ES256", "userinfo": "json"}
    status, path, _page = await flow.sign_in()
    assert (status, path) == (200, "/agent/book")


async def test_rotated_provider_keys_are_fetched_again(flow: Flow, db: Database) -> None:
    """A token signed by a key published after the first sign-in is accepted."""
    from joserfc.jwk import RSAKey

    await agent_with(db, "agent@example.gouv.fr")
    assert (await flow.sign_in())[0] == 200
    flow.provider.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig"})
    flow.provider.published = [flow.provider.rsa, flow.provider.ec]
    flow.http.cookie_jar.clear()
    assert (await flow.sign_in())[:2] == (200, "/agent/book")


async def test_wrong_state_replayed_code_and_an_unreachable_provider_are_refused(
        flow: Flow, db: Database) -> None:
    """A callback without this browser's state, the same callback twice, and a provider
    that does not answer: each a sentence, never a 500."""
    await agent_with(db, "agent@example.gouv.fr")
    flow.http.cookie_jar.update_cookies({"visio_lang": "en"}, URL(flow.base))
    forged = await flow.http.get(f"{flow.base}/login/proconnect/callback?code=x&state=y")
    assert forged.status == 401
    assert "did not start here" in await forged.text()

    start = await flow.http.get(f"{flow.base}/login/proconnect", allow_redirects=False)
    authorize = await flow.http.get(start.headers["Location"], allow_redirects=False)
    callback = authorize.headers["Location"]
    cookies = flow.http.cookie_jar.filter_cookies(URL(flow.base))
    first = await flow.http.get(callback, allow_redirects=False)
    assert first.status == 303
    # Replayed with the flow's cookie put back: the provider refuses the used code.
    flow.http.cookie_jar.update_cookies({"visio_oidc": cookies["visio_oidc"].value},
                                        URL(flow.base))
    replay = await flow.http.get(callback, allow_redirects=False)
    assert replay.status == 401
    assert "may have been used already" in await replay.text()

    flow.provider.down = True
    start = await flow.http.get(f"{flow.base}/login/proconnect", allow_redirects=False)
    authorize = await flow.http.get(start.headers["Location"], allow_redirects=False)
    down = await flow.http.get(authorize.headers["Location"], allow_redirects=False)
    assert down.status == 502
    assert "cannot be reached" in await down.text()


async def test_without_settings_there_is_no_button(client: Any) -> None:
    """No ProConnect settings: the login page is as before, the routes are 404."""
    page = await (await client.get("/login")).text()
    assert 'id="proconnect"' not in page
    assert (await client.get("/login/proconnect", allow_redirects=False)).status == 404

"""ProConnect in Chromium: the login page with the button is axe-core clean in French and
Dutch (screenshots), and an agent signs in and out end to end against a real local
provider."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import in_thread
from tests.web.conftest import AXE, SCREENSHOTS, BackgroundServer, _free_port
from tests.web.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from tests.web.test_password_pages import axe_violations
from visio.migrate import upgrade
from visio.settings import Settings

LOCALES = {"fr": "fr-FR", "nl": "nl-BE"}
AGENT = "agent.bruay-sur-l-escaut@visio.test"


@pytest.fixture(scope="module")
def with_proconnect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """visio (demo data) with ProConnect pointed at a local provider; both on one loop."""
    path = tmp_path_factory.mktemp("proconnect") / "visio.db"
    url = f"sqlite+aiosqlite:///{path}"
    in_thread(lambda: upgrade(url))
    port = _free_port()
    provider = OidcProvider()
    provider.person["email"] = AGENT
    base = f"http://127.0.0.1:{port}"
    settings = Settings(database_url=url, secret_key="web-secret-" + "y" * 32,
                        host="127.0.0.1", port=port, base_url=base,
                        proconnect_client_id=CLIENT_ID,
                        proconnect_client_secret=CLIENT_SECRET)
    # The provider runs on the server's loop; its address is known once it listens, so
    # the app is built after it.
    server = BackgroundServer(settings)
    server._thread.start()
    server.run(provider.start())
    server.settings = dataclasses.replace(settings, proconnect_issuer=provider.url)
    server.run(server._start())
    try:
        yield base, provider
    finally:
        server.run(provider.stop())
        server.stop()


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_the_login_page_with_proconnect_is_accessible(
        with_proconnect: tuple[str, Any], browser: Any, lang: str) -> None:
    """No serious or critical violation; the button says the State's words."""
    from tests.support import missing_service

    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    base, _provider = with_proconnect
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale=LOCALES[lang], bypass_csp=True,
                                  viewport={"width": 1024, "height": 768})
    try:
        page = context.new_page()
        page.goto(f"{base}/lang?to={lang}&next=/login")
        label = page.inner_text("#proconnect")
        assert label.replace("\n", " ").strip() == {
            "fr": "S'identifier avec ProConnect", "nl": "Aanmelden met ProConnect"}[lang]
        assert page.get_attribute("html", "lang") == lang
        violations = axe_violations(page)
        page.screenshot(path=str(SCREENSHOTS / f"login-proconnect-{lang}.png"),
                        full_page=True)
    finally:
        context.close()
    assert not violations, violations


def test_an_agent_signs_in_and_out_with_proconnect_in_chromium(
        with_proconnect: tuple[str, Any], browser: Any) -> None:
    """Click the button, land on booking signed in; log out of visio and of ProConnect."""
    base, provider = with_proconnect
    context = browser.new_context(locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(f"{base}/login")
        page.click("#proconnect")
        page.wait_for_url(f"{base}/agent/book**")
        assert page.is_visible("form.logout")
        page.click("form.logout button")
        page.wait_for_selector("#provider-logout")
        page.click("#provider-logout")
        page.wait_for_url(f"{base}/login")
        assert provider.logouts
        assert provider.logouts[-1]["post_logout_redirect_uri"] == f"{base}/login"
        page.goto(f"{base}/agent/book")
        page.wait_for_url(f"{base}/login**")
    finally:
        context.close()

"""The forgotten-password pages in Chromium: axe-core clean in French and Dutch, with
screenshots; the login page links to them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import AXE, SCREENSHOTS, Live

LOCALES = {"fr": "fr-FR", "nl": "nl-BE"}


def axe_violations(page: Any) -> list[str]:
    """The serious and critical violations axe-core finds on the page."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core"
    assert result["passes"], "axe ran no rule"
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_the_password_pages_are_accessible(live: Live, browser: Any, lang: str) -> None:
    """The login page, the request form, its answer and an invalid link's page: no
    serious violation."""
    from tests.support import missing_service

    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale=LOCALES[lang], bypass_csp=True,
                                  viewport={"width": 1024, "height": 768})
    found: dict[str, list[str]] = {}
    try:
        page = context.new_page()
        page.goto(f"{live.url}/lang?to={lang}&next=/login")
        # The login page without ProConnect (no settings): no button, axe-clean.
        assert page.query_selector("#proconnect") is None
        found["login"] = axe_violations(page)
        page.screenshot(path=str(SCREENSHOTS / f"login-password-only-{lang}.png"),
                        full_page=True)
        page.click("a[href='/password/forgot']")
        page.wait_for_selector("input[name=email]")
        assert page.get_attribute("html", "lang") == lang
        found["password-forgot"] = axe_violations(page)
        page.screenshot(path=str(SCREENSHOTS / f"password-forgot-{lang}.png"), full_page=True)
        page.fill("input[name=email]", "nobody@visio.test")
        page.click("button[type=submit].primary")
        page.wait_for_selector("#reset-sent")
        found["password-sent"] = axe_violations(page)
        page.screenshot(path=str(SCREENSHOTS / f"password-sent-{lang}.png"), full_page=True)
        page.goto(f"{live.url}/password/new?token=not-a-token")
        page.wait_for_selector("#reset-error")
        found["password-invalid"] = axe_violations(page)
        page.screenshot(path=str(SCREENSHOTS / f"password-invalid-{lang}.png"),
                        full_page=True)
    finally:
        context.close()
    assert not any(found.values()), found

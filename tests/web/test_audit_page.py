"""The audit trail's page in headless Chromium: the admin's logins listed in words, the
CSV links, refused to an agent; axe-core clean in French and Dutch, with screenshots."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.web.conftest import AXE, SCREENSHOTS, Live, log_in

ADMIN = "admin@visio.test"
AGENT = "agent.le-cateau-cambresis@visio.test"
LOCALES = {"fr": "fr-FR", "nl": "nl-BE"}
LOGGED_IN = {"fr": "Connexion", "nl": "Aangemeld"}


@pytest.mark.parametrize("lang", ["fr", "nl"])
def test_the_audit_page_lists_the_trail_and_is_accessible(
    live: Live, browser: Any, lang: str,
) -> None:
    from tests.support import missing_service

    if not AXE.exists():
        missing_service(f"axe-core ({AXE}; npm install --prefix tests/js)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 1366, "height": 768},
                                  bypass_csp=True)
    page = context.new_page()
    page.goto(f"{live.url}/lang?to={lang}&next=/login")
    log_in(page, live.url, ADMIN)
    page.click("nav >> a[href='/network/audit']")
    page.wait_for_selector("#trail tbody tr")
    rows = page.locator("#trail tbody tr")
    assert rows.count() >= 1
    assert page.get_attribute("html", "lang") == lang
    # The admin's own login is in it, said in the page's language.
    assert LOGGED_IN[lang] in page.inner_text("#trail")

    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert result["passes"], "axe ran no rule"
    bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    page.screenshot(path=str(SCREENSHOTS / f"audit-{lang}.png"), full_page=True)
    assert not bad, bad

    # The CSV link downloads what the table shows, with its separator.
    response = page.request.get(live.url + page.get_attribute("#csv-semicolon", "href"))
    assert response.status == 200
    exported = list(csv.DictReader(io.StringIO(response.text()), delimiter=";"))
    shown = page.locator("#trail tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.seq)")
    assert [r["seq"] for r in exported][:len(shown)] == shown

    # A wrong date is said in words, the focus on the summary.
    page.goto(f"{live.url}/network/audit?from=2026-13-01")
    page.wait_for_selector("#form-errors")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert not [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    context.close()

    # An agent does not read the trail.
    context = browser.new_context(locale=LOCALES[lang])
    page = context.new_page()
    log_in(page, live.url, AGENT)
    assert page.locator("nav >> a[href='/network/audit']").count() == 0
    response = page.goto(f"{live.url}/network/audit")
    assert response is not None
    assert response.status == 403
    context.close()

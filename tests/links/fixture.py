"""The emulated link for browser tests (a pytest plugin, listed in tests/conftest.py).

``emulated_link``: the bare link (the kiosk's namespace behind the forwarder).
``linked_call``: a whole call across it: visio and coturn on the link's server side, the
staff member's Chromium there, ``kiosk_browser()`` in the namespace. Both are per module;
each test sets the link's condition it needs (``link.set(Condition...)``, ``link.cut(s)``,
``udp_blocked=True``), and the link is clean again after every test.

Without root, /dev/net/tun, unshare or nsenter, Chromium or Playwright they skip loudly,
and fail in CI (``VISIO_REQUIRE_SERVICES=1``). A module using ``linked_call`` must not also
use tests/web's ``browser`` (one Playwright per thread).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.links.link import CLEAN, EmulatedLink, LinkUnavailable, unavailable_reason
from tests.support import missing_service


def _require_link() -> None:
    reason = unavailable_reason()
    if reason is not None:
        missing_service(f"{reason} for the emulated link")


@pytest.fixture(scope="module")
def emulated_link() -> Iterator[EmulatedLink]:
    _require_link()
    try:
        link = EmulatedLink()
    except LinkUnavailable as err:
        missing_service(f"the emulated link: {err}")
        raise
    with link:
        yield link


@pytest.fixture(scope="module")
def linked_call(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.web.conftest import CHROMIUM

    _require_link()
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        missing_service(f"Chromium ({CHROMIUM}) for the calls across the emulated link")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_service("Playwright for Python")
    from tests.links.call import linked_call as start

    with start(tmp_path_factory.mktemp("links")) as harness:
        yield harness


@pytest.fixture(autouse=True)
def _clean_link_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test's condition does not leak into the next test of its module."""
    yield
    for name in ("emulated_link", "linked_call"):
        if name in request.fixturenames:
            value = request.getfixturevalue(name)
            link = value if isinstance(value, EmulatedLink) else getattr(value, "link", None)
            if isinstance(link, EmulatedLink) and link.process.poll() is None:
                link.set(CLEAN)

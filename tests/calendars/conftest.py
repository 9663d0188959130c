"""Calendar tests: the app may fetch from loopback (the fixture servers live there)."""

from __future__ import annotations

import dataclasses

import pytest

from visio.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with VISIO_CALENDAR_ALLOW_PRIVATE=1."""
    return dataclasses.replace(settings, calendar_allow_private=True)

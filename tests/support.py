"""What every test module may need about the services it runs against."""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("VISIO_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get(
    "VISIO_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("VISIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def missing_service(reason: str) -> None:
    """Skip loudly, or fail when CI promises every service (VISIO_REQUIRE_SERVICES=1)."""
    message = f"SERVICE MISSING: {reason}; these tests do not run without it"
    if REQUIRE_SERVICES:
        pytest.fail(f"VISIO_REQUIRE_SERVICES=1 but {message}")
    # pytest runs with -rs (pyproject), so every skip prints this reason in the summary.
    pytest.skip(message)

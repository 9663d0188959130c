"""`make fleet` under pytest (CI): nginx, two instances, a worker, PostgreSQL, Redis and
coturn, six faults under a steady load; every row's outcome holds. Times (the call's
reconnect) are in the table and not asserted: a loaded machine must not fail the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet.faults import run, table


@pytest.mark.slow
async def test_the_fleet_survives_its_bad_days(tmp_path: Path) -> None:
    rows = await run(tmp_path)
    print(table(rows))
    failing = [r.fault for r in rows if not r.holds]
    assert failing == [], table(rows)

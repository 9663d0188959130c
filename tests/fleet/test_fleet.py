"""`make fleet` under pytest (CI): nginx, two instances, a worker, PostgreSQL, Redis and
coturn, six faults under a steady load; every row of the table holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet.faults import run, table


@pytest.mark.slow
async def test_the_fleet_survives_its_bad_days(tmp_path: Path) -> None:
    rows = await run(tmp_path)
    print(table(rows))
    assert [r.fault for r in rows if not r.holds] == [], table(rows)

"""The visio command: migrate, seed, create, list and grant users."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from visio import models as m
from visio.db import open_database

VISIO = [sys.executable, "-m", "visio"]


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VISIO, *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.slow
async def test_seeds_the_demo_twice_and_manages_users(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "VISIO_DATABASE_URL": url, "VISIO_LOG_LEVEL": "WARNING"}
    assert _run(["db", "upgrade"], env).returncode == 0
    first = _run(["seed", "--demo"], env)
    assert first.returncode == 0, first.stderr
    assert "agent.hondschoote@visio.test" in first.stdout
    assert _run(["seed", "--demo"], env).returncode == 0

    db = open_database(url)
    try:
        async with db.read() as session:
            sites = (await session.scalars(sa.select(m.Site))).all()
            operators = (await session.scalars(sa.select(m.Operator))).all()
            stops = (await session.execute(
                sa.select(m.TourStop.site_id, sa.func.count(sa.distinct(m.TourStop.commune)))
                .group_by(m.TourStop.site_id))).all()
            site_id = sites[0].id
            places = (await session.execute(
                sa.select(m.TourStop.commune, m.TourStop.place).distinct())).all()
    finally:
        await db.dispose()
    # The Nord's 3 fixed sites and 6 buses, and 4 sites of the Pas-de-Calais and the Aisne.
    assert sorted(s.kind for s in sites) == ["fixed"] * 7 + ["itinerant"] * 6
    assert sorted(s.departement for s in sites) == ["02"] * 2 + ["59"] * 9 + ["62"] * 2
    assert len([o for o in operators if o.country == "FR"]) >= 8
    belgian = [o for o in operators if o.country == "BE"]
    assert len(belgian) >= 6
    assert any(o.languages == ["nl"] for o in belgian)
    assert len(stops) == 6
    assert all(count == 20 for _, count in stops)
    # Every site that sends messages has a number to call; a bus is named as a bus, and
    # its stops do not repeat their commune (it is written beside them).
    assert all(s.phone and s.phone.startswith("+333") for s in sites)
    assert "France Services itinérante du Cambrésis" in {s.name for s in sites}
    assert all(commune not in place for commune, place in places)
    assert "agent.du-cambresis@visio.test" in first.stdout

    created = _run(["users", "create", "--email", "new.agent@visio.test", "--role", "agent",
                    "--site", site_id], env, stdin="a long enough password\n")
    assert created.returncode == 0, created.stderr
    duplicate = _run(["users", "create", "--email", "new.agent@visio.test", "--role",
                      "agent", "--site", site_id], env, stdin="a long enough password\n")
    assert duplicate.returncode == 1
    assert "existe déjà" in duplicate.stderr
    coordinator = _run(["users", "create", "--email", "nord@visio.test", "--role",
                        "coordinator", "--departement", "59", "--departement", "62"], env,
                       stdin="a long enough password\n")
    assert coordinator.returncode == 0, coordinator.stderr
    nowhere = _run(["users", "create", "--email", "nowhere@visio.test", "--role",
                    "coordinator"], env, stdin="a long enough password\n")
    assert nowhere.returncode == 1
    listed = _run(["users", "list"], env)
    assert "new.agent@visio.test" in listed.stdout
    assert site_id in listed.stdout
    assert "coordinator\tnord@visio.test\tdep:59,dep:62" in listed.stdout

    # An administrator gives an account its sites, desk or départements afterwards (what
    # a ProConnect account provisioned with nothing waits for).
    other_site = sites[1].id
    granted = _run(["users", "grant", "--email", "New.Agent@visio.test", "--site", other_site],
                   env)
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip().endswith(f"agent\tnew.agent@visio.test\t{other_site}")
    unknown = _run(["users", "grant", "--email", "nobody@visio.test", "--site", site_id], env)
    assert unknown.returncode == 1
    assert "Il n'y a pas de compte nobody@visio.test." in unknown.stderr

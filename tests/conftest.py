"""Shared fixtures: databases migrated once with Alembic, then one copy per test.

Each test gets its own database copied from a migrated template (a file copy on SQLite,
``CREATE DATABASE … TEMPLATE`` on PostgreSQL): real commits, real ``BEGIN IMMEDIATE``
and real exclusion constraints, so race tests and ordinary tests run the same way.

On PostgreSQL a database is created once and reused: after its test, every other
connection to it is ended, every table emptied and the template's own rows (the themes,
the audit chain's anchor, the search version) and sequences put back, in one transaction,
and it is renamed (a task the test left behind that connects again finds nothing);
a database no longer at the template's schema (a test that migrated it) or that cannot
be emptied is dropped instead. Creating and dropping one costs about half a second of
PostgreSQL's CPU (438 relations, files created and unlinked); emptying one, milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from tests.support import POSTGRES_URL, REDIS_URL, missing_service
from visio.app import create_app
from visio.db import Database, open_database
from visio.migrate import upgrade
from visio.settings import Settings

pytest_plugins = ["tests.coturn", "tests.links.fixture"]

T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking set-up (Alembic, its own event loop) off the test's running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@dataclass
class PostgresTemplate:
    admin_dsn: str
    template: str
    url: str
    #: What a reused database must look like again: the template's schema version, its
    #: tables, the rows it holds and its sequences' values.
    version: str = ""
    tables: tuple[str, ...] = ()
    rows: dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]] = field(
        default_factory=dict)
    sequences: dict[str, tuple[int, bool]] = field(default_factory=dict)
    #: Databases emptied after their test, ready for the next one (this worker's).
    free: list[str] = field(default_factory=list)


_SCHEMA_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"


async def _template_state(pg: PostgresTemplate) -> None:
    conn = await asyncpg.connect(_dsn(pg.url))
    try:
        pg.version = await conn.fetchval("SELECT version_num FROM alembic_version")
        pg.tables = tuple(r[0] for r in await conn.fetch(_SCHEMA_TABLES))
        for table in pg.tables:
            if table == "alembic_version":
                continue
            records = await conn.fetch(f'SELECT * FROM "{table}"')
            if records:
                pg.rows[table] = (tuple(records[0].keys()), [tuple(r) for r in records])
        for name, value, called in await conn.fetch(
                "SELECT sequencename, COALESCE(last_value, start_value), last_value IS NOT NULL"
                " FROM pg_sequences WHERE schemaname = 'public'"):
            pg.sequences[name] = (value, called)
    finally:
        await conn.close()


async def _renamed(pg: PostgresTemplate, name: str) -> str | None:
    """``name`` under a new name: a task the previous test left behind that connects again
    finds no database instead of the next test's. None if it cannot be renamed."""
    fresh = f"visio_t_{secrets.token_hex(6)}"
    try:
        conn = await asyncpg.connect(pg.admin_dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        for _ in range(3):
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                               " WHERE datname = $1", name)
            try:
                await conn.execute(f'ALTER DATABASE "{name}" RENAME TO "{fresh}"')
                return fresh
            except asyncpg.ObjectInUseError:
                await asyncio.sleep(0.1)  # a backend still on its way out
        return None
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    finally:
        await conn.close()


async def _emptied(pg: PostgresTemplate, name: str) -> bool:
    """``name`` back to the template's state for the next test; False if it cannot be."""
    try:
        conn = await asyncpg.connect(_dsn(pg.url, name), timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        tables = tuple(r[0] for r in await conn.fetch(_SCHEMA_TABLES))
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
        if tables != pg.tables or version != pg.version:
            return False
        async with conn.transaction():
            # Neither foreign keys nor triggers (the audit trail refuses deletes) apply
            # to this session's deletes.
            await conn.execute("SET LOCAL session_replication_role = replica;"
                               "SET LOCAL lock_timeout = '10s';" + "".join(
                                   f'DELETE FROM "{t}";' for t in tables
                                   if t != "alembic_version"))
            for table, (columns, records) in pg.rows.items():
                await conn.copy_records_to_table(table, records=records, columns=columns)
            for sequence, (value, called) in pg.sequences.items():
                await conn.execute("SELECT setval($1, $2, $3)", sequence, value, called)
        return True
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    finally:
        await conn.close()


TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist (``make test`` runs ``-n 3 --dist loadgroup``): the tests of
    a module that uses a module-scoped fixture (a Chromium, coturn, a server started once
    per module) stay together on one worker; every other test goes to whichever worker is
    free. Session-scoped fixtures are made once per worker: the migrated templates under
    names of their own (the worker's pid), the browser tests' ``live`` server with the demo.
    Without xdist the marks change nothing."""
    for item in items:
        path = Path(str(item.path)).resolve()
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d.scope == "module" for chain in defs for d in chain):
            item.add_marker(pytest.mark.xdist_group(str(path.relative_to(TESTS))))
    # The modules holding a test marked slow go first, each kept whole and in its order:
    # the workers start on the long ones and end on short ones together, instead of one
    # of them finishing a fleet or a crash test alone at the end. The browser tests are
    # not marked: they stay last, away from the crash test's CPU burners (a call's link
    # measures under those burners flap).
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, once per session."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    in_thread(lambda: upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate | str]:
    """A PostgreSQL database migrated to head once per session (or why it is missing)."""
    admin = _dsn(POSTGRES_URL)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    name = f"visio_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        in_thread(lambda: asyncio.run(run(f'CREATE DATABASE "{name}"')))
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        yield f"{type(err).__name__}: {err}"
        return
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    in_thread(lambda: upgrade(url))
    template = PostgresTemplate(admin_dsn=admin, template=name, url=url)
    in_thread(lambda: asyncio.run(_template_state(template)))
    yield template
    for database in [*template.free, name]:
        drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        in_thread(lambda drop=drop: asyncio.run(run(drop)))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test on SQLite and on PostgreSQL."""
    return str(request.param)


@pytest.fixture
async def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    """A fresh, migrated database of the test's own."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "visio.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    pg = request.getfixturevalue("postgres_template")
    if isinstance(pg, str):
        missing_service(f"PostgreSQL at {POSTGRES_URL} ({pg})")
    assert isinstance(pg, PostgresTemplate)
    if pg.free:
        name = pg.free.pop()
    else:
        name = f"visio_t_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            await conn.execute(
                f'CREATE DATABASE "{name}" TEMPLATE "{pg.template}" STRATEGY WAL_LOG')
        finally:
            await conn.close()
    yield make_url(pg.url).set(database=name).render_as_string(hide_password=False)
    if await _emptied(pg, name):
        fresh = await _renamed(pg, name)
        if fresh is not None:
            pg.free.append(fresh)
            return
    conn = await asyncpg.connect(pg.admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test's database, for factories and direct checks."""
    database = open_database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for an app on the test's database."""
    return Settings(database_url=database_url, secret_key="test-secret-" + "x" * 32,
                    login_max_failures=5, login_window_seconds=900)


# Monday 23 November 2026, 08:00 in Paris: the app's "now" unless a test moves it.
DEFAULT_NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Start the real application with its clock fixed at a given instant."""
    clients: list[Client] = []

    async def factory(now: datetime = DEFAULT_NOW) -> Client:
        app = create_app(settings, clock=lambda: now)
        test_client: Client = TestClient(TestServer(app))
        await test_client.start_server()
        clients.append(test_client)
        return test_client

    yield factory
    for test_client in clients:
        await test_client.close()


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    """An HTTP client on the real application, at DEFAULT_NOW."""
    return await make_client()


@pytest.fixture
async def redis_url() -> str:
    """The test Redis URL, once it answers (skips loudly when absent, fails in CI)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as err:
        missing_service(f"Redis at {REDIS_URL} ({err})")
    finally:
        await client.aclose()
    return REDIS_URL

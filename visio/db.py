"""Database engines and units of work.

SQLite serialises writers: a write unit of work opens with ``BEGIN IMMEDIATE`` so the
overlap check and the insert happen under one write lock; reads use a deferred BEGIN.
PostgreSQL uses one engine for both; its exclusion constraints settle races.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from visio.settings import Settings


@dataclass(frozen=True, slots=True)
class Database:
    """The engines and session factories of one database."""

    url: str
    dialect: str
    read_engine: AsyncEngine
    write_engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work."""
        async with self.reader.begin() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write unit of work: commits on success, rolls back on any exception."""
        async with self.writer.begin() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def _sqlite_engine(url: str, begin: str) -> AsyncEngine:
    engine = create_async_engine(
        url, hide_parameters=True, connect_args={"timeout": 30}, pool_size=10, max_overflow=60
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver, so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def database_for(settings: Settings) -> Database:
    """The database ``settings`` name, with its connection budget."""
    return open_database(settings.database_url, connections=settings.database_connections)


def open_database(url: str, *, connections: int = 20) -> Database:
    """Create engines for ``url`` (``sqlite+aiosqlite`` or ``postgresql+asyncpg``); on
    PostgreSQL at most ``connections`` at once, half of them kept open."""
    # Every session then chains the audit entries it writes (imported here: the
    # services sit above this module).
    import visio.services.audit  # noqa: F401
    dialect = make_url(url).get_backend_name()
    if dialect == "sqlite":
        read_engine = _sqlite_engine(url, "BEGIN")
        write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE")
    else:
        # Parameters never reach logs or error messages: they carry personal data.
        kept = max(1, connections // 2)
        read_engine = write_engine = create_async_engine(
            url, hide_parameters=True, pool_size=kept, max_overflow=max(0, connections - kept),
            pool_pre_ping=True)
    return Database(
        url=url,
        dialect=dialect,
        read_engine=read_engine,
        write_engine=write_engine,
        reader=async_sessionmaker(read_engine, expire_on_commit=False),
        writer=async_sessionmaker(write_engine, expire_on_commit=False),
    )

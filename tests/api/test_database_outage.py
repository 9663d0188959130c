"""The database away: the API answers 503 problem+json with Retry-After (never a 500), a
page says so in words, /readyz answers 503, and everything comes back with the database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from tests.conftest import Client
from tests.factories import PASSWORD, make_site, make_user
from tests.notify.receivers import free_port
from visio.app import create_app
from visio.db import Database
from visio.settings import Settings


class TcpProxy:
    """A TCP relay to the database that the test cuts (every connection reset, new ones
    refused) and restores, as a network cut or a restarting server would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()
        await self._server.wait_closed()
        self._server = None

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links.difference_update((writer, up_writer))


@pytest.fixture
async def proxied(database_url: str, settings: Settings) -> AsyncIterator[
        tuple[TcpProxy, Client]]:
    """The real app on the test database through a proxy the test controls."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    app = create_app(dataclasses.replace(settings, database_url=through))
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    yield proxy, client
    await client.close()
    with contextlib.suppress(AssertionError):
        await proxy.cut()


async def _ready(client: Client, status: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while (await client.get("/readyz")).status != status:
        assert time.monotonic() < deadline, f"/readyz never answered {status}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_database_outage_is_a_503_with_retry_after_then_passes(
        db: Database, proxied: tuple[TcpProxy, Client]) -> None:
    """Cut from PostgreSQL, a signed-in agent's API call and page, and a login, are
    answered 503 with Retry-After and a sentence (problem+json for the API, a page in
    French for the browser); /readyz says 503; once the database is back, /readyz says 200
    and the same calls succeed, on the same process."""
    proxy, client = proxied
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    login = await client.post("/api/v1/auth/token",
                              json={"email": agent.email, "password": PASSWORD})
    assert login.status == 200
    bearer = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    form = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
    assert csrf is not None
    signed_in = await client.post("/login", allow_redirects=False, data={
        "email": agent.email, "password": PASSWORD, "csrf": csrf.group(1)})
    assert signed_in.status == 303
    await _ready(client, 200)

    await proxy.cut()
    api = await client.get("/api/v1/sites", headers=bearer)
    assert api.status == 503
    assert api.headers["Content-Type"] == "application/problem+json"
    assert api.headers["Retry-After"] == "5"
    problem = await api.json()
    assert problem["status"] == 503
    assert problem["type"].endswith("/unavailable")
    assert problem["detail"] == ("Le service est momentanément indisponible ; réessayez "
                                 "dans quelques secondes.")
    again = await client.post("/api/v1/auth/token", headers={"Accept-Language": "nl"},
                              json={"email": agent.email, "password": PASSWORD})
    assert again.status == 503
    assert (await again.json())["detail"] == (
        "De dienst is even niet beschikbaar; probeer het over enkele seconden opnieuw.")
    page = await client.get("/agent/today", headers={"Accept": "text/html"})
    assert page.status == 503
    assert page.headers["Retry-After"] == "5"
    assert page.headers["Content-Type"].startswith("text/html")
    assert "momentanément indisponible" in await page.text()
    await _ready(client, 503)
    assert (await client.get("/readyz")).headers["Retry-After"] == "5"

    await proxy.start()
    await _ready(client, 200)
    assert (await client.get("/api/v1/sites", headers=bearer)).status == 200
    assert (await client.get("/agent/today", headers={"Accept": "text/html"})).status == 200

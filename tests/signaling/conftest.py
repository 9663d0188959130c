"""Fixtures for the signaling package: keys, a fake host, servers, Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from signaling import SignalingConfig, create_signaling_app
from tests.signaling.sigsupport import (
    ORIGIN,
    FakeHost,
    Keys,
    ServerFactory,
)


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def room(host: FakeHost) -> str:
    appointment = "apt-" + secrets.token_hex(4)
    host.live.add(appointment)
    return appointment


@pytest.fixture
async def make_server(keys: Keys, host: FakeHost) -> AsyncIterator[ServerFactory]:
    """Start signaling instances sharing the test keys and host; stop them afterwards."""
    servers: list[TestServer] = []

    async def factory(**overrides: Any) -> TestServer:
        hooks = overrides.pop("hooks", host)
        # Test peers offer only private and loopback addresses: let the echo peer reach them.
        fields: dict[str, Any] = {"public_keys": keys.public_keys, "allowed_origins": (ORIGIN,),
                                  "echo_allow_private_candidates": True}
        fields.update(overrides)
        app = create_signaling_app(SignalingConfig(**fields), hooks)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield factory
    for server in reversed(servers):
        await server.close()


@pytest.fixture
def redis_prefix() -> str:
    return "visio-test:" + secrets.token_hex(6)


@pytest.fixture
async def redis_cleanup(redis_url: str, redis_prefix: str) -> AsyncIterator[None]:
    """Delete this test's keys afterwards."""
    yield
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys_found = [k async for k in client.scan_iter(match=redis_prefix + ":*")]
        if keys_found:
            await client.delete(*keys_found)
    finally:
        await client.aclose()


@pytest.fixture
def make_redis_server(
    make_server: ServerFactory, redis_url: str, redis_prefix: str, redis_cleanup: None
) -> ServerFactory:
    """Start instances linked by the test Redis under this test's own key prefix."""

    async def factory(**overrides: Any) -> TestServer:
        return await make_server(broker_url=redis_url, broker_prefix=redis_prefix, **overrides)

    return factory

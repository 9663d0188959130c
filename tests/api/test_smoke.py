"""The service answers and describes itself."""

import os

from tests.conftest import Client


async def test_healthz_answers(client: Client) -> None:
    """/healthz answers ok and names the process that answered."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json()) == {"status": "ok", "pid": os.getpid()}

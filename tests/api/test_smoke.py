"""The service answers and describes itself."""

from tests.conftest import Client


async def test_healthz_answers(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json()) == {"status": "ok"}

import httpx

from db import migrations
from db.engine import create_engine
from db.settings import Settings


async def test_healthz_answers_while_the_process_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_answers_ok_when_the_schema_is_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert (response.status_code, response.json()["schema"]) == (200, "head")


async def test_readyz_refuses_when_the_schema_is_behind(client: httpx.AsyncClient, settings: Settings) -> None:
    # given
    engine = create_engine(settings)
    await migrations.downgrade(engine, "base")
    await engine.dispose()

    # when
    response = await client.get("/readyz")

    # then
    assert (response.status_code, response.json()["schema"]) == (503, "not at head")

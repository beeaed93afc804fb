"""A request that cannot get a database connection in DB_POOL_TIMEOUT_SECONDS is answered SERVICE_UNAVAILABLE
(503, Retry-After), as coded JSON, whichever executor runs it: never a cancelled task's bare 500."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, text

from db.engine import Database
from db.settings import Settings
from graph.app import create_app
from tests.api import Api

# Several fields at the first level: the compiled executor steps their resolvers inside the request's task.
READS = "{ tasks(first: 5) { totalCount edges { node { id } } } dashboard { tasksByStatus { status count } } }"


@asynccontextmanager
async def every_connection_held(database: Database) -> AsyncIterator[None]:
    """What another request holds while it runs: the one connection of each pool."""
    async with AsyncExitStack() as stack:
        for engine in database.engines:
            connection = await stack.enter_async_context(engine.connect())
            await connection.execute(text("SELECT 1"))
        if database.driver_reads is not None:
            await stack.enter_async_context(database.one_read_connection())
            await database.prepared_rows(select(text("1")))
        yield


@pytest.fixture(params=[True, False], ids=["compiled", "graphql-core"])
async def one_connection_client(request: pytest.FixtureRequest, settings: Settings
                                ) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    tight = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 0.5,
                                        "compiled_execution": request.param})
    application = create_app(tight)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, application.state.database


async def test_a_request_that_waits_too_long_for_a_connection_is_told_to_retry(
    one_connection_client: tuple[httpx.AsyncClient, Database],
) -> None:
    # given: the pool's one connection is held by another request
    client, database = one_connection_client
    headers = {"authorization": f"Bearer {await Api(client, database).sign_up('ann@example.com')}"}
    # Her role is remembered now: the wait is the resolvers' own, not the token check's.
    assert (await client.post("/graphql", json={"query": READS}, headers=headers)).status_code == 200

    # when
    async with every_connection_held(database):
        response = await client.post("/graphql", json={"query": READS}, headers=headers)
    after = await client.post("/graphql", json={"query": READS}, headers=headers)

    # then
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"].startswith("application/json")
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert after.status_code == 200 and "errors" not in after.json()

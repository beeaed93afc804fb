"""A request past REQUEST_TIMEOUT_SECONDS ends with a coded SERVICE_UNAVAILABLE (503, Retry-After), its database
work cancelled, and the server answers the next request as before."""

from collections.abc import AsyncIterator
from time import monotonic

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from db.engine import Database
from db.settings import Settings
from graph.app import create_app

BUDGET_SECONDS = 1.0
REGISTER = 'mutation { register(email: "ann@example.com", password: "correct horse battery") { token } }'


@pytest.fixture
async def budgeted(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    application = create_app(settings.model_copy(update={"request_timeout_seconds": BUDGET_SECONDS}))
    async with LifespanManager(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as client:
            yield client, application.state.database


async def test_a_request_held_up_past_its_time_budget_is_told_to_retry(
    budgeted: tuple[httpx.AsyncClient, Database], backend: str
) -> None:
    # given: another transaction holds what the request must write
    client, database = budgeted
    async with database.write_sessions.kw["bind"].connect() as holder:
        # SQLite's write lock (the write engine begins with BEGIN IMMEDIATE); the table's lock on PostgreSQL.
        await holder.execute(text("SELECT 1" if backend == "sqlite" else "LOCK TABLE users IN EXCLUSIVE MODE"))

        # when
        started = monotonic()
        response = await client.post("/graphql", json={"query": REGISTER})
        took = monotonic() - started
        await holder.rollback()
    after = await client.post("/graphql", json={"query": REGISTER})

    # then
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert took < BUDGET_SECONDS + 2
    assert after.status_code == 200 and "errors" not in after.json()

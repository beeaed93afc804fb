"""A request past REQUEST_TIMEOUT_SECONDS ends with a coded SERVICE_UNAVAILABLE (503, Retry-After), its database
work cancelled, and the server answers the next request as before."""

from collections.abc import AsyncIterator
from time import monotonic

import httpx
import pytest

from db.engine import Database
from db.settings import Settings
from tests.held import registrations_held, served

BUDGET_SECONDS = 1.0
REGISTER = 'mutation { register(email: "ann@example.com", password: "correct horse battery") { token } }'


@pytest.fixture
async def budgeted(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    async with served(settings, request_timeout_seconds=BUDGET_SECONDS) as running:
        yield running


async def test_a_request_held_up_past_its_time_budget_is_told_to_retry(
    budgeted: tuple[httpx.AsyncClient, Database]
) -> None:
    # given: another transaction holds what the request must write
    client, database = budgeted
    async with registrations_held(database):
        # when
        started = monotonic()
        response = await client.post("/graphql", json={"query": REGISTER})
        took = monotonic() - started
    after = await client.post("/graphql", json={"query": REGISTER})

    # then
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert took < BUDGET_SECONDS + 2
    assert after.status_code == 200 and "errors" not in after.json()

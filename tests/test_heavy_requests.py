"""JSON bodies over HEAVY_REQUEST_BYTES take turns (HEAVY_REQUESTS_AT_ONCE per worker), and lighter requests
never wait for a turn: six analyses sent at once no longer hold the event loop together."""

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from db.engine import Database
from db.settings import Settings
from tests.held import registrations_held, served
from tests.test_metrics import scraped_until, value

HEAVY_BYTES = 4096
# Ignored characters: a document as heavy as a client cares to make it, without changing what it asks.
PADDING = " " * HEAVY_BYTES
REGISTER = 'mutation { register(email: "ann@example.com", password: "correct horse battery") { token } }'


@pytest.fixture
async def turns(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    async with served(settings, heavy_request_bytes=HEAVY_BYTES, metrics_enabled=True) as running:
        yield running


def heavy(state: str, count: int) -> Callable[[str], bool]:
    return lambda exposition: value(exposition, "auditgraph_heavy_requests", state=state) == count


async def test_a_heavy_body_waits_for_the_one_before_it_and_a_light_one_does_not(
    turns: tuple[httpx.AsyncClient, Database]
) -> None:
    client, database = turns
    async with registrations_held(database):
        # given: a heavy request held up inside its turn, by a lock on what it writes
        first = asyncio.create_task(client.post("/graphql", json={"query": REGISTER + PADDING}))
        await scraped_until(client, heavy("running", 1))

        # when: another heavy request and a light one arrive
        second = asyncio.create_task(client.post("/graphql", json={"query": "{ __typename }" + PADDING}))
        await scraped_until(client, heavy("waiting", 1))
        light = await client.post("/graphql", json={"query": "{ __typename }"})

        # then: the light one is answered while the heavy one waits its turn
        assert light.json() == {"data": {"__typename": "Query"}}
        assert not second.done()
    # and both heavy ones are answered once the first is done
    assert "token" in (await first).json()["data"]["register"]
    assert (await second).json() == {"data": {"__typename": "Query"}}
    await scraped_until(client, lambda exposition: heavy("waiting", 0)(exposition) and heavy("running", 0)(exposition))

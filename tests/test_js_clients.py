"""The JavaScript clients our users run, unmodified, against a live server: each flow is a script in tests/js.

Each script prints checkpoints where it waits for the test to write events, then one JSON result.
"""

from collections.abc import AsyncIterator

import pytest

from db.settings import Settings
from graph.relay import to_global_id
from tests.live import LiveServer, live_server
from tests.node import node_or_skip, node_script
from tests.seeding import account, progress, queued_task


@pytest.fixture(scope="session")
def node() -> str:
    return node_or_skip()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as running:
        yield running


def graphql_url(server: LiveServer) -> str:
    return f"http://127.0.0.1:{server.port}/graphql"


async def test_graphql_ws_receives_live_events_and_resumes_after_a_reconnect(server: LiveServer, node: str) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)

    async with node_script(node, "graphql_ws.mjs", GRAPHQL_URL=graphql_url(server), TOKEN=token,
                           TASK_ID=to_global_id("Task", task_id)) as script:
        # when: two events while connected, two while away, one after the resume
        await script.checkpoint("subscribed")
        await progress(server, task_id, 2)
        await script.proceed()
        await script.checkpoint("disconnected")
        await progress(server, task_id, 2)
        await script.proceed()
        await script.checkpoint("resumed")
        await progress(server, task_id, 1)
        await script.proceed()
        result = await script.result()

    # then: every event exactly once, in order
    assert result["firstConnection"] == [1, 2, 3]
    assert result["secondConnection"] == [4, 5, 6]

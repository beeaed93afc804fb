"""The README's client snippets (Apollo, urql, graphql-sse), run as written, get every event exactly once
across a restart of the API and across a move to another worker.

Each snippet is bundled from README.md itself (tests/js/lib/snippets.mjs) with a host that gives it the
address, the token and a `handle` that records each event (tests/js/resume/node_host.mjs). The API runs
as `auditgraph serve` in a child process, stopped with SIGTERM as a deploy stops it. Events are written
through the API while it is up and straight into the database while it is down (on SQLite no other
process could write then). A move to another worker needs a second process on the same database:
PostgreSQL only, as the embedded SQLite default is served by one process.
"""

import asyncio
import subprocess
from contextlib import suppress
from typing import Any

import pytest

from db.engine import Database
from db.settings import Settings
from graph.access.tokens import issue_token
from tests.factories import make_user
from tests.node import SCRIPTS, node_or_skip, node_script
from tests.relay import Relay, relay
from tests.restarts import Pipeline, Worker, workers

SNIPPETS = ("apollo", "urql", "graphql-sse")
# The whole flow, restarts included, on a machine busy with other tests.
SCRIPT_TIMEOUT_MS = "120000"


@pytest.fixture(scope="session")
def node() -> str:
    return node_or_skip()


@pytest.fixture(scope="session")
def bundles(node: str) -> dict[str, str]:
    """Each snippet with the Node host, bundled once: a path under tests/js."""
    paths = {}
    for name in SNIPPETS:
        paths[name] = f".bundles/{name}.mjs"
        subprocess.run([node, "resume/build.mjs", name, "resume/node_host.mjs", "node", paths[name]],
                       cwd=SCRIPTS, check=True, timeout=120)
    return paths


@pytest.fixture
async def pipeline(db: Database, settings: Settings) -> Pipeline:
    async with db.transaction() as session:
        owner = await make_user(session)
    return Pipeline(db, owner.id, issue_token(owner.id, settings)[0])


async def until_live(script: Any, pipeline: Pipeline, worker: Worker) -> int:
    """Writes an event now and then until the client has one (it subscribed from then on): its position."""
    async def feed() -> None:
        while True:
            await pipeline.through(worker)
            await asyncio.sleep(0.2)

    feeding = asyncio.create_task(feed())
    try:
        first: int = int((await script.checkpoint("live"))["first"])
    finally:
        feeding.cancel()
        with suppress(asyncio.CancelledError):
            await feeding
    return first


@pytest.mark.parametrize("snippet", SNIPPETS)
async def test_a_readme_snippet_gets_every_event_once_across_a_restart_of_the_api(
    node: str, bundles: dict[str, str], settings: Settings, pipeline: Pipeline, snippet: str
) -> None:
    async with workers(settings, 1) as (api,):
        async with node_script(node, bundles[snippet], GRAPHQL_URL=f"{api.url}/graphql",
                               TOKEN=pipeline.token, SCRIPT_TIMEOUT_MS=SCRIPT_TIMEOUT_MS) as script:
            # given: a client receiving live events
            first = await until_live(script, pipeline, api)
            await pipeline.through(api, 2)

            # when: the API is stopped, events are written meanwhile, it starts again and more are written
            await api.stop()
            await pipeline.directly(3)
            await api.start()
            await pipeline.through(api, 3)
            expected = await pipeline.log_from(first)
            await script.proceed(str(expected[-1]))
            result = await script.result()

    # then: every event since its first, once each, in order
    print(f"{snippet} across a restart: {len(expected)} events expected, {len(result['positions'])} received")
    assert len(expected) >= 9
    assert result["positions"] == expected


@pytest.mark.parametrize("snippet", SNIPPETS)
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_readme_snippet_gets_every_event_once_when_moved_to_another_worker(
    node: str, bundles: dict[str, str], settings: Settings, pipeline: Pipeline, snippet: str
) -> None:
    async with workers(settings, 2) as (first_worker, second_worker), relay(first_worker.port) as balancer:
        async with node_script(node, bundles[snippet], GRAPHQL_URL=balancer.url, TOKEN=pipeline.token,
                               SCRIPT_TIMEOUT_MS=SCRIPT_TIMEOUT_MS) as script:
            # given: a client receiving live events from the first worker, through a load balancer
            first = await until_live(script, pipeline, first_worker)
            await pipeline.through(first_worker, 2)

            # when: the balancer sends new connections to the second worker and the first one is stopped
            move(balancer, second_worker)
            await first_worker.stop()
            await pipeline.directly(3)
            await pipeline.through(second_worker, 3)
            expected = await pipeline.log_from(first)
            await script.proceed(str(expected[-1]))
            result = await script.result()

    # then
    print(f"{snippet} moved to another worker: {len(expected)} events expected, {len(result['positions'])} received")
    assert len(expected) >= 9
    assert result["positions"] == expected


def move(balancer: Relay, worker: Worker) -> None:
    balancer.upstream_port = worker.port

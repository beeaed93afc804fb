"""No connection outlives its request: refused fields, errors and cancellations mixed with concurrent reads,
on pools of one and two connections, leave every pool whole, the server answering, and SIGTERM in time."""

import asyncio
import itertools
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from db.engine import Database
from db.enums import Role
from db.settings import Settings
from graph.app import create_app
from tests.api import PASSWORD, Api
from tests.cli import free_port, run_cli, start_cli, wait_until_ready
from tests.factories import make_task, make_user

REQUESTS = 1000
IN_FLIGHT = 8
# A refused field beside others: the request ends on an error while its siblings' reads may still be starting.
REFUSED_BESIDE_READS = "{ users { totalCount edges { node { id email } } } me { id } }"
PLAIN = "{ me { id } tasks(first: 5) { totalCount edges { node { id status owner { id } } } } }"
FAILING = '{ me { id } node(id: "not-an-id") { id } tasks(first: 5) { edges { node { id } } } }'
EXIT_WAIT_SECONDS = 30
STORM_SECONDS = 180


def pools_in_use(database: Database) -> int:
    """Connections checked out of every pool the process holds."""
    taken = sum(engine.pool.checkedout() for engine in database.engines)  # type: ignore[attr-defined]
    return taken + (0 if database.driver_reads is None else database.driver_reads.in_use())


@pytest.fixture(params=[1, 2], ids=["pool-of-1", "pool-of-2"])
async def small_pool_app(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Starlette]:
    tight = settings.model_copy(update={"db_pool_size": request.param, "db_max_overflow": 0,
                                        "db_pool_timeout_seconds": 5.0})
    application = create_app(tight)
    async with LifespanManager(application):
        yield application


async def test_requests_that_fail_or_are_cancelled_leave_every_pool_whole(small_pool_app: Starlette) -> None:
    # given: a user, a worker, and tasks to read
    database: Database = small_pool_app.state.database
    async with database.transaction() as session:
        owner = await make_user(session)
        for _ in range(3):
            await make_task(session, owner)
    transport = httpx.ASGITransport(app=small_pool_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
        api = Api(client=client, database=database)
        tokens = [await api.sign_up("user@example.com"), await api.sign_up("worker@example.com", Role.WORKER)]
        shapes = itertools.cycle([(REFUSED_BESIDE_READS, None), (PLAIN, None), (FAILING, None),
                                  (REFUSED_BESIDE_READS, 0.0005), (PLAIN, 0.001)])
        statuses: list[int | str] = []
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(number: int) -> None:
            query, cancel_after = next(shapes)
            headers = {"authorization": f"Bearer {tokens[number % 2]}"}
            async with gate:
                call = client.post("/graphql", json={"query": query}, headers=headers)
                try:
                    response = await (call if cancel_after is None else asyncio.wait_for(call, cancel_after))
                except TimeoutError:
                    statuses.append("cancelled")
                    return
            if cancel_after is not None and response.status_code == 503:
                # Cancelled as the answer was written: a coded error, never a bare 500.
                assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
                statuses.append("cancelled")
            else:
                statuses.append(response.status_code)

        # when: bounded, as a leaked connection would leave the rest waiting on the pool
        await asyncio.wait_for(asyncio.gather(*(one(number) for number in range(REQUESTS))), STORM_SECONDS)
        await asyncio.sleep(0.2)  # hand-backs a late read scheduled

        # then
        leaked = pools_in_use(database)
        after = [await client.post("/graphql", json={"query": PLAIN}, headers={"authorization": f"Bearer {token}"})
                 for token in tokens * 2]
    assert leaked == 0
    assert set(statuses) <= {200, "cancelled"}
    assert statuses.count(200) > REQUESTS // 2
    assert [(response.status_code, "errors" in response.json()) for response in after] == [(200, False)] * 4


@pytest.fixture
def served(database_url: str, data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    environment = {"DATABASE_URL": database_url, "DATA_DIR": str(data_dir), "DB_POOL_SIZE": "1",
                   "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT_SECONDS": "2", "SHUTDOWN_TIMEOUT_SECONDS": "3",
                   # Its output goes to a pipe nobody reads while the storm lasts: a full pipe would stall it.
                   "LOG_LEVEL": "critical"}
    for email, role in (("user@example.com", "USER"), ("worker@example.com", "WORKER")):
        created = run_cli("create-user", "--email", email, "--role", role, input=PASSWORD + "\n", **environment)
        assert created.returncode == 0, created.stderr
    port = free_port()
    process = start_cli("serve", "--port", str(port), **environment)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", process)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_after_a_storm_of_failing_and_abandoned_requests_sigterm_ends_the_server_in_time(
    served: tuple[subprocess.Popen[str], int],
) -> None:
    # given: a server on a pool of one connection, after failing requests and requests the client gave up on
    process, port = served
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        api = Api(client=client, database=None)  # type: ignore[arg-type]
        tokens = [await api.login("user@example.com"), await api.login("worker@example.com")]
        shapes = itertools.cycle([(REFUSED_BESIDE_READS, None), (PLAIN, None), (FAILING, 0.002)])
        gate = asyncio.Semaphore(IN_FLIGHT)
        statuses: list[int | str] = []

        async def one(number: int) -> None:
            query, give_up_after = next(shapes)
            async with gate:
                call = client.post("/graphql", json={"query": query},
                                   headers={"authorization": f"Bearer {tokens[number % 2]}"})
                try:
                    statuses.append((await asyncio.wait_for(call, give_up_after)).status_code)
                except TimeoutError:
                    statuses.append("abandoned")

        await asyncio.gather(*(one(number) for number in range(300)))
        answers = (await client.post("/graphql", json={"query": PLAIN},
                                     headers={"authorization": f"Bearer {tokens[0]}"})).json()

    # when
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    exit_code = await asyncio.to_thread(process.wait, EXIT_WAIT_SECONDS)
    took = time.monotonic() - signalled

    # then: within the shutdown bound (3 s) and the pools' own (3 s), with room for a busy machine
    assert set(statuses) <= {200, "abandoned"}
    assert "errors" not in answers
    assert exit_code == -signal.SIGTERM
    assert took < 10

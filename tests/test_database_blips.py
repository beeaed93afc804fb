"""Live subscriptions ride out PostgreSQL dropping every connection: none ends, every event arrives once, in order.

Every backend of the database is terminated (as a failover, a restart or a
pooler recycling would drop them) again and again while a pipeline writes
events and subscribers listen over both WebSocket protocols and SSE.

PostgreSQL only: the embedded SQLite database is a file this process opens
itself, with no server whose connections could be dropped under a running
read; its only outage, a file that cannot be opened, meets new connections
alone (tests/test_database_down.py covers it).
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from db.errors import DatabaseUnavailable
from db.models import TaskEvent
from graph.relay import to_global_id
from tests.live import LEGACY_WS, TIMEOUT, TRANSPORT_WS, LiveServer, bearer, graphql_socket
from tests.seeding import account, database, progress, queued_task
from tests.test_sse import event_stream
from tests.throwaway_postgres import PostgresServer

TERMINATIONS = 8
EVENTS_BETWEEN_TERMINATIONS = 6
# A nested read per delivery too: a loader's, which rides out a blip like the stream's own reads.
MY_TASK_EVENTS = "subscription { myTaskEvents { position sequence taskId task { id status } } }"
TASK_EVENTS = "subscription($taskId: ID!) { taskEvents(taskId: $taskId) { position sequence taskId } }"
SSE = "sse"


@pytest.fixture
def backend() -> str:
    return "postgresql"


@dataclass
class Subscriber:
    """One live subscription: what it received, and why it ended if it did."""

    transport: str
    subscription: str
    received: list[int] = field(default_factory=list)
    ended: str | None = None

    def take(self, payload: dict[str, Any]) -> bool:
        if payload.get("errors") or not payload.get("data"):
            self.ended = str(payload)
            return False
        self.received.append(int(payload["data"][self.subscription]["position"]))
        return True


async def listen(server: LiveServer, token: str, subscriber: Subscriber, query: str,
                 variables: dict[str, Any], subscribed: asyncio.Event) -> None:
    if subscriber.transport == SSE:
        async with event_stream(server, token, query, variables) as (_, events):
            subscribed.set()
            async for event in events:
                if event.get("event") == "next":
                    if not subscriber.take(orjson.loads(event["data"])):
                        return
                elif event.get("event") == "complete":
                    subscriber.ended = "complete"
                    return
            subscriber.ended = "the stream closed"
        return
    async with graphql_socket(server.ws_url, subscriber.transport, bearer(token)) as socket:
        await socket.subscribe(query, variables)
        subscribed.set()
        while subscriber.take(await socket.next(timeout=3600)):
            pass


async def terminate_every_backend(server: PostgresServer, name: str) -> int:
    connection = await asyncpg.connect(server.dsn("postgres"))
    try:
        return len(await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = $1",
            name))
    finally:
        await connection.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT * 3):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"still waiting for {what}") from None


async def written_again(written: list[int]) -> None:
    target = len(written) + EVENTS_BETWEEN_TERMINATIONS
    await until(lambda: len(written) >= target, "the pipeline to write again")


def caught_up(subscriber: Subscriber, expected: int) -> Callable[[], bool]:
    return lambda: subscriber.ended is not None or len(subscriber.received) >= expected


async def pipeline(server: LiveServer, tasks: list[uuid.UUID], written: list[int], stop: asyncio.Event) -> None:
    """Progress reports round the tasks, as a worker sends them: one that meets the outage is sent again."""
    turn = 0
    while not stop.is_set():
        try:
            await progress(server, tasks[turn % len(tasks)])
        except DatabaseUnavailable:
            await asyncio.sleep(0.02)
            continue
        written.append(turn)
        turn += 1
        await asyncio.sleep(0.005)


async def log_of(server: LiveServer, task_ids: list[uuid.UUID]) -> list[tuple[int, uuid.UUID]]:
    rows = await database(server).rows(
        select(TaskEvent.position, TaskEvent.task_id).where(TaskEvent.task_id.in_(task_ids))
        .order_by(TaskEvent.position))
    return [(row[0], row[1]) for row in rows]


async def test_subscriptions_outlive_every_backend_being_terminated_again_and_again(
    server: LiveServer, postgres_server: PostgresServer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="auditgraph.outage")
    # given: a user's tasks, and their events watched over each transport, all tasks and one task
    owner, token = await account(server)
    tasks = [await queued_task(server, owner) for _ in range(3)]
    watched = to_global_id("Task", tasks[0])
    subscribers: list[tuple[Subscriber, str, dict[str, Any]]] = []
    for transport in (TRANSPORT_WS, LEGACY_WS, SSE):
        subscribers.append((Subscriber(transport, "myTaskEvents"), MY_TASK_EVENTS, {}))
        subscribers.append((Subscriber(transport, "taskEvents"), TASK_EVENTS, {"taskId": watched}))
    listening = []
    for subscriber, query, variables in subscribers:
        subscribed = asyncio.Event()
        listening.append(asyncio.create_task(listen(server, token, subscriber, query, variables, subscribed)))
        await asyncio.wait_for(subscribed.wait(), TIMEOUT)
    # A subscription opened without a position starts at the log's head: what was there before is not expected.
    start = (await log_of(server, tasks))[-1][0]
    written: list[int] = []
    stop = asyncio.Event()
    writing = asyncio.create_task(pipeline(server, tasks, written, stop))
    name = make_url(database_url).database
    assert name is not None
    terminated = []

    # when: every backend is terminated, each time once the pipeline has written again since the last
    try:
        for _ in range(TERMINATIONS):
            await written_again(written)
            terminated.append(await terminate_every_backend(postgres_server, name))
        await written_again(written)
    finally:
        stop.set()
        await writing
    log = [(position, task) for position, task in await log_of(server, tasks) if position > start]
    expected = {
        "myTaskEvents": [position for position, _ in log],
        "taskEvents": [position for position, task in log if task == tasks[0]],
    }
    try:
        for subscriber, _, _ in subscribers:
            await until(caught_up(subscriber, len(expected[subscriber.subscription])),
                        f"{subscriber.transport} {subscriber.subscription} to catch up")
    finally:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)

    retried = sum("trying again" in record.getMessage() for record in caplog.records)
    print(f"{TERMINATIONS} terminations of {terminated} backends; {len(log)} events, {retried} reads retried; "
          + ", ".join(f"{s.transport} {s.subscription}: {len(s.received)} received, ended: {s.ended}"
                      for s, _, _ in subscribers))

    # then: each termination dropped the server's connections (its listener's at least) and met reads, and yet
    assert all(count >= 1 for count in terminated), terminated
    assert retried >= 1
    # no subscription ended, and each received every event once, in log order
    assert [(s.transport, s.subscription, s.ended) for s, _, _ in subscribers] == [
        (s.transport, s.subscription, None) for s, _, _ in subscribers]
    for subscriber, _, _ in subscribers:
        assert subscriber.received == expected[subscriber.subscription], (subscriber.transport, subscriber.subscription)
    assert server.app.state.broker.reconnects >= TERMINATIONS

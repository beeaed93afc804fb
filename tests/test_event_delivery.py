"""Every event exactly once, whatever happens between the workers and PostgreSQL: a worker cut off from the
database while another keeps writing, and subscribers whose inbox overflows. Two real uvicorn servers on one
PostgreSQL; subscribers on both WebSocket protocols and on Server-Sent Events."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, cast

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from db.engine import Database
from db.enums import EventType, Role
from db.events import append_event, log_head
from db.models import Task, TaskEvent, User
from db.settings import Settings
from graph.access.tokens import issue_token
from graph.live.broker import Inbox
from graph.relay import to_global_id
from tests.conftest import make_settings
from tests.factories import make_task, make_user
from tests.live import LEGACY_WS, TRANSPORT_WS, LiveServer, bearer, graphql_socket, live_server
from tests.tcp_proxy import CuttableProxy
from tests.test_sse import parse_events

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

MY_TASK_EVENTS = "subscription($after: BigInt) { myTaskEvents(afterPosition: $after) { position sequence taskId } }"
WAIT_SECONDS = 60.0
Received = list[tuple[int, str, int]]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT_SECONDS) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


def as_received(event: dict[str, Any]) -> tuple[int, str, int]:
    return int(event["position"]), event["taskId"], event["sequence"]


@asynccontextmanager
async def websocket_subscriber(server: LiveServer, protocol: str, token: str, after: int) -> AsyncIterator[Received]:
    """Everything a myTaskEvents subscription over a WebSocket receives, as it arrives."""
    received: Received = []
    async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(MY_TASK_EVENTS, {"after": str(after)})

        async def collect() -> None:
            while True:
                payload = await socket.next(timeout=WAIT_SECONDS * 2)
                assert "errors" not in payload, payload
                received.append(as_received(payload["data"]["myTaskEvents"]))

        collector = asyncio.create_task(collect())
        try:
            yield received
        finally:
            collector.cancel()


@asynccontextmanager
async def sse_subscriber(server: LiveServer, token: str, after: int) -> AsyncIterator[Received]:
    """The same over Server-Sent Events."""
    received: Received = []
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {token}"}
    body = {"query": MY_TASK_EVENTS, "variables": {"after": str(after)}}
    async with httpx.AsyncClient(timeout=WAIT_SECONDS * 2) as client, \
            client.stream("POST", f"http://127.0.0.1:{server.port}/graphql", headers=headers, json=body) as response:

        async def collect() -> None:
            async for event in parse_events(response):
                if event.get("event") == "next":
                    received.append(as_received(orjson.loads(event["data"])["data"]["myTaskEvents"]))

        collector = asyncio.create_task(collect())
        try:
            yield received
        finally:
            collector.cancel()


class Scene:
    """The owners, their tasks and the writes of the worker that keeps its database."""

    def __init__(self, writer: Database, settings: Settings) -> None:
        self.writer = writer
        self.settings = settings
        self.owners: list[User] = []
        self.worker: User | None = None
        self.tasks: dict[uuid.UUID, list[uuid.UUID]] = {}

    async def cast(self) -> None:
        async with self.writer.transaction() as session:
            self.owners = [await make_user(session), await make_user(session)]
            self.worker = await make_user(session, role=Role.WORKER)
            for owner in self.owners:
                self.tasks[owner.id] = [(await make_task(session, owner)).id]

    def token(self, user: User) -> str:
        return issue_token(user.id, self.settings)[0]

    async def head(self) -> int:
        async with self.writer.read() as connection:
            return await log_head(connection)

    async def one_event_per_owner(self) -> None:
        async with self.writer.transaction() as session:
            for tasks in self.tasks.values():
                await append_event(session, tasks[0], EventType.PROGRESS)

    async def busy_writing(self, new_tasks: int, events_per_task: int) -> None:
        """New tasks for every owner and events on them, one transaction each, then a burst in one."""
        for owner in self.owners:
            for _ in range(new_tasks):
                async with self.writer.transaction() as session:
                    task = await make_task(session, owner)
                self.tasks[owner.id].append(task.id)
                for step in range(events_per_task):
                    async with self.writer.transaction() as session:
                        await append_event(session, task.id, EventType.PROGRESS, {"step": step})
        async with self.writer.transaction() as session:
            for tasks in self.tasks.values():
                for task_id in tasks:
                    await append_event(session, task_id, EventType.PROGRESS, {"burst": True})

    async def log_after(self, position: int, owner: User | None) -> Received:
        """What a subscriber that resumed after `position` must receive: every event it may see, once, in order."""
        statement = (
            select(TaskEvent.position, TaskEvent.task_id, TaskEvent.sequence)
            .join(Task, Task.id == TaskEvent.task_id)
            .where(TaskEvent.position > position)
            .order_by(TaskEvent.position)
        )
        if owner is not None:
            statement = statement.where(Task.user_id == owner.id)
        async with self.writer.sessions() as session:
            rows = (await session.execute(statement)).all()
        # A committed event always has its position.
        return [(cast(int, position), to_global_id("Task", task_id), sequence) for position, task_id, sequence in rows]


@asynccontextmanager
async def subscribers(server: LiveServer, scene: Scene, after: int) -> AsyncIterator[dict[str, Received]]:
    """A WORKER on graphql-transport-ws, one owner on legacy graphql-ws, the other on SSE; all on `server`."""
    first, second = scene.owners
    assert scene.worker is not None
    async with AsyncExitStack() as stack:
        yield {
            "worker": await stack.enter_async_context(
                websocket_subscriber(server, TRANSPORT_WS, scene.token(scene.worker), after)),
            "first owner": await stack.enter_async_context(
                websocket_subscriber(server, LEGACY_WS, scene.token(first), after)),
            "second owner": await stack.enter_async_context(sse_subscriber(server, scene.token(second), after)),
        }


async def every_subscriber_has_exactly(scene: Scene, received: dict[str, Received], after: int) -> None:
    """Waits until each subscriber holds as many events as the log has for it, then compares them whole."""
    first, second = scene.owners
    expected = {
        "worker": await scene.log_after(after, None),
        "first owner": await scene.log_after(after, first),
        "second owner": await scene.log_after(after, second),
    }

    async def all_arrived() -> bool:
        return all(len(received[name]) >= len(events) for name, events in expected.items())

    await eventually(all_arrived)
    assert received == expected
    for events in received.values():
        sequences: dict[str, list[int]] = {}
        for _, task_id, sequence in events:
            sequences.setdefault(task_id, []).append(sequence)
        assert all(numbers == sorted(set(numbers)) for numbers in sequences.values())


async def readiness(server: LiveServer) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/readyz")
    return response.status_code, response.json()


async def test_subscribers_on_a_worker_cut_off_from_the_database_receive_every_event_once_after_it_heals(
    settings: Settings,
) -> None:
    # given: worker A reaches PostgreSQL through a proxy that can cut it off; worker B directly
    url = make_url(settings.database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    cut_off_settings = make_settings(url.set(port=proxy.port).render_as_string(hide_password=False),
                                     settings.data_dir)
    try:
        async with live_server(cut_off_settings) as cut_off, live_server(settings) as writer:
            scene = Scene(writer.app.state.database, settings)
            await scene.cast()
            start = await scene.head()
            async with subscribers(cut_off, scene, start) as received:
                await scene.one_event_per_owner()

                async def subscribed() -> bool:
                    return all(len(events) >= (2 if name == "worker" else 1) for name, events in received.items())

                await eventually(subscribed)

                # when: A loses the database while B writes, then A's connection heals
                proxy.cut()

                async def not_listening() -> bool:
                    return (await readiness(cut_off))[1]["events"] == "not listening"

                await eventually(not_listening)
                cut_off_readiness = await readiness(cut_off)
                await scene.busy_writing(new_tasks=30, events_per_task=2)
                proxy.heal()

                async def ready() -> bool:
                    return (await readiness(cut_off))[0] == 200

                await eventually(ready)

                # then: nothing new needs to be written for what was missed to arrive
                assert cut_off_readiness[0] == 503
                await every_subscriber_has_exactly(scene, received, start)
    finally:
        await proxy.stop()


async def test_subscribers_whose_inbox_overflows_receive_every_event_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: worker A's subscribers hold at most one notice each; worker B writes in bursts
    dropped: list[object] = []
    offer = Inbox.offer

    def counting_offer(inbox: Inbox, notice: Any) -> None:
        if inbox.full:
            dropped.append(notice)
        offer(inbox, notice)

    monkeypatch.setattr(Inbox, "offer", counting_offer)
    tiny_inboxes = make_settings(settings.database_url, settings.data_dir, subscriber_inbox_size=1)
    async with live_server(tiny_inboxes) as reader, live_server(settings) as writer:
        scene = Scene(writer.app.state.database, settings)
        await scene.cast()
        start = await scene.head()
        async with subscribers(reader, scene, start) as received:
            # when: eight writers at once, so notices keep coming while subscribers read
            await asyncio.gather(*(scene.busy_writing(new_tasks=3, events_per_task=4) for _ in range(8)))

            # then
            await every_subscriber_has_exactly(scene, received, start)
    assert dropped, "no inbox overflowed: the test did not test what it says"

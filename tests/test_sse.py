"""Subscriptions over Server-Sent Events against a real uvicorn: ids, Last-Event-ID resume, refusals."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from db.enums import EventType, Role
from db.events import append_event
from db.models import Task, TaskEvent, User
from graph.access.tokens import issue_token
from graph.relay import to_global_id
from tests.factories import make_task, make_user
from tests.live import TIMEOUT, LiveServer

TASK_EVENTS = "subscription($taskId: ID!, $after: Int) { taskEvents(taskId: $taskId, afterSequence: $after) { sequence type } }"
MY_TASK_EVENTS = "subscription { myTaskEvents { sequence type taskId } }"


@asynccontextmanager
async def event_stream(server: LiveServer, token: str, query: str, variables: dict[str, Any] | None = None,
                       last_event_id: str | None = None, method: str = "POST") -> AsyncIterator[Any]:
    """The response of an SSE subscription, and an iterator of its events as {"event", "id", "data"}."""
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    url = f"http://127.0.0.1:{server.port}/graphql"
    request: dict[str, Any] = {"json": {"query": query, "variables": variables or {}}} if method == "POST" else {
        "params": {"query": query, "variables": orjson.dumps(variables or {}).decode()}}
    async with httpx.AsyncClient(timeout=TIMEOUT) as client, \
            client.stream(method, url, headers=headers, **request) as response:
        yield response, parse_events(response)


async def parse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue  # a heartbeat comment
        if not line:
            if event:
                yield event
            event = {}
            continue
        field, _, value = line.partition(":")
        event[field] = value.removeprefix(" ")


async def next_events(events: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    received = []
    for _ in range(count):
        event = await asyncio.wait_for(anext(events), TIMEOUT)
        received.append({**event, "data": orjson.loads(event["data"]) if event.get("data") else None})
    return received


async def owner_with_task(server: LiveServer) -> tuple[str, uuid.UUID]:
    async with server.app.state.database.transaction() as session:
        owner = await make_user(session)
        task = await make_task(session, owner)
    return issue_token(owner.id, server.app.state.settings)[0], task.id


async def progress(server: LiveServer, task_id: uuid.UUID, count: int) -> None:
    async with server.app.state.database.transaction() as session:
        for step in range(count):
            await append_event(session, task_id, EventType.PROGRESS, {"step": step})


async def test_each_sse_event_carries_its_sequence_as_its_id(server: LiveServer) -> None:
    # given
    token, task_id = await owner_with_task(server)
    variables = {"taskId": to_global_id("Task", task_id), "after": 0}

    async with event_stream(server, token, TASK_EVENTS, variables) as (response, events):
        # when: the stored CREATED event, then two live ones
        first = await next_events(events, 1)
        await progress(server, task_id, 2)
        live = await next_events(events, 2)

    # then
    assert response.headers["content-type"].startswith("text/event-stream")
    assert [(e["event"], e["id"], e["data"]["data"]["taskEvents"]["sequence"]) for e in first + live] == [
        ("next", "1", 1), ("next", "2", 2), ("next", "3", 3),
    ]


async def test_a_reconnect_with_last_event_id_resumes_with_no_gap_and_no_duplicate(server: LiveServer) -> None:
    # given: a client that saw events up to id 2, then lost its connection while three more were written
    token, task_id = await owner_with_task(server)
    await progress(server, task_id, 4)
    variables = {"taskId": to_global_id("Task", task_id)}

    # when: it reconnects as an EventSource does (GET, Last-Event-ID)
    async with event_stream(server, token, TASK_EVENTS, variables, last_event_id="2", method="GET") as (_, events):
        resumed = await next_events(events, 3)
        await progress(server, task_id, 1)
        resumed += await next_events(events, 1)

    # then
    assert [e["id"] for e in resumed] == ["3", "4", "5", "6"]


async def test_a_last_event_id_that_is_no_sequence_is_a_coded_error(server: LiveServer) -> None:
    token, task_id = await owner_with_task(server)

    async with event_stream(server, token, TASK_EVENTS, {"taskId": to_global_id("Task", task_id)},
                            last_event_id="yesterday") as (_, events):
        error, complete = await next_events(events, 2)

    assert error["data"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert complete["event"] == "complete"


async def test_a_refused_token_is_a_401_before_the_stream_opens(server: LiveServer) -> None:
    async with event_stream(server, "not-a-token", MY_TASK_EVENTS) as (response, _):
        body = orjson.loads(await response.aread())

    assert response.status_code == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_my_task_events_stream_over_sse(server: LiveServer) -> None:
    # given
    token, task_id = await owner_with_task(server)
    async with server.app.state.database.transaction() as session:
        stranger_task = await make_task(session, await make_user(session, role=Role.USER))

    async with event_stream(server, token, MY_TASK_EVENTS) as (_, events):
        # when: events on someone else's task and on the viewer's, until the subscription has one
        first = asyncio.ensure_future(anext(events))
        for _ in range(50):
            await progress(server, stranger_task.id, 1)
            await progress(server, task_id, 1)
            if (await asyncio.wait({first}, timeout=0.2))[0]:
                break
        received = orjson.loads(first.result()["data"])["data"]["myTaskEvents"]

    # then: the viewer's own event, never the stranger's
    assert (received["type"], received["taskId"]) == ("PROGRESS", to_global_id("Task", task_id))


async def test_my_task_events_over_sse_carry_log_positions_and_resume_after_last_event_id(
    server: LiveServer,
) -> None:
    # given: a user with two tasks and events on both; a client saw up to the first task's CREATED
    token, first = await owner_with_task(server)
    async with server.app.state.database.transaction() as session:
        second = (await make_task(session, await owner_of(server, first))).id
    await progress(server, first, 1)
    await progress(server, second, 1)
    query = "subscription { myTaskEvents { position sequence taskId } }"
    seen = await position_of(server, first, 1)

    # when: it reconnects with the position it saw as Last-Event-ID
    async with event_stream(server, token, query, last_event_id=str(seen), method="GET") as (_, events):
        resumed = await next_events(events, 3)

    # then: the three later events, each with its position as its id
    assert [(e["id"], e["data"]["data"]["myTaskEvents"]["position"]) for e in resumed] == [
        (str(seen + n), str(seen + n)) for n in (1, 2, 3)
    ]
    assert [e["data"]["data"]["myTaskEvents"]["taskId"] for e in resumed] == [
        to_global_id("Task", second), to_global_id("Task", first), to_global_id("Task", second),
    ]


async def owner_of(server: LiveServer, task_id: uuid.UUID) -> Any:
    async with server.app.state.database.sessions() as session:
        task = await session.get(Task, task_id)
        return await session.get(User, task.user_id)


async def position_of(server: LiveServer, task_id: uuid.UUID, sequence: int) -> int:
    async with server.app.state.database.sessions() as session:
        return await session.scalar(select(TaskEvent.position).where(
            TaskEvent.task_id == task_id, TaskEvent.sequence == sequence))

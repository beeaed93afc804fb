"""Log positions: gap-free, in commit order, and an exact resume point across any number of tasks."""

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from db import migrations
from db.engine import Database, create_engine
from db.enums import EventType, Role
from db.events import append_event
from db.models import TaskEvent
from db.settings import Settings
from graph.access.tokens import issue_token
from graph.relay import to_global_id
from tests.conftest import make_settings
from tests.factories import make_task, make_user, task_at_old_revision
from tests.live import PROTOCOLS, bearer, graphql_socket, live_server

MY_TASK_EVENTS = """
subscription($after: BigInt) { myTaskEvents(afterPosition: $after) { position sequence taskId } }
"""


async def positions(db: Database) -> list[tuple[int, uuid.UUID, int]]:
    async with db.sessions() as session:
        rows = await session.execute(select(TaskEvent.position, TaskEvent.task_id, TaskEvent.sequence)
                                     .order_by(TaskEvent.position))
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_concurrent_writers_get_gap_free_positions_in_each_task_s_order(db: Database) -> None:
    # given
    async with db.transaction() as session:
        owner = await make_user(session)
        tasks = [(await make_task(session, owner)).id for _ in range(4)]

    # when: sixteen writers at once, four to a task
    async def write(task_id: uuid.UUID) -> None:
        async with db.transaction() as session:
            await append_event(session, task_id, EventType.PROGRESS)
            await append_event(session, task_id, EventType.PROGRESS)

    await asyncio.gather(*(write(task_id) for task_id in tasks * 4))

    # then
    log = await positions(db)
    assert [position for position, _, _ in log] == list(range(1, 4 + 16 * 2 + 1))
    for task_id in tasks:
        assert [sequence for _, task, sequence in log if task == task_id] == list(range(1, 10))


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_transaction_that_commits_later_takes_a_later_position_than_one_that_began_after_it(
    db: Database,
) -> None:
    # given: two tasks
    async with db.transaction() as session:
        owner = await make_user(session)
        first, second = (await make_task(session, owner)).id, (await make_task(session, owner)).id

    # when: a writer begins and writes, another begins after it and commits first
    async with db.transaction() as slow:
        await append_event(slow, first, EventType.PROGRESS)
        async with db.transaction() as quick:
            await append_event(quick, second, EventType.PROGRESS)
        after_quick = await positions(db)

    # then: a reader that saw the quick one's position can resume after it and miss nothing
    assert after_quick[-1][1:] == (second, 2)
    log = await positions(db)
    assert log[-1][1:] == (first, 2) and log[-1][0] == after_quick[-1][0] + 1


async def test_an_upgrade_numbers_events_written_before_positions_existed(
    empty_database_url: str, data_dir: Path
) -> None:
    # given: a database at the first revision with events in it
    engine = create_engine(make_settings(empty_database_url, data_dir))
    await migrations.upgrade(engine, "cc301cf8f465")
    async with engine.begin() as connection:
        task_id = await task_at_old_revision(connection, "QUEUED", last_event_sequence=3)
        await connection.execute(insert(TaskEvent), [
            {"id": uuid.uuid4(), "task_id": task_id, "sequence": sequence, "type": "PROGRESS", "data": {},
             "created_at": datetime(2026, 1, sequence, tzinfo=UTC)}
            for sequence in (3, 1, 2)
        ])

    # when
    await migrations.upgrade(engine)

    # then
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT sequence, position FROM task_events ORDER BY sequence"))).all()
    await engine.dispose()
    assert [tuple(row) for row in rows] == [(1, 1), (2, 2), (3, 3)]  # by when they were written


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_my_task_events_resume_after_a_position_across_more_than_a_hundred_tasks(
    settings: Settings, protocol: str
) -> None:
    async with live_server(settings) as server:
        database: Database = server.app.state.database
        # given: a worker that last saw position P; then events on 150 tasks were written
        async with database.transaction() as session:
            worker = await make_user(session, role=Role.WORKER)
            owner = await make_user(session)
            first = await make_task(session, owner)
        seen = (await positions(database))[-1][0]
        async with database.transaction() as session:
            for _ in range(150):
                await make_task(session, owner)
            await append_event(session, first.id, EventType.PROGRESS)
        token = issue_token(worker.id, server.app.state.settings)[0]

        # when: it resumes after P
        async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
            await socket.subscribe(MY_TASK_EVENTS, {"after": str(seen)})
            received: list[dict[str, Any]] = []
            for _ in range(151):
                payload = await socket.next()
                received.append(payload["data"]["myTaskEvents"])
            # and a live one follows
            async with database.transaction() as session:
                await append_event(session, first.id, EventType.PROGRESS)
            received.append((await socket.next())["data"]["myTaskEvents"])
            assert await socket.silent()

    # then: every event after P exactly once, in log order
    assert [int(event["position"]) for event in received] == list(range(seen + 1, seen + 153))
    assert len({event["taskId"] for event in received}) == 151


TASK_EVENTS = "subscription($taskId: ID!, $after: Int) { taskEvents(taskId: $taskId, afterSequence: $after) { sequence } }"


async def owner_with_logged_task(server: Any, progress_events: int) -> tuple[str, uuid.UUID, list[int]]:
    """A token, a task with CREATED and that many PROGRESS events, and the positions of its events."""
    database: Database = server.app.state.database
    async with database.transaction() as session:
        owner = await make_user(session)
        task = await make_task(session, owner)
    for _ in range(progress_events):
        async with database.transaction() as session:
            await append_event(session, task.id, EventType.PROGRESS)
    log = [position for position, task_id, _ in await positions(database) if task_id == task.id]
    return issue_token(owner.id, server.app.state.settings)[0], task.id, log


async def test_a_position_carried_in_the_connection_parameters_resumes_subscriptions_that_name_none(
    settings: Settings, protocol: str
) -> None:
    async with live_server(settings) as server:
        # given: a client that handled the task's second event, then reconnected saying so
        token, task_id, log = await owner_with_logged_task(server, 4)
        params = {**bearer(token), "afterPosition": str(log[1])}

        # when: it resubscribes with the variables it first subscribed with (none)
        async with graphql_socket(server.ws_url, protocol, params) as socket:
            await socket.subscribe(MY_TASK_EVENTS)
            mine = [(await socket.next())["data"]["myTaskEvents"]["position"] for _ in range(3)]
            await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id)})
            task = [(await socket.next())["data"]["taskEvents"]["sequence"] for _ in range(3)]
            assert await socket.silent()

    # then: both resume right after that event
    assert [int(position) for position in mine] == log[2:]
    assert task == [3, 4, 5]


@pytest.mark.parametrize(("carried", "named"), [(3, 1), (1, 3)])
async def test_a_subscription_with_a_position_of_its_own_and_a_carried_one_resumes_after_the_later(
    settings: Settings, protocol: str, carried: int, named: int
) -> None:
    async with live_server(settings) as server:
        # given
        token, task_id, log = await owner_with_logged_task(server, 4)
        params = {**bearer(token), "afterPosition": log[carried]}

        # when: a client re-sends its first subscription's variables, having handled more since
        async with graphql_socket(server.ws_url, protocol, params) as socket:
            await socket.subscribe(MY_TASK_EVENTS, {"after": str(log[named])})
            received = [int((await socket.next())["data"]["myTaskEvents"]["position"]) for _ in range(4 - max(named, carried))]
            await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id), "after": named + 1})
            sequences = [(await socket.next())["data"]["taskEvents"]["sequence"] for _ in range(4 - max(named, carried))]
            assert await socket.silent()

    # then
    assert received == log[max(named, carried) + 1:]
    assert sequences == list(range(max(named, carried) + 2, 6))


@pytest.mark.parametrize("carried", [-1, "1e3", True, {"position": 1}, str(2**63)])
async def test_a_carried_position_that_is_no_position_is_bad_input(
    settings: Settings, protocol: str, carried: Any
) -> None:
    async with live_server(settings) as server:
        # given
        token, _, _ = await owner_with_logged_task(server, 0)

        # when
        async with graphql_socket(server.ws_url, protocol, {**bearer(token), "afterPosition": carried}) as socket:
            await socket.subscribe(MY_TASK_EVENTS)
            refused = await socket.next()

    # then
    assert [error["extensions"]["code"] for error in refused["errors"]] == ["BAD_USER_INPUT"]


async def test_a_carried_position_stands_in_for_the_replay_since_asks_for(settings: Settings, protocol: str) -> None:
    async with live_server(settings) as server:
        # given: a client that first subscribed with `since` and has handled up to the third event since
        token, _, log = await owner_with_logged_task(server, 4)
        params = {**bearer(token), "afterPosition": str(log[2])}

        # when: it resubscribes with the same variables
        async with graphql_socket(server.ws_url, protocol, params) as socket:
            await socket.subscribe("subscription($since: DateTime) { myTaskEvents(since: $since) { position } }",
                                   {"since": "2000-01-01T00:00:00Z"})
            received = [int((await socket.next())["data"]["myTaskEvents"]["position"]) for _ in range(2)]
            assert await socket.silent()

    # then: only what came after it
    assert received == log[3:]

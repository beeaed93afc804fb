"""Leases run out: the service itself requeues a task whose worker fell silent, fails it after the last
attempt, and the silent worker's late writes are refused. Real uvicorn servers; two on PostgreSQL."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, text, update

from db import migrations
from db.base import utcnow
from db.engine import Database, create_engine
from db.enums import EventType, Role, TaskStatus
from db.leases import requeue_expired_leases
from db.models import Task, TaskEvent
from db.settings import Settings
from db.tasks import claim_next_task
from tests.api import Api, error_codes
from tests.conftest import make_settings
from tests.factories import make_task, make_user, task_at_old_revision
from tests.live import TIMEOUT, LiveServer, live_server
from tests.rows import snapshot

CLAIM = "mutation { claimNextTask { claimId attempt task { id } } }"
REPORT_PROGRESS = """
mutation($t: ID!, $c: ID!, $p: Int!) { reportProgress(taskId: $t, claimId: $c, percent: $p) { event { sequence } } }
"""
RECORD = """
mutation($t: ID!, $c: ID, $verdict: Verdict!) {
  recordAnalysis(input: {taskId: $t, claimId: $c, verdict: $verdict}) { analysis { verdict } }
}
"""
COMPLETE = """
mutation($t: ID!, $c: ID) { updateTaskStatus(taskId: $t, status: COMPLETED, claimId: $c) { task { status } } }
"""
TASK = """
query($t: ID!) {
  task(id: $t) { status errorMessage analysis { verdict } events { edges { node { type data } } } }
}
"""
# The service looks for lapsed leases this often in these tests; no assertion depends on it.
CHECK_SECONDS = 0.05


def with_leases(settings: Settings, lease_seconds: float, **overrides: Any) -> Settings:
    return make_settings(settings.database_url, settings.data_dir, lease_seconds=lease_seconds,
                         lease_check_seconds=CHECK_SECONDS, **overrides)


@asynccontextmanager
async def http_api(server: LiveServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=TIMEOUT) as client:
        yield Api(client=client, database=server.app.state.database)


async def eventually(read: Callable[[], Awaitable[Any]], wanted: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    """Poll `read()` until its value is `wanted` (bounded: a hang fails the test instead of stalling it)."""
    async with asyncio.timeout(timeout):
        while not wanted(value := await read()):
            await asyncio.sleep(0.05)
    return value


async def task_view(api: Api, token: str, task_id: str) -> dict[str, Any]:
    return (await api.data(TASK, {"t": task_id}, token))["task"]


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_task_whose_worker_dies_is_requeued_by_another_server_and_completed_by_another_worker(
    settings: Settings,
) -> None:
    async with AsyncExitStack() as stack, AsyncExitStack() as first_server:
        # given: two servers on one database; the first hands out short leases (long enough for one report)
        first = await first_server.enter_async_context(live_server(with_leases(settings, 3)))
        api_a = await first_server.enter_async_context(http_api(first))
        second = await stack.enter_async_context(live_server(with_leases(settings, 60)))
        api_b = await stack.enter_async_context(http_api(second))
        owner = await api_a.sign_up("owner@example.com")
        doomed = await api_a.sign_up("doomed@example.com", Role.WORKER)
        survivor = await api_b.sign_up("survivor@example.com", Role.WORKER)
        submitted = await api_a.data('mutation { submitUrl(url: "https://example.com/") { task { id } } }',
                                     token=owner)
        task_id = submitted["submitUrl"]["task"]["id"]

        # when: a worker claims the task through the first server, reports once, and dies with that server
        dead_claim = (await api_a.data(CLAIM, token=doomed))["claimNextTask"]
        await api_a.data(REPORT_PROGRESS, {"t": task_id, "c": dead_claim["claimId"], "p": 30}, doomed)
        await first_server.aclose()
        requeued = await eventually(lambda: task_view(api_b, owner, task_id), lambda t: t["status"] == "QUEUED")
        new_claim = (await api_b.data(CLAIM, token=survivor))["claimNextTask"]
        before_late_write = await snapshot(api_b.database)
        late = await api_b.post(RECORD, {"t": task_id, "c": dead_claim["claimId"], "verdict": "REJECTED"}, doomed)
        after_late_write = await snapshot(api_b.database)
        await api_b.data(RECORD, {"t": task_id, "c": new_claim["claimId"], "verdict": "APPROVED"}, survivor)
        await api_b.data(COMPLETE, {"t": task_id, "c": new_claim["claimId"]}, survivor)
        done = await task_view(api_b, owner, task_id)

    # then
    assert requeued["events"]["edges"][-1]["node"] == {
        "type": "STATUS_CHANGED",
        "data": {"from": "PROCESSING", "to": "QUEUED", "reason": "LEASE_EXPIRED", "attempt": 1},
    }
    assert (new_claim["task"]["id"], new_claim["attempt"]) == (task_id, 2)
    assert error_codes(late) == ["CONFLICT"]
    assert after_late_write == before_late_write
    assert (done["status"], done["analysis"]) == ("COMPLETED", {"verdict": "APPROVED"})


@pytest.fixture
async def short_leases(settings: Settings) -> AsyncIterator[tuple[LiveServer, Api]]:
    async with live_server(with_leases(settings, 0.2, max_attempts=2)) as server, http_api(server) as api:
        yield server, api


async def test_a_task_whose_lease_expires_on_its_last_attempt_fails_with_the_reason(
    short_leases: tuple[LiveServer, Api],
) -> None:
    # given
    _, api = short_leases
    owner = await api.sign_up("owner@example.com")
    worker = await api.sign_up("pipeline@example.com", Role.WORKER)
    submitted = await api.data('mutation { submitUrl(url: "https://example.com/") { task { id } } }', token=owner)
    task_id = submitted["submitUrl"]["task"]["id"]

    # when: two claims in turn, and neither worker is heard from again
    await api.data(CLAIM, token=worker)
    await eventually(lambda: task_view(api, owner, task_id), lambda t: t["status"] == "QUEUED")
    second = (await api.data(CLAIM, token=worker))["claimNextTask"]
    failed = await eventually(lambda: task_view(api, owner, task_id), lambda t: t["status"] == "FAILED")
    claim_after = await api.data(CLAIM, token=worker)

    # then
    assert second["attempt"] == 2
    assert failed["errorMessage"] == "gave up after 2 attempts: each time, the worker's lease expired before it finished"
    assert [edge["node"]["data"] for edge in failed["events"]["edges"][1:]] == [
        {"from": "QUEUED", "to": "PROCESSING", "attempt": 1},
        {"from": "PROCESSING", "to": "QUEUED", "reason": "LEASE_EXPIRED", "attempt": 1},
        {"from": "QUEUED", "to": "PROCESSING", "attempt": 2},
        {"from": "PROCESSING", "to": "FAILED", "reason": "LEASE_EXPIRED", "attempt": 2,
         "errorMessage": failed["errorMessage"]},
    ]
    assert claim_after == {"claimNextTask": None}


async def test_a_failed_task_queued_again_by_hand_gets_a_fresh_set_of_attempts(
    short_leases: tuple[LiveServer, Api],
) -> None:
    # given: a task that failed after its last attempt
    _, api = short_leases
    owner = await api.sign_up("owner@example.com")
    worker = await api.sign_up("pipeline@example.com", Role.WORKER)
    submitted = await api.data('mutation { submitUrl(url: "https://example.com/") { task { id } } }', token=owner)
    task_id = submitted["submitUrl"]["task"]["id"]
    for _ in range(2):
        await api.data(CLAIM, token=worker)
        await eventually(lambda: task_view(api, owner, task_id), lambda t: t["status"] in ("QUEUED", "FAILED"))
    await eventually(lambda: task_view(api, owner, task_id), lambda t: t["status"] == "FAILED")

    # when
    await api.data("mutation($t: ID!) { updateTaskStatus(taskId: $t, status: QUEUED) { task { status } } }",
                   {"t": task_id}, worker)
    claimed = (await api.data(CLAIM, token=worker))["claimNextTask"]

    # then
    assert claimed["attempt"] == 1


async def test_many_requeuers_at_once_requeue_each_expired_task_exactly_once(db: Database) -> None:
    # given: 40 tasks whose leases ran out
    async with db.transaction() as session:
        owner = await make_user(session)
        worker = await make_user(session, role=Role.WORKER)
        tasks = [(await make_task(session, owner)).id for _ in range(40)]
    for _ in tasks:
        async with db.transaction() as session:
            await claim_next_task(session, worker.id)
    async with db.transaction() as session:
        await session.execute(update(Task).values(lease_expires_at=utcnow() - timedelta(seconds=1)))

    # when: eight requeuers run together, each a batch of 10 at a time
    async def requeuer() -> int:
        total = 0
        while True:
            async with db.transaction() as session:
                count = await requeue_expired_leases(session, max_attempts=3, limit=10)
            total += count
            if count == 0:
                return total

    counts = await asyncio.gather(*(requeuer() for _ in range(8)))

    # then
    async with db.sessions() as session:
        statuses = set((await session.scalars(select(Task.status))).all())
        requeues = (await session.scalars(
            select(TaskEvent.task_id).where(TaskEvent.type == EventType.STATUS_CHANGED, TaskEvent.sequence == 3)
        )).all()
    assert sum(counts) == 40
    assert statuses == {TaskStatus.QUEUED}
    assert sorted(requeues) == sorted(tasks)


async def test_an_upgrade_gives_tasks_being_processed_a_lease_that_has_ended(
    empty_database_url: str, data_dir: Path
) -> None:
    # given: a task being processed before claims existed, with its first event
    engine = create_engine(make_settings(empty_database_url, data_dir))
    await migrations.upgrade(engine, "7d2f3b9e41a0")
    async with engine.begin() as connection:
        task_id = await task_at_old_revision(connection, "PROCESSING", last_event_sequence=1)
        await connection.execute(insert(TaskEvent).values(
            id=uuid.uuid4(), task_id=task_id, sequence=1, position=1, type="CREATED", data={}))

    # when
    await migrations.upgrade(engine)
    database = Database.from_settings(make_settings(empty_database_url, data_dir))
    async with database.transaction() as session:
        requeued = await requeue_expired_leases(session, max_attempts=3)

    # then
    async with engine.connect() as connection:
        status = (await connection.execute(text("SELECT status FROM tasks"))).scalar_one()
        events = (await connection.execute(text("SELECT count(*) FROM task_events"))).scalar_one()
    await database.dispose()
    await engine.dispose()
    assert (requeued, status) == (1, "QUEUED")
    assert events == 2  # rebuilding the tasks table (SQLite) took none of its events with it

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from db.access import SYSTEM, Viewer
from db.engine import Database
from db.enums import EventType, Role, TaskStatus
from db.errors import Conflict, DuplicateTask, InvalidInput, InvalidTransition, NotFound
from db.models import Task, TaskEvent
from db.tasks import claim_next_task, create_file_task, create_url_task, transition_task
from tests.factories import make_task, make_user, move_task, stored_file


async def _snapshot(db: Database) -> list[tuple[object, ...]]:
    async with db.sessions() as session:
        tasks = (await session.execute(select(Task.id, Task.status, Task.started_at, Task.completed_at,
                                               Task.last_event_sequence).order_by(Task.id))).all()
        events = (await session.execute(select(TaskEvent.task_id, TaskEvent.sequence, TaskEvent.type)
                                        .order_by(TaskEvent.task_id, TaskEvent.sequence))).all()
    return [tuple(row) for row in tasks] + [tuple(row) for row in events]


async def _events(db: Database, task_id: uuid.UUID) -> list[tuple[int, EventType, dict[str, object]]]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(TaskEvent.sequence, TaskEvent.type, TaskEvent.data)
            .where(TaskEvent.task_id == task_id)
            .order_by(TaskEvent.sequence)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_a_new_task_is_queued_with_a_created_event(db: Database) -> None:
    async with db.transaction() as session:
        owner = await make_user(session)
        task = await make_task(session, owner)

    assert task.status is TaskStatus.QUEUED
    assert await _events(db, task.id) == [(1, EventType.CREATED, {"status": "QUEUED"})]


async def test_the_same_bytes_from_the_same_owner_are_a_duplicate_pointing_at_the_first_task(db: Database) -> None:
    # given
    async with db.transaction() as session:
        owner = await make_user(session)
        first = await create_file_task(session, owner.id, stored_file(b"same bytes"))
    before = await _snapshot(db)

    # when
    with pytest.raises(DuplicateTask) as refused:
        async with db.transaction() as session:
            await create_file_task(session, owner.id, stored_file(b"same bytes"))

    # then
    assert refused.value.task_id == first.id
    assert refused.value.code == "CONFLICT"
    assert await _snapshot(db) == before


async def test_the_same_bytes_from_another_owner_make_a_task_of_their_own(db: Database) -> None:
    async with db.transaction() as session:
        first = await create_file_task(session, (await make_user(session)).id, stored_file(b"shared"))
        second = await create_file_task(session, (await make_user(session)).id, stored_file(b"shared"))

    assert first.id != second.id


async def test_the_lifecycle_sets_times_and_logs_each_change(db: Database) -> None:
    # given
    async with db.transaction() as session:
        task = await make_task(session, await make_user(session))

    # when
    async with db.transaction() as session:
        started = await transition_task(session, task.id, "PROCESSING", viewer=SYSTEM)
    async with db.transaction() as session:
        failed = await transition_task(session, task.id, "FAILED", viewer=SYSTEM, error_message="parser crashed",
                                       claim_id=started.claim_id)
    async with db.transaction() as session:
        retried = await transition_task(session, task.id, "QUEUED", viewer=SYSTEM)

    # then
    assert started.status is TaskStatus.PROCESSING and started.started_at is not None
    assert failed.completed_at is not None and failed.error_message == "parser crashed"
    assert (retried.started_at, retried.completed_at, retried.error_message) == (None, None, None)
    assert await _events(db, task.id) == [
        (1, EventType.CREATED, {"status": "QUEUED"}),
        (2, EventType.STATUS_CHANGED, {"from": "QUEUED", "to": "PROCESSING", "attempt": 1}),
        (3, EventType.STATUS_CHANGED, {"from": "PROCESSING", "to": "FAILED", "errorMessage": "parser crashed"}),
        (4, EventType.STATUS_CHANGED, {"from": "FAILED", "to": "QUEUED"}),
    ]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], "COMPLETED"),
        ([], "FAILED"),
        (["PROCESSING", "COMPLETED"], "QUEUED"),
        (["CANCELLED"], "PROCESSING"),
        (["PROCESSING"], "QUEUED"),
    ],
)
async def test_an_illegal_transition_names_both_states_and_changes_nothing(
    db: Database, path: list[str], illegal: str
) -> None:
    # given
    async with db.transaction() as session:
        task = await make_task(session, await make_user(session))
    for status in path:
        async with db.transaction() as session:
            await move_task(session, task.id, status)
    before = await _snapshot(db)
    current = path[-1] if path else "QUEUED"

    # when
    with pytest.raises(InvalidTransition) as refused:
        async with db.transaction() as session:
            await transition_task(session, task.id, illegal, viewer=SYSTEM)

    # then
    assert str(refused.value) == f"cannot move a task from {current} to {illegal}"
    assert refused.value.code == "INVALID_TRANSITION"
    assert await _snapshot(db) == before


async def test_an_unknown_status_is_bad_input_and_changes_nothing(db: Database) -> None:
    async with db.transaction() as session:
        task = await make_task(session, await make_user(session))
    before = await _snapshot(db)

    with pytest.raises(InvalidInput, match="unknown task status 'DONE'"):
        async with db.transaction() as session:
            await transition_task(session, task.id, "DONE", viewer=SYSTEM)

    assert await _snapshot(db) == before


async def test_an_unexpected_current_status_is_a_conflict(db: Database) -> None:
    async with db.transaction() as session:
        task = await make_task(session, await make_user(session))

    with pytest.raises(Conflict, match="task is QUEUED, not the expected PROCESSING"):
        async with db.transaction() as session:
            await transition_task(session, task.id, "COMPLETED", viewer=SYSTEM, expected_status="PROCESSING")


async def test_a_user_cannot_move_someone_elses_task_and_learns_nothing_of_it(db: Database) -> None:
    async with db.transaction() as session:
        task = await make_task(session, await make_user(session))
        stranger = await make_user(session)
    before = await _snapshot(db)

    with pytest.raises(NotFound):
        async with db.transaction() as session:
            await transition_task(session, task.id, "CANCELLED", viewer=Viewer(stranger.id, Role.USER))

    assert await _snapshot(db) == before


async def test_fifty_concurrent_transitions_of_one_task_have_exactly_one_winner(db: Database) -> None:
    # given
    async with db.transaction() as session:
        task = await make_task(session, await make_user(session))

    async def start() -> str:
        try:
            async with db.transaction() as session:
                await transition_task(session, task.id, "PROCESSING", viewer=SYSTEM)
        except InvalidTransition:
            return "refused"
        return "won"

    # when
    outcomes = await asyncio.gather(*(start() for _ in range(50)))

    # then
    assert sorted(outcomes).count("won") == 1
    assert outcomes.count("refused") == 49
    events = await _events(db, task.id)
    assert [e[1] for e in events].count(EventType.STATUS_CHANGED) == 1


async def test_twenty_concurrent_claimers_take_every_queued_task_exactly_once(db: Database) -> None:
    # given
    async with db.transaction() as session:
        owner = await make_user(session)
        queued = {(await make_task(session, owner)).id for _ in range(100)}

    async def claimer() -> list[uuid.UUID]:
        claimed: list[uuid.UUID] = []
        while True:
            async with db.transaction() as session:
                task = await claim_next_task(session)
            if task is None:
                return claimed
            claimed.append(task.id)

    # when
    results = await asyncio.gather(*(claimer() for _ in range(20)))

    # then
    every_claim = [task_id for claims in results for task_id in claims]
    assert len(every_claim) == len(set(every_claim)) == 100
    assert set(every_claim) == queued
    async with db.sessions() as session:
        left = await session.scalar(select(func.count()).where(Task.status == TaskStatus.QUEUED))
        changes = await session.scalar(
            select(func.count()).where(TaskEvent.type == EventType.STATUS_CHANGED)
        )
    assert (left, changes) == (0, 100)


async def test_claiming_takes_the_oldest_queued_task(db: Database) -> None:
    async with db.transaction() as session:
        owner = await make_user(session)
        oldest = await make_task(session, owner)
        await make_task(session, owner)

    async with db.transaction() as session:
        claimed = await claim_next_task(session)

    assert claimed is not None and claimed.id == oldest.id
    assert claimed.status is TaskStatus.PROCESSING


async def test_a_url_task_is_reused_while_open(db: Database) -> None:
    async with db.transaction() as session:
        owner = await make_user(session)
        first, first_reused = await create_url_task(session, owner.id, "https://example.com/")
        second, second_reused = await create_url_task(session, owner.id, "https://example.com/")

    assert (first_reused, second_reused) == (False, True)
    assert second.id == first.id

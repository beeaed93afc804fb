import asyncio

import pytest
from sqlalchemy import delete, func, select, text

from db.engine import Database
from db.models import Analysis, Finding, SourceReference, Task, TaskEvent, User
from tests.factories import make_analysed_task, make_user


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_database_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    async with db.sessions() as session:
        journal_mode = await session.scalar(text("PRAGMA journal_mode"))
        foreign_keys = await session.scalar(text("PRAGMA foreign_keys"))
    assert (journal_mode, foreign_keys) == ("wal", 1)


async def test_deleting_a_user_cascades_to_every_row_beneath(db: Database) -> None:
    # given
    async with db.transaction() as session:
        owner = await make_user(session)
        bystander = await make_user(session)
        await make_analysed_task(session, owner)
        await make_analysed_task(session, bystander)

    # when
    async with db.transaction() as session:
        await session.execute(delete(User).where(User.id == owner.id))

    # then
    async with db.sessions() as session:
        counts = {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in (User, Task, Analysis, Finding, SourceReference, TaskEvent)
        }
    assert counts == {
        "users": 1, "tasks": 1, "analyses": 1, "findings": 2, "source_references": 1,
        "task_events": 3,
    }


# Every backend server process has its own id: the same id means the same connection.
BACKEND_PID = select(func.pg_backend_pid())


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_reads_inside_one_read_connection_share_one_connection_and_may_overlap(db: Database) -> None:
    # when
    async with db.one_read_connection():
        first = await db.prepared_rows(BACKEND_PID)
        overlapping = await asyncio.gather(*(db.prepared_rows(BACKEND_PID) for _ in range(3)))

    # then
    assert {rows[0][0] for rows in (first, *overlapping)} == {first[0][0]}


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_one_read_connection_gives_its_connection_back_when_it_ends(db: Database) -> None:
    # when: one block after another, and a read outside any
    pids = []
    for _ in range(3):
        async with db.one_read_connection():
            pids.append((await db.prepared_rows(BACKEND_PID))[0][0])
    pids.append((await db.prepared_rows(BACKEND_PID))[0][0])

    # then: the pool never needed a second connection (it opens them only when asked)
    assert len(set(pids)) == 1


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_driver_reads_plan_each_statement_once(db: Database) -> None:
    # when
    rows = await db.prepared_rows(select(func.current_setting("plan_cache_mode")))

    # then: a prepared statement is not planned again on each run
    assert rows[0][0] == "force_generic_plan"

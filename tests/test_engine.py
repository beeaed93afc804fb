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

"""A small account's statements are planned for it, whoever ran them before on the same connection."""

import json
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from db.engine import Database
from db.models import User
from db.tasks import create_url_task
from tests.factories import make_user

BIG_ACCOUNT_TASKS = 1500
# A count of a USER's filtered tasks, whose cost depends on whose they are: after a big account's runs,
# PostgreSQL left to itself keeps a generic plan sized for an "average" account.
FILTERED_LIST = "SELECT count(*) FROM tasks WHERE user_id = {owner} AND source_url LIKE {pattern}"


async def _accounts(database: Database) -> tuple[User, User]:
    async with database.transaction() as session:
        big, small = await make_user(session), await make_user(session)
        for number in range(BIG_ACCOUNT_TASKS):
            await create_url_task(session, big.id, f"https://example.com/report/{number}")
        await create_url_task(session, small.id, "https://example.com/report/small")
    async with database.engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
        await connection.commit()
    return big, small


def _shape(plan: Any) -> Any:
    """The plan's nodes, the indexes they use and their conditions, without its costs and row estimates.

    A generic plan shows its conditions on parameters ($1), a plan made for the values shows the values.
    """
    if isinstance(plan, dict):
        return {key: _shape(value) for key, value in plan.items()
                if key in ("Node Type", "Index Name", "Relation Name", "Plans", "Plan", "Sort Key", "Index Cond",
                           "Filter", "Recheck Cond")}
    if isinstance(plan, list):
        return [_shape(value) for value in plan]
    return plan


async def _postgresql_plan(connection: AsyncConnection, owner: User) -> Any:
    explained = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) EXECUTE filtered('{owner.id}', '%report%')")
    plan = explained.scalar_one()
    return _shape(json.loads(plan) if isinstance(plan, str) else plan)


async def _sqlite_plan(connection: AsyncConnection, owner: User) -> Any:
    statement = FILTERED_LIST.format(owner=":owner", pattern=":pattern")
    rows = await connection.execute(text(f"EXPLAIN QUERY PLAN {statement}"),
                                    {"owner": owner.id.hex, "pattern": "%report%"})
    return [row[-1] for row in rows]


async def _plan_after(database: Database, pool: str, first: User | None, then: User) -> Any:
    """The plan of `then`'s filtered list on a pooled connection of the app's, after `first` ran it six times."""
    async with (database.engine.connect() if pool == "transactions" else database.read()) as connection:
        if database.dialect != "postgresql":
            if first is not None:
                for _ in range(6):
                    await connection.execute(
                        text(FILTERED_LIST.format(owner=":owner", pattern=":pattern")),
                        {"owner": first.id.hex, "pattern": "%report%"})
            return await _sqlite_plan(connection, then)
        await connection.exec_driver_sql(
            "PREPARE filtered(uuid, text) AS " + FILTERED_LIST.format(owner="$1", pattern="$2"))
        try:
            if first is not None:
                # Past five runs PostgreSQL may keep a generic plan, sized for whoever ran it.
                for _ in range(6):
                    await connection.exec_driver_sql(f"EXECUTE filtered('{first.id}', '%report%')")
            return await _postgresql_plan(connection, then)
        finally:
            await connection.exec_driver_sql("DEALLOCATE filtered")


# Filters and counts run on the reads' pool, writes scoped to an owner on the transactions'.
@pytest.mark.parametrize("pool", ["reads", "transactions"])
async def test_a_small_accounts_list_takes_the_same_plan_whether_or_not_a_big_account_ran_it_first(
    db: Database, pool: str,
) -> None:
    # given
    big, small = await _accounts(db)

    # when
    fresh = await _plan_after(db, pool, None, small)
    after_the_big_account = await _plan_after(db, pool, big, small)

    # then
    assert after_the_big_account == fresh


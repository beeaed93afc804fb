"""Every ordering and filter of a task list is a walk of an index: the database never sorts a viewer's tasks."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from db.access import Viewer
from db.engine import Database
from db.enums import Role, TaskStatus, Verdict
from db.listing import TaskCriteria, task_list, task_sort_key
from db.models import Task
from db.pagination import PAGE_LIMIT, _page_statement

CURSORS = {
    "CREATED_AT": datetime(2026, 6, 1, tzinfo=UTC), "UPDATED_AT": datetime(2026, 6, 1, tzinfo=UTC),
    "FILE_SIZE": 1_000_000, "COMPLIANCE_SCORE": 50.0,
}
CRITERIA = {
    "no filter": TaskCriteria(),
    "status": TaskCriteria(statuses=[TaskStatus.QUEUED]),
    "verdict": TaskCriteria(verdicts=[Verdict.REJECTED]),
    "filename": TaskCriteria(filename_contains="report"),
}
# Only PostgreSQL's trigram indexes narrow a search to its rare trigrams (db/filename_search.py).
PROBED = {"filename by its rare trigrams": TaskCriteria(filename_contains="report", filename_probes=("epo", "ort"))}
# SQLite's planner, without statistics, reads a status's or a verdict's rows of every owner by the
# (status or verdict, created_at) index and sorts them for the other orderings (README, "Scale").
SQLITE_SORTS_FOR_A_WORKER = {f"{name} by {ordering}" for name in ("status", "verdict")
                             for ordering in ("UPDATED_AT", "FILE_SIZE", "COMPLIANCE_SCORE")}
# A window of creation times is a range of the creation index; ordered otherwise, its rows may be sorted.
WINDOW = TaskCriteria(created_after=datetime(2026, 1, 1, tzinfo=UTC), created_before=datetime(2026, 7, 1, tzinfo=UTC))


def _sql(database: Database, viewer: Viewer, criteria: TaskCriteria, ordering: str) -> str:
    key = task_sort_key(ordering, True)
    page = _page_statement(task_list(viewer, criteria, (Task.id,), order_field=ordering), key, False, True, False)
    values = {PAGE_LIMIT: 51, **key.parameter_values("after", (CURSORS[ordering], uuid.uuid4()))}
    return str(page.params(values).compile(dialect=database.engine.dialect, compile_kwargs={"literal_binds": True}))


def _sorts(plan: Any) -> bool:
    if isinstance(plan, dict):
        return "Sort" in str(plan.get("Node Type", "")) or any(_sorts(value) for value in plan.values())
    if isinstance(plan, list):
        return any(_sorts(value) for value in plan)
    return False


async def _sorted_by_the_database(connection: AsyncConnection, sql: str) -> bool:
    if connection.dialect.name == "postgresql":
        # Sorting made prohibitively dear: a plan still sorts only if no index gives the order.
        await connection.exec_driver_sql("SET enable_sort = off")
        plan = (await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()
        return _sorts(json.loads(plan) if isinstance(plan, str) else plan)
    steps = [row[-1] for row in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    return any("TEMP B-TREE" in step for step in steps)


@pytest.mark.parametrize("role", [Role.USER, Role.WORKER])
async def test_every_ordering_and_filter_of_a_task_list_walks_an_index(db: Database, role: Role) -> None:
    # given
    viewer = Viewer(user_id=uuid.uuid4(), role=role)

    # when
    sorted_lists = []
    async with db.engine.connect() as connection:
        criteria_by_name = CRITERIA | (PROBED if db.dialect == "postgresql" else {})
        cases = [(name, criteria, ordering) for name, criteria in criteria_by_name.items() for ordering in CURSORS]
        for name, criteria, ordering in [*cases, ("window", WINDOW, "CREATED_AT")]:
            if await _sorted_by_the_database(connection, _sql(db, viewer, criteria, ordering)):
                sorted_lists.append(f"{name} by {ordering}")

    # then
    expected = SQLITE_SORTS_FOR_A_WORKER if db.dialect == "sqlite" and role is Role.WORKER else set()
    assert set(sorted_lists) == expected

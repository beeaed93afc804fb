import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from sqlalchemy import func, select

from db import models
from db.access import VIEWER_ID
from db.errors import InvalidInput
from db.listing import (
    NO_CRITERIA,
    TaskCriteria,
    counted_from_figures,
    shared_task_list,
    task_count,
    task_sort_key,
    with_filename_probes,
)
from db.pagination import Count, keyset_page
from graph.access.permissions import IsAuthenticated
from graph.context import Info
from graph.enums import SortDirection
from graph.relay import Connection, connection_from_page, decode_cursor, from_global_id, page_size
from graph.tasks.types import TASK_COLUMNS, Task, TaskFilter, TaskOrder

SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
# How many rows the statement's filter matches, on each of its rows (before the page's limit cuts them).
MATCHES = func.count().over().label("matches")


def task_criteria(filter: TaskFilter | None, owner_id: uuid.UUID | None = None) -> TaskCriteria:
    if filter is None:
        return TaskCriteria(owner_id=owner_id)
    filter_owner = from_global_id(filter.owner_id, "User")[1] if filter.owner_id else None
    if owner_id is not None and filter_owner is not None and owner_id != filter_owner:
        filter_owner = uuid.UUID(int=0)  # two different owners: nobody's tasks
    return TaskCriteria(
        statuses=filter.status,
        verdicts=filter.verdict,
        created_after=filter.created_after,
        created_before=filter.created_before,
        filename_contains=filter.filename_contains,
        finding_severities=filter.has_findings_of_severity,
        owner_id=owner_id or filter_owner,
        source_url=filter.source_url,
    )


async def task_connection(
    info: Info,
    filter: TaskFilter | None,
    order_by: TaskOrder | None,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    owner_id: uuid.UUID | None = None,
) -> Connection[Task]:
    context = info.context
    viewer = context.require_viewer()
    first, last = page_size(first, last, context.settings.max_page_size)
    order = order_by or TaskOrder()
    key = task_sort_key(order.field.value, order.direction is SortDirection.DESC)
    tag = f"tasks:{order.field.value}:{order.direction.value}"
    loaders = context.loaders
    names = loaders.selection.names(Task, TASK_COLUMNS)
    # The page's analyses are read with it when the document asks for a task's analysis: a round trip less.
    # Their shape comes from their loader, so this domain imports nothing of the analyses' at run time.
    criteria = await with_filename_probes(context.database, task_criteria(filter, owner_id))
    analysis_names: tuple[str, ...] = ()
    analysis_columns: tuple[Any, ...] = ()
    # A filename search's matches are sorted before the page is cut, and a join would read the analysis of
    # every match: the page's own are read after it, by their loader.
    if loaders.selection.asks(Task, "analysis") and not criteria.filename_contains:
        analyses = loaders.analysis_by_task_id
        analysis_names = loaders.selection.names(analyses.node, analyses.shape)
        analysis_columns = analyses.shape.columns_for(analysis_names)
    counted = loaders.selection.asks_of("TaskConnection", "total_count") and not counted_from_figures(criteria)
    # A search the trigram index narrows sorts all its matches for a page: its first page counts them in the
    # same pass, a window over them, instead of reading every match again.
    in_one_pass = (counted and bool(criteria.filename_probes) and after is None and before is None
                   and bool(first or last))
    columns = TASK_COLUMNS.columns_for(names)
    statement = shared_task_list(viewer, criteria, (*columns, MATCHES) if in_one_pass else columns,
                                 order_field=order.field.value, analysis_columns=analysis_columns)
    database = context.database
    reading = keyset_page(
        database.prepared_rows if criteria == NO_CRITERIA else database.rows, statement, key,
        first=first, after=decode_cursor(after, tag, key),
        last=last, before=decode_cursor(before, tag, key),
        parameters={VIEWER_ID: viewer.user_id},
    )

    async def counting() -> Count:
        async with database.read() as connection:
            return await task_count(connection, viewer, criteria, context.settings.count_limit)

    count: Callable[[], Awaitable[Count]] = counting
    if in_one_pass:
        page = await reading
        # A first page of at least one row is empty only when nothing matches.
        count = _known(Count(page.rows[0][len(columns)] if page.rows else 0))
    elif counted:
        # Counted along the same index as the page, the count reads what the page reads: the two run at once,
        # not one after the other (both end before this returns, whatever either raises).
        page, counted_rows = await asyncio.gather(reading, counting(), return_exceptions=True)
        if isinstance(page, BaseException):
            raise page
        count = _known(counted_rows)
    else:
        page = await reading

    tasks = [Task.from_row(row, names) for row in page.rows]
    loaders.task_by_id.remember(tasks)
    if analysis_names:
        loaders.analysis_by_task_id.remember_joined([task.pk for task in tasks], page.rows, start=len(names))
    return connection_from_page(page, tasks, tag, key, count)


def _known(counted: Count | BaseException) -> Callable[[], Awaitable[Count]]:
    async def count() -> Count:
        if isinstance(counted, BaseException):
            raise counted
        return counted
    return count


@strawberry.type
class TaskQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        _, pk = from_global_id(id, "Task")
        return await info.context.loaders.task_by_id.load(pk)

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The viewer's own task for the file with this SHA-256 (hex).",
    )
    async def task_by_hash(self, info: Info, sha256: str) -> Task | None:
        if not SHA256_HEX.match(sha256):
            raise InvalidInput("sha256 must be 64 hexadecimal characters")
        viewer = info.context.require_viewer()
        statement = select(*TASK_COLUMNS).where(
            models.Task.user_id == viewer.user_id, models.Task.file_hash == sha256.lower()
        )
        async with info.context.database.read() as connection:
            row = (await connection.execute(statement)).one_or_none()
        return Task.from_row(row) if row else None

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def tasks(
        self,
        info: Info,
        filter: TaskFilter | None = None,
        order_by: TaskOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Task]:
        return await task_connection(info, filter, order_by, first=first, after=after, last=last, before=before)


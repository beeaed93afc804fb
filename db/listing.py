"""What lists of tasks and findings hold and in which order: filters and keyset sort keys."""

import functools
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, exists, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import figures, filename_search
from db.access import VIEWER_ID, Viewer
from db.engine import Database
from db.enums import Role, Severity, TaskStatus, Verdict
from db.errors import Forbidden, InvalidInput
from db.models import Analysis, Finding, Task
from db.pagination import Count, SortKey, count_rows

# Escaped for LIKE (each % and _ doubles), a search longer than this would pass SQLite's limit on a pattern
# (50,000 bytes): it is refused, and it could match no stored name anyway.
MAX_FILENAME_SEARCH = 10_000

@dataclass(frozen=True)
class TaskCriteria:
    statuses: Collection[TaskStatus] | None = None
    verdicts: Collection[Verdict] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    filename_contains: str | None = None
    # The trigrams of filename_contains an index lookup narrows to (db/filename_search.py); None: the whole text.
    filename_probes: tuple[str, ...] | None = None
    finding_severities: Collection[Severity] | None = None
    owner_id: uuid.UUID | None = None
    source_url: str | None = None


TASK_ORDERINGS: dict[str, Any] = {
    "CREATED_AT": Task.created_at,
    "UPDATED_AT": Task.updated_at,
    # Tasks without a size (URL audits) or a score sort as -1, before every real value.
    # Written as the expression index on it is (its -1 inline, not a parameter), so that both databases see the index.
    "FILE_SIZE": func.coalesce(Task.file_size, literal_column("-1", BigInteger())),
    "COMPLIANCE_SCORE": Task.compliance_key,
}


@functools.cache
def task_sort_key(field: str, descending: bool) -> SortKey:
    return SortKey(columns=(TASK_ORDERINGS[field], Task.id), descending=descending)


def task_list(
    viewer: Viewer, criteria: TaskCriteria, columns: tuple[Any, ...], *, order_field: str = "CREATED_AT",
    analysis_columns: tuple[Any, ...] = (),
) -> Select:
    """The viewer's tasks that meet `criteria`, as `columns`, then each task's `analysis_columns`
    (nulls for a task without one): a page and its analyses in one round trip."""
    return _task_list(viewer, criteria, columns, order_field, analysis_columns)


def listed_owner(viewer: Viewer, criteria: TaskCriteria) -> uuid.UUID | None:
    """Whose tasks the viewer lists: their own (a USER), one owner's, or (None) everyone's."""
    if viewer.sees_every_task:
        return criteria.owner_id
    if criteria.owner_id is not None and criteria.owner_id != viewer.user_id:
        raise Forbidden("only workers and admins can list another user's tasks")
    return viewer.user_id


def shared_task_list(
    viewer: Viewer, criteria: TaskCriteria, columns: tuple[Any, ...], *, order_field: str = "CREATED_AT",
    analysis_columns: tuple[Any, ...] = (),
) -> Select:
    """task_list, to be run with {VIEWER_ID: viewer.user_id}.

    Without criteria (a dashboard's list) it is one statement object for every
    viewer of a role, so what is built from it (the page) is built once.
    """
    if criteria == NO_CRITERIA:
        return _unfiltered_task_list(viewer.role, columns, order_field, analysis_columns)
    return task_list(viewer, criteria, columns, order_field=order_field, analysis_columns=analysis_columns)


NO_CRITERIA = TaskCriteria()


@functools.lru_cache(maxsize=256)
def _unfiltered_task_list(role: Role, columns: tuple[Any, ...], order_field: str,
                          analysis_columns: tuple[Any, ...]) -> Select:
    # Without an id the statement matches nothing until the execution names the viewer.
    return _task_list(Viewer(user_id=None, role=role), NO_CRITERIA, columns, order_field, analysis_columns)


def _task_list(viewer: Viewer, criteria: TaskCriteria, columns: tuple[Any, ...], order_field: str,
               analysis_columns: tuple[Any, ...]) -> Select:
    conditions = _task_conditions(criteria, listed_owner(viewer, criteria))
    statement = select(*columns).select_from(Task).where(viewer.visible_tasks(), *conditions)
    # A task has at most one analysis (task_id is unique), so the join repeats no task.
    if analysis_columns:
        statement = statement.outerjoin(Analysis, Analysis.task_id == Task.id)
    return statement.add_columns(*analysis_columns)


def _task_conditions(criteria: TaskCriteria, owner: uuid.UUID | None) -> list[Any]:
    conditions: list[Any] = []
    if criteria.statuses is not None:
        conditions.append(Task.status.in_(list(criteria.statuses)))
    # The task keeps its analysis's verdict (db/analyses.py): an index walk, not a join.
    if criteria.verdicts is not None:
        conditions.append(Task.verdict.in_(list(criteria.verdicts)))
    if criteria.created_after is not None:
        conditions.append(Task.created_at >= criteria.created_after)
    if criteria.created_before is not None:
        conditions.append(Task.created_at < criteria.created_before)
    if criteria.filename_contains:
        if len(criteria.filename_contains) > MAX_FILENAME_SEARCH:
            raise InvalidInput(f"filenameContains is at most {MAX_FILENAME_SEARCH} characters")
        conditions.extend(_filename_conditions(criteria.filename_contains, criteria.filename_probes, owner))
    # The subquery correlates to Task only: when a page reads its analyses,
    # Analysis is outer-joined beside it and would otherwise be correlated away.
    if criteria.finding_severities is not None:
        conditions.append(
            exists()
            .where(Analysis.task_id == Task.id, Finding.analysis_id == Analysis.id)
            .where(Finding.severity.in_(list(criteria.finding_severities)))
            .correlate(Task)
        )
    if criteria.owner_id is not None:
        conditions.append(Task.user_id == criteria.owner_id)
    if criteria.source_url is not None:
        conditions.append(Task.source_url == criteria.source_url)
    return conditions


def _filename_conditions(search: str, probes: tuple[str, ...] | None, owner: uuid.UUID | None) -> list[Any]:
    if probes is None:
        return [Task.original_filename.icontains(search, autoescape=True)]
    # The probes are what an index is asked for; the whole text, under lower() (which no index holds, and
    # which is what ILIKE compares), is checked on the rows they find.
    escaped = search.replace("/", "//").replace("%", "/%").replace("_", "/_")
    whole = func.lower(Task.original_filename).like(func.lower(literal(f"%{escaped}%")), escape="/")
    if not probes:
        return [whole]
    if owner is not None:
        return [filename_search.owners_names_holding(owner, probes, Task.user_id, Task.original_filename), whole]
    return [*(Task.original_filename.icontains(probe, autoescape=True) for probe in probes), whole]


async def with_filename_probes(database: Database, criteria: TaskCriteria) -> TaskCriteria:
    """`criteria` with the parts of its filename search the trigram index finds cheaply (PostgreSQL)."""
    search = criteria.filename_contains
    if not search or len(search) > MAX_FILENAME_SEARCH or database.dialect != "postgresql":
        return criteria
    async with database.read() as connection:
        return replace(criteria, filename_probes=await filename_search.index_probes(connection, search))


@dataclass(frozen=True)
class FindingCriteria:
    severities: Collection[Severity] | None = None
    rule_id: str | None = None
    category: str | None = None
    verdicts: Collection[Verdict] | None = None
    task_statuses: Collection[TaskStatus] | None = None


FINDING_SORT_KEY = SortKey(columns=(Finding.created_at, Finding.id), descending=True)


def finding_list(viewer: Viewer, criteria: FindingCriteria, columns: tuple[Any, ...]) -> Select:
    statement = (
        select(*columns)
        .select_from(Finding)
        .join(Analysis, Analysis.id == Finding.analysis_id)
        .join(Task, Task.id == Analysis.task_id)
        .where(viewer.visible_tasks())
    )
    if criteria.severities is not None:
        statement = statement.where(Finding.severity.in_(list(criteria.severities)))
    if criteria.rule_id is not None:
        statement = statement.where(Finding.rule_id == criteria.rule_id)
    if criteria.category is not None:
        statement = statement.where(Finding.category == criteria.category)
    if criteria.verdicts is not None:
        statement = statement.where(Analysis.verdict.in_(list(criteria.verdicts)))
    if criteria.task_statuses is not None:
        statement = statement.where(Task.status.in_(list(criteria.task_statuses)))
    return statement


async def task_count(connection: AsyncConnection, viewer: Viewer, criteria: TaskCriteria, limit: int) -> Count:
    """How many of the viewer's tasks meet `criteria`: from the maintained figures when the filter is one
    they keep (none, statuses, verdicts, an owner), else counted up to `limit` along an index."""
    names = _figure_names(criteria)
    if names is None:
        counted = task_list(viewer, criteria, (Task.id,))
        return await count_rows(connection, counted, {VIEWER_ID: viewer.user_id}, limit)
    totals = await figures.owner_totals(connection, listed_owner(viewer, criteria))
    return Count(int(sum(totals[name] for name in names)))


def counted_from_figures(criteria: TaskCriteria) -> bool:
    """Whether `task_count` reads the kept figures (a few index reads) rather than counting tasks."""
    return _figure_names(criteria) is not None


def _figure_names(criteria: TaskCriteria) -> list[str] | None:
    if any(value is not None for value in (
        criteria.created_after, criteria.created_before, criteria.filename_contains or None,
        criteria.finding_severities, criteria.source_url,
    )):
        return None
    if criteria.statuses is not None and criteria.verdicts is not None:
        return None
    if criteria.verdicts is not None:
        return [figures.VERDICT_FIGURES[verdict] for verdict in set(criteria.verdicts)]
    statuses = TaskStatus if criteria.statuses is None else set(criteria.statuses)
    return [figures.STATUS_FIGURES[status] for status in statuses]


async def finding_count(connection: AsyncConnection, viewer: Viewer, criteria: FindingCriteria, limit: int) -> Count:
    """How many findings the viewer may see meet `criteria`: from the figures when only severities filter them."""
    if any(value is not None for value in (criteria.rule_id, criteria.category, criteria.verdicts,
                                           criteria.task_statuses)):
        return await count_rows(connection, finding_list(viewer, criteria, (Finding.id,)), None, limit)
    severities = Severity if criteria.severities is None else set(criteria.severities)
    totals = await figures.owner_totals(connection, None if viewer.sees_every_task else viewer.user_id)
    return Count(int(sum(totals[figures.SEVERITY_FIGURES[severity]] for severity in severities)))

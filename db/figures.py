"""Figures kept per owner in the transaction of every change that moves them, so that a dashboard or a
count reads a few rows however many tasks there are.

A domain operation says what it changed (a task created, a status moved, an analysis counted or
uncounted, a task removed); the changes gather in the session and `apply_changes` writes them, as
the last thing before the commit (db/engine.py), as one upsert into `owner_figures`, one into
`owner_day_figures` and, when tasks were created or removed, one into `day_task_counts`, each in key
order, tables always in that order, so that two transactions never lock rows in opposite orders.
`recount` computes the same figures from the base tables: the migration's backfill and
`auditgraph check --figures` compare against it.
"""

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, case, cast, delete, func, insert, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.base import utcnow
from db.enums import Severity, TaskStatus, Verdict
from db.models import Analysis, DayTaskCounts, Finding, OwnerDayFigures, OwnerFigures, Task


class Figures(dict[str, float]):
    """Figures by column name (FIGURE_NAMES); a name not present is 0."""

    def __missing__(self, name: str) -> float:
        return 0

    def add(self, other: Mapping[str, float], sign: int = 1) -> "Figures":
        for name, value in other.items():
            self[name] += sign * value
        return self

STATUS_FIGURES = {status: status.value.lower() for status in TaskStatus}
VERDICT_FIGURES = {verdict: verdict.value.lower() for verdict in Verdict}
SEVERITY_FIGURES = {severity: severity.value.lower() for severity in Severity}
SCORE_FIGURES = ("compliance_sum", "compliance_count", "confidence_sum", "confidence_count")
FIGURE_NAMES = (*STATUS_FIGURES.values(), *VERDICT_FIGURES.values(), *SEVERITY_FIGURES.values(), *SCORE_FIGURES)

_PENDING = "auditgraph.figure_changes"
# Rows per day of day_task_counts: a WORKER's or an ADMIN's month of tasks per day reads at most 30 times this.
DAY_SHARDS = 8


def day_of(created_at: datetime) -> date:
    """The day (UTC) a task's figures are kept under: the day it was created."""
    return created_at.astimezone(UTC).date()


def _pending(session: AsyncSession, owner_id: uuid.UUID, created_at: datetime) -> Figures:
    changes: dict[tuple[uuid.UUID, date], Figures] = session.info.setdefault(_PENDING, {})
    return changes.setdefault((owner_id, day_of(created_at)), Figures())


def task_created(session: AsyncSession, owner_id: uuid.UUID, created_at: datetime, status: TaskStatus) -> None:
    _pending(session, owner_id, created_at)[STATUS_FIGURES[status]] += 1


def status_moved(session: AsyncSession, owner_id: uuid.UUID, created_at: datetime,
                 old: TaskStatus, new: TaskStatus) -> None:
    figures = _pending(session, owner_id, created_at)
    figures[STATUS_FIGURES[old]] -= 1
    figures[STATUS_FIGURES[new]] += 1


def analysis_figures(verdict: Verdict, compliance_score: float | None, confidence_score: float | None,
                     severities: Iterable[Severity]) -> Figures:
    """What one analysis adds to its owner's figures."""
    figures = Figures({VERDICT_FIGURES[verdict]: 1})
    if compliance_score is not None:
        figures["compliance_sum"] += compliance_score
        figures["compliance_count"] += 1
    if confidence_score is not None:
        figures["confidence_sum"] += confidence_score
        figures["confidence_count"] += 1
    for severity in severities:
        figures[SEVERITY_FIGURES[severity]] += 1
    return figures


def counted(session: AsyncSession, owner_id: uuid.UUID, created_at: datetime, figures: Mapping[str, float],
            sign: int = 1) -> None:
    """Add (sign 1) or take away (sign -1) figures such as an analysis's or a whole task's."""
    _pending(session, owner_id, created_at).add(figures, sign)


async def stored_contribution(session: AsyncSession, task_id: uuid.UUID) -> Figures:
    """What a task's analysis and findings, as stored now, add to its owner's figures (its status aside)."""
    by_severity = [func.count(case((Finding.severity == severity, 1))).label(name)
                   for severity, name in SEVERITY_FIGURES.items()]
    row = (await session.execute(
        select(Analysis.verdict, Analysis.compliance_score, Analysis.confidence_score, *by_severity)
        .select_from(Analysis)
        .outerjoin(Finding, Finding.analysis_id == Analysis.id)
        .where(Analysis.task_id == task_id)
        .group_by(Analysis.id, Analysis.verdict, Analysis.compliance_score, Analysis.confidence_score)
    )).one_or_none()
    if row is None:
        return Figures()
    figures = analysis_figures(row.verdict, row.compliance_score, row.confidence_score, ())
    for name in SEVERITY_FIGURES.values():
        figures[name] += row._mapping[name]
    return figures


async def apply_changes(session: AsyncSession) -> None:
    """Write the transaction's changes to the figures; called just before it commits."""
    changes: dict[tuple[uuid.UUID, date], Figures] = session.info.pop(_PENDING, {})
    changes = {key: figures for key, figures in changes.items() if any(figures.values())}
    if not changes:
        return
    totals = _by_owner(changes)
    now = utcnow()
    dialect = session.get_bind().dialect.name
    # Owners first, then their days, each in key order: the same order in every transaction.
    await session.execute(_upsert(dialect, OwnerFigures, ("owner_id",), [
        {"owner_id": owner_id, **_row(figures), "created_at": now, "updated_at": now}
        for owner_id, figures in sorted(totals.items())
    ]))
    await session.execute(_upsert(dialect, OwnerDayFigures, ("owner_id", "day"), [
        {"owner_id": owner_id, "day": day, **_row(figures), "created_at": now, "updated_at": now}
        for (owner_id, day), figures in sorted(changes.items())
    ]))
    created = _by_day(changes)
    if any(created.values()):
        # Any of the day's rows takes the change (their sum is the day's count): one at random, the same for
        # every day of this transaction, spreads concurrent submissions over the rows.
        shard = random.randrange(DAY_SHARDS)
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(DayTaskCounts).values([
            {"day": day, "shard": shard, "tasks": count} for day, count in sorted(created.items()) if count])
        await session.execute(statement.on_conflict_do_update(
            index_elements=["day", "shard"], set_={"tasks": DayTaskCounts.tasks + statement.excluded.tasks}))


def _tasks(figures: Mapping[str, float]) -> int:
    """How many tasks figures count: one status each."""
    return int(sum(figures.get(name, 0) for name in STATUS_FIGURES.values()))


def _by_owner(days: Mapping[tuple[uuid.UUID, date], Mapping[str, float]]) -> dict[uuid.UUID, Figures]:
    """Figures by owner and day, summed by owner."""
    owners: dict[uuid.UUID, Figures] = {}
    for (owner_id, _), day_figures in days.items():
        owners.setdefault(owner_id, Figures()).add(day_figures)
    return owners


def _row(figures: Figures) -> dict[str, float]:
    return {name: figures.get(name, 0) for name in FIGURE_NAMES}


def _upsert(dialect: str, model: type[OwnerFigures] | type[OwnerDayFigures], keys: tuple[str, ...],
            rows: list[dict[str, Any]]) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(rows)
    table = model.__table__
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={**{name: table.c[name] + statement.excluded[name] for name in FIGURE_NAMES},
              "updated_at": statement.excluded.updated_at},
    )


def _figures_of(row: Any) -> Figures:
    # PostgreSQL sums integers as numeric: back to int and float here.
    mapping = row._mapping
    return Figures({name: (float if name.endswith("_sum") else int)(mapping[name] or 0) for name in FIGURE_NAMES})


def _summed(model: type[OwnerFigures] | type[OwnerDayFigures]) -> list[Any]:
    return [func.sum(getattr(model, name)).label(name) for name in FIGURE_NAMES]


async def owner_totals(connection: AsyncConnection, owner_id: uuid.UUID | None) -> Figures:
    """One owner's figures, or (None) everyone's: a read by key, or a sum of a row per owner."""
    statement = select(*_summed(OwnerFigures))
    if owner_id is not None:
        statement = statement.where(OwnerFigures.owner_id == owner_id)
    return _figures_of((await connection.execute(statement)).one())


async def day_totals(connection: AsyncConnection, owner_id: uuid.UUID | None, first: date | None,
                     last: date | None) -> Figures:
    """The figures of the tasks created on the days from `first` to `last` (both included; None: open)."""
    statement = select(*_summed(OwnerDayFigures)).where(*_days(owner_id, first, last))
    return _figures_of((await connection.execute(statement)).one())


async def tasks_per_day(connection: AsyncConnection, owner_id: uuid.UUID | None, first: date,
                        last: date) -> dict[date, int]:
    """How many tasks one owner, or (None) everyone, created on each day from `first` to `last`."""
    if owner_id is None:
        everyone = (select(DayTaskCounts.day, func.sum(DayTaskCounts.tasks))
                    .where(DayTaskCounts.day >= first, DayTaskCounts.day <= last).group_by(DayTaskCounts.day))
        return {_as_date(day): int(count) for day, count in await connection.execute(everyone) if count}
    created = sum(getattr(OwnerDayFigures, name) for name in STATUS_FIGURES.values())
    statement = (select(OwnerDayFigures.day, func.sum(created))
                 .where(*_days(owner_id, first, last)).group_by(OwnerDayFigures.day))
    return {_as_date(day): int(count) for day, count in await connection.execute(statement)}


def _days(owner_id: uuid.UUID | None, first: date | None, last: date | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if owner_id is not None:
        conditions.append(OwnerDayFigures.owner_id == owner_id)
    if first is not None:
        conditions.append(OwnerDayFigures.day >= first)
    if last is not None:
        conditions.append(OwnerDayFigures.day <= last)
    return conditions


def task_day(dialect: str) -> ColumnElement[Any]:
    """A task's day (UTC) in SQL, as `day_of` gives it in Python."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", Task.created_at), Date)
    # SQLite keeps UTC text; date() takes its first ten characters' day.
    return func.date(Task.created_at)


async def recount(connection: AsyncConnection, where: ColumnElement[bool] | None = None
                  ) -> dict[tuple[uuid.UUID, date], Figures]:
    """The figures of the tasks that meet `where`, by owner and day, counted from the base tables."""
    day = task_day(connection.dialect.name).label("day")
    condition = true() if where is None else where
    with_analysis = select(Task.user_id, day).join(Analysis, Analysis.task_id == Task.id).where(condition)
    counted_by: list[tuple[Select, Mapping[Any, str]]] = [
        (select(Task.user_id, day).where(condition).add_columns(Task.status, func.count())
         .group_by(Task.user_id, day, Task.status), STATUS_FIGURES),
        (with_analysis.add_columns(Analysis.verdict, func.count()).group_by(Task.user_id, day, Analysis.verdict),
         VERDICT_FIGURES),
        (with_analysis.join(Finding, Finding.analysis_id == Analysis.id).add_columns(Finding.severity, func.count())
         .group_by(Task.user_id, day, Finding.severity), SEVERITY_FIGURES),
    ]
    counts: dict[tuple[uuid.UUID, date], Figures] = {}
    for statement, names in counted_by:
        for owner_id, task_day_value, value, count in await connection.execute(statement):
            counts.setdefault((owner_id, _as_date(task_day_value)), Figures())[names[value]] += count
    scores = with_analysis.add_columns(
        func.coalesce(func.sum(Analysis.compliance_score), 0.0), func.count(Analysis.compliance_score),
        func.coalesce(func.sum(Analysis.confidence_score), 0.0), func.count(Analysis.confidence_score),
    ).group_by(Task.user_id, day)
    for owner_id, task_day_value, *values in await connection.execute(scores):
        counts.setdefault((owner_id, _as_date(task_day_value)), Figures()).add(dict(zip(SCORE_FIGURES, values)))
    return counts


async def stored(connection: AsyncConnection) -> tuple[dict[uuid.UUID, Figures], dict[tuple[uuid.UUID, date], Figures]]:
    """The maintained figures as stored: by owner, and by owner and day."""
    owners = {row.owner_id: _figures_of(row) for row in await connection.execute(select(OwnerFigures))}
    days = {(row.owner_id, _as_date(row.day)): _figures_of(row) for row in await connection.execute(select(OwnerDayFigures))}
    return owners, days


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True)
class Drift:
    """Where the kept figures and a recount from the base tables disagree."""

    owners_checked: int
    days_checked: int
    differences: list[str]


async def drift(connection: AsyncConnection) -> Drift:
    """Recount every owner's figures from the base tables and compare them with the kept ones."""
    counted_days = await recount(connection)
    counted_owners = _by_owner(counted_days)
    kept_owners, kept_days = await stored(connection)
    differences: list[str] = []
    for owner_id in sorted(kept_owners.keys() | counted_owners.keys()):
        if found := _difference(kept_owners.get(owner_id, Figures()), counted_owners.get(owner_id, Figures())):
            differences.append(f"owner {owner_id}: {found}")
    for owner_id, day in sorted(kept_days.keys() | counted_days.keys()):
        if found := _difference(kept_days.get((owner_id, day), Figures()), counted_days.get((owner_id, day), Figures())):
            differences.append(f"owner {owner_id} on {day}: {found}")
    kept_everyone = await tasks_per_day(connection, None, date.min, date.max)
    counted_everyone = _by_day(counted_days)
    for day in sorted(kept_everyone.keys() | counted_everyone.keys()):
        kept, counted = kept_everyone.get(day, 0), counted_everyone.get(day, 0)
        if kept != counted:
            differences.append(f"everyone's tasks on {day}: {kept}≠{counted}")
    return Drift(len(kept_owners.keys() | counted_owners.keys()), len(kept_days.keys() | counted_days.keys()),
                 differences)


def _by_day(days: Mapping[tuple[uuid.UUID, date], Mapping[str, float]]) -> dict[date, int]:
    """Tasks by owner and day, summed by day."""
    everyone: dict[date, int] = {}
    for (_, day), day_figures in days.items():
        everyone[day] = everyone.get(day, 0) + _tasks(day_figures)
    return everyone


def _difference(kept: Figures, counted: Figures) -> str:
    """The figures that differ, as 'name kept≠counted'; sums of scores within rounding are equal."""
    return ", ".join(
        f"{name} {kept[name]:g}≠{counted[name]:g}" for name in FIGURE_NAMES
        if abs(kept[name] - counted[name]) > (1e-6 * max(1.0, abs(counted[name])) if name.endswith("_sum") else 0)
    )


async def rebuild(connection: AsyncConnection) -> None:
    """Replace the kept figures with a recount: for rows loaded in bulk, around the domain operations."""
    counted_days = await recount(connection)
    await connection.execute(delete(DayTaskCounts))
    await connection.execute(delete(OwnerDayFigures))
    await connection.execute(delete(OwnerFigures))
    now = utcnow()
    counted_owners = _by_owner(counted_days)
    if counted_owners:
        await connection.execute(insert(OwnerFigures), [
            {"owner_id": owner_id, **_row(owner_figures), "created_at": now, "updated_at": now}
            for owner_id, owner_figures in sorted(counted_owners.items())])
        await connection.execute(insert(OwnerDayFigures), [
            {"owner_id": owner_id, "day": day, **_row(day_figures), "created_at": now, "updated_at": now}
            for (owner_id, day), day_figures in sorted(counted_days.items())])
        await connection.execute(insert(DayTaskCounts), [
            {"day": day, "shard": 0, "tasks": count} for day, count in sorted(_by_day(counted_days).items())])

"""Dashboard figures, read from the figures kept per owner (db/figures.py), exact and flat at any size.

Without a window of creation times, a USER's dashboard is one row read by key and its days' rows;
a WORKER's or an ADMIN's a sum of one row per owner. With a window, the whole days inside it come
from the per-day rows, and only the parts of days at its two ends (when it does not start or end at
midnight UTC) are counted from the tasks themselves: at most two days of one owner's tasks.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncConnection

from db import figures
from db.access import Viewer
from db.base import utcnow
from db.enums import Severity, TaskStatus, Verdict
from db.listing import TaskCriteria, listed_owner
from db.models import Task


@dataclass(frozen=True)
class DashboardFigures:
    total_tasks: int
    tasks_by_status: dict[TaskStatus, int]
    analyses_by_verdict: dict[Verdict, int]
    findings_by_severity: dict[Severity, int]
    average_compliance_score: float | None
    average_confidence_score: float | None
    tasks_per_day: list[tuple[date, int]]


async def dashboard_figures(
    connection: AsyncConnection, viewer: Viewer, criteria: TaskCriteria, days: int, now: datetime | None = None
) -> DashboardFigures:
    owner_id = listed_owner(viewer, criteria)
    today = (now or utcnow()).date()
    first_day = today - timedelta(days=days - 1)
    after, before = criteria.created_after, criteria.created_before
    if after is None and before is None:
        totals = await figures.owner_totals(connection, owner_id)
        per_day = await figures.tasks_per_day(connection, owner_id, first_day, today)
    else:
        totals, per_day = await _window(connection, owner_id, after, before, first_day, today)
    return DashboardFigures(
        total_tasks=int(sum(totals[name] for name in figures.STATUS_FIGURES.values())),
        tasks_by_status={status: int(totals[name]) for status, name in figures.STATUS_FIGURES.items()},
        analyses_by_verdict={verdict: int(totals[name]) for verdict, name in figures.VERDICT_FIGURES.items()},
        findings_by_severity={severity: int(totals[name]) for severity, name in figures.SEVERITY_FIGURES.items()},
        average_compliance_score=_average(totals, "compliance"),
        average_confidence_score=_average(totals, "confidence"),
        tasks_per_day=[(first_day + timedelta(days=offset), per_day.get(first_day + timedelta(days=offset), 0))
                       for offset in range(days)],
    )


async def _window(
    connection: AsyncConnection, owner_id: uuid.UUID | None, after: datetime | None,
    before: datetime | None, first_day: date, today: date,
) -> tuple[figures.Figures, dict[date, int]]:
    """The figures of the tasks created in [after, before): whole days from their rows, the ends counted."""
    whole_from = None if after is None else _day_from(after)
    whole_until = None if before is None else before.astimezone(UTC).date() - timedelta(days=1)
    totals = figures.Figures()
    per_day: dict[date, int] = {}
    if whole_from is None or whole_until is None or whole_from <= whole_until:
        totals = await figures.day_totals(connection, owner_id, whole_from, whole_until)
        shown_from = max(first_day, whole_from) if whole_from else first_day
        shown_until = min(today, whole_until) if whole_until else today
        if shown_from <= shown_until:
            per_day = await figures.tasks_per_day(connection, owner_id, shown_from, shown_until)
    for start, end in _partial_days(after, before):
        owned = [] if owner_id is None else [Task.user_id == owner_id]
        condition = and_(Task.created_at >= start, Task.created_at < end, *owned)
        for (_, day), counted in (await figures.recount(connection, condition)).items():
            totals.add(counted)
            if first_day <= day <= today:
                per_day[day] = per_day.get(day, 0) + int(sum(counted[name] for name in figures.STATUS_FIGURES.values()))
    return totals, per_day


def _day_from(moment: datetime) -> date:
    """The first day wholly at or after `moment`."""
    moment = moment.astimezone(UTC)
    return moment.date() if moment.time() == time() else moment.date() + timedelta(days=1)


def _partial_days(after: datetime | None, before: datetime | None) -> list[tuple[datetime, datetime]]:
    """The parts of days the window covers without covering the whole day: at most two."""
    parts: list[tuple[datetime, datetime]] = []
    if after is not None and after.astimezone(UTC).time() != time():
        end_of_day = datetime.combine(after.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
        parts.append((after, end_of_day if before is None else min(before, end_of_day)))
    if before is not None and before.astimezone(UTC).time() != time():
        start_of_day = datetime.combine(before.astimezone(UTC).date(), time(), UTC)
        start = start_of_day if after is None else max(after, start_of_day)
        if not parts or parts[0][1] <= start:
            parts.append((start, before))
    return [(start, end) for start, end in parts if start < end]


def _average(totals: figures.Figures, score: str) -> float | None:
    count = totals[f"{score}_count"]
    return totals[f"{score}_sum"] / count if count else None

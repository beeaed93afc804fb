"""Dashboard figures, each one SQL aggregate over the viewer's tasks."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import Viewer
from db.base import utcnow
from db.enums import Severity, TaskStatus, Verdict
from db.listing import TaskCriteria, task_list
from db.models import Analysis, Finding, Task


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
    session: AsyncSession, viewer: Viewer, criteria: TaskCriteria, days: int, now: datetime | None = None
) -> DashboardFigures:
    scoped = task_list(viewer, criteria, (Task.id,)).subquery()
    by_status = dict(
        (await session.execute(
            select(Task.status, func.count()).where(Task.id.in_(select(scoped.c.id))).group_by(Task.status)
        )).all()
    )
    verdict_rows = (await session.execute(
        select(
            Analysis.verdict,
            func.count(),
            func.sum(Analysis.compliance_score),
            func.count(Analysis.compliance_score),
            func.sum(Analysis.confidence_score),
            func.count(Analysis.confidence_score),
        )
        .where(Analysis.task_id.in_(select(scoped.c.id)))
        .group_by(Analysis.verdict)
    )).all()
    by_severity = dict(
        (await session.execute(
            select(Finding.severity, func.count())
            .join(Analysis, Analysis.id == Finding.analysis_id)
            .where(Analysis.task_id.in_(select(scoped.c.id)))
            .group_by(Finding.severity)
        )).all()
    )
    today = (now or utcnow()).date()
    first_day = today - timedelta(days=days - 1)
    day = _utc_day(session)
    per_day: dict[Any, int] = dict(
        (await session.execute(
            select(day, func.count())
            .where(Task.id.in_(select(scoped.c.id)), day >= first_day)
            .group_by(day)
        )).all()
    )
    per_day = {_as_date(key): count for key, count in per_day.items()}
    compliance_sum = sum(row[2] or 0.0 for row in verdict_rows)
    compliance_count = sum(row[3] for row in verdict_rows)
    confidence_sum = sum(row[4] or 0.0 for row in verdict_rows)
    confidence_count = sum(row[5] for row in verdict_rows)
    return DashboardFigures(
        total_tasks=sum(by_status.values()),
        tasks_by_status={status: by_status.get(status, 0) for status in TaskStatus},
        analyses_by_verdict={verdict: 0 for verdict in Verdict} | {row[0]: row[1] for row in verdict_rows},
        findings_by_severity={severity: by_severity.get(severity, 0) for severity in Severity},
        average_compliance_score=compliance_sum / compliance_count if compliance_count else None,
        average_confidence_score=confidence_sum / confidence_count if confidence_count else None,
        tasks_per_day=[
            (first_day + timedelta(days=offset), per_day.get(first_day + timedelta(days=offset), 0))
            for offset in range(days)
        ],
    )


def _utc_day(session: AsyncSession):  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", Task.created_at), Date)
    # SQLite keeps UTC text; date() takes its first ten characters' day.
    return func.date(Task.created_at)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)

from datetime import date, datetime

import strawberry

from db.dashboard import dashboard_figures
from db.errors import InvalidInput
from db.listing import TaskCriteria
from graph.access.permissions import IsAuthenticated
from graph.context import Info
from graph.enums import Severity, TaskStatus, Verdict
from graph.relay import from_global_id

MAX_WINDOW_DAYS = 366


@strawberry.input
class DashboardFilter:
    created_after: datetime | None = None
    created_before: datetime | None = None
    owner_id: strawberry.ID | None = strawberry.field(default=None, description="WORKER and ADMIN only.")
    days: int = strawberry.field(default=30, description="How many days `tasksPerDay` covers, ending today (UTC).")


@strawberry.type
class StatusCount:
    status: TaskStatus
    count: int


@strawberry.type
class VerdictCount:
    verdict: Verdict
    count: int


@strawberry.type
class SeverityCount:
    severity: Severity
    count: int


@strawberry.type
class DayCount:
    day: date
    count: int


@strawberry.type
class Dashboard:
    total_tasks: int
    tasks_by_status: list[StatusCount]
    analyses_by_verdict: list[VerdictCount]
    findings_by_severity: list[SeverityCount]
    average_compliance_score: float | None
    average_confidence_score: float | None
    tasks_per_day: list[DayCount]


@strawberry.type
class DashboardQueries:
    @strawberry.field(permission_classes=[IsAuthenticated], description="Aggregates over the tasks the viewer may see.")
    async def dashboard(self, info: Info, filter: DashboardFilter | None = None) -> Dashboard:
        viewer = info.context.require_viewer()
        filter = filter or DashboardFilter()
        if not 1 <= filter.days <= MAX_WINDOW_DAYS:
            raise InvalidInput(f"days must be between 1 and {MAX_WINDOW_DAYS}")
        criteria = TaskCriteria(
            created_after=filter.created_after,
            created_before=filter.created_before,
            owner_id=from_global_id(filter.owner_id, "User")[1] if filter.owner_id else None,
        )
        async with info.context.database.read() as connection:
            figures = await dashboard_figures(connection, viewer, criteria, filter.days)
        return Dashboard(
            total_tasks=figures.total_tasks,
            tasks_by_status=[StatusCount(status=s, count=c) for s, c in figures.tasks_by_status.items()],
            analyses_by_verdict=[VerdictCount(verdict=v, count=c) for v, c in figures.analyses_by_verdict.items()],
            findings_by_severity=[SeverityCount(severity=s, count=c) for s, c in figures.findings_by_severity.items()],
            average_compliance_score=figures.average_compliance_score,
            average_confidence_score=figures.average_confidence_score,
            tasks_per_day=[DayCount(day=d, count=c) for d, c in figures.tasks_per_day],
        )

import strawberry

from db.listing import FINDING_SORT_KEY, FindingCriteria, finding_count, finding_list
from db.pagination import Count, keyset_page
from graph.access.permissions import IsAuthenticated
from graph.analyses.types import FINDING_COLUMNS, Finding
from graph.context import Info
from graph.enums import Severity, TaskStatus, Verdict
from graph.relay import Connection, connection_from_page, decode_cursor, page_size


@strawberry.input
class FindingFilter:
    severity: list[Severity] | None = None
    rule_id: str | None = None
    category: str | None = None
    verdict: list[Verdict] | None = strawberry.field(default=None, description="The verdict of the finding's analysis.")
    task_status: list[TaskStatus] | None = None


@strawberry.type
class FindingQueries:
    @strawberry.field(permission_classes=[IsAuthenticated], description="Findings, newest first.")
    async def findings(
        self, info: Info, filter: FindingFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[Finding]:
        context = info.context
        viewer = context.require_viewer()
        first, _ = page_size(first, None, context.settings.max_page_size)
        filter = filter or FindingFilter()
        criteria = FindingCriteria(
            severities=filter.severity,
            rule_id=filter.rule_id,
            category=filter.category,
            verdicts=filter.verdict,
            task_statuses=filter.task_status,
        )
        names = context.loaders.selection.names(Finding, FINDING_COLUMNS)
        statement = finding_list(viewer, criteria, FINDING_COLUMNS.columns_for(names))
        tag = "findings"
        page = await keyset_page(
            context.database.rows, statement, FINDING_SORT_KEY, first=first,
            after=decode_cursor(after, tag, FINDING_SORT_KEY),
        )

        async def count() -> Count:
            async with context.database.read() as connection:
                return await finding_count(connection, viewer, criteria, context.settings.count_limit)

        findings = [Finding.from_row(row, names) for row in page.rows]
        return connection_from_page(page, findings, tag, FINDING_SORT_KEY, count)

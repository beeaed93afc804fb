"""recordAnalysis: an analysis with its findings and their sources, written in one transaction."""

from typing import Any

import strawberry
from sqlalchemy import select

from db import models
from db.analyses import record_analysis
from db.claims import parse_claim_id
from db.python_work import off_the_loop
from graph.access.permissions import IsWorker
from graph.analyses.types import ANALYSIS_COLUMNS, Analysis
from graph.context import Info
from graph.enums import Verdict
from graph.relay import from_global_id
from graph.scalars import JSON, FindingList, check_json
from graph.tasks.mutations import CLAIM_ID_DESCRIPTION, fresh_task
from graph.tasks.types import Task


@strawberry.input
class RecordAnalysisInput:
    task_id: strawberry.ID
    claim_id: strawberry.ID | None = strawberry.field(default=None, description=CLAIM_ID_DESCRIPTION)
    verdict: Verdict
    equipment_type: str | None = None
    test_type: str | None = None
    equipment_tag: str | None = None
    compliance_score: float | None = strawberry.field(default=None, description="0 to 100.")
    confidence_score: float | None = strawberry.field(default=None, description="0 to 1.")
    summary: str | None = None
    extraction_result: JSON | None = None
    validation_result: JSON | None = None
    findings: FindingList | None = None
    replace: bool = strawberry.field(
        default=False,
        description=(
            "Swap the analysis this claim already recorded, with all its findings, for this one. An analysis "
            "an earlier attempt (a claim whose lease ran out) left is replaced without asking."
        ),
    )


@strawberry.type
class RecordAnalysisPayload:
    analysis: Analysis
    task: Task


ANALYSIS_FIELDS = ("verdict", "equipment_type", "test_type", "equipment_tag", "compliance_score", "confidence_score",
                   "summary", "extraction_result", "validation_result")


def analysis_data(input: RecordAnalysisInput) -> dict[str, Any]:
    """The input in the shape db.inputs.AnalysisInput validates: findings with their JSON checked and artifact
    ids decoded. Per finding, so called off the event loop."""
    data = {name: getattr(input, name) for name in ANALYSIS_FIELDS}
    data["findings"] = [_finding_data(finding) for finding in input.findings or ()]
    return data


def _finding_data(finding: object) -> object:
    if not isinstance(finding, dict):
        return finding
    if finding.get("evidence") is not None:
        check_json(finding["evidence"])
    if isinstance(artifact := finding.get("artifactId"), str):
        # A copy only then: thousands of findings mean thousands of objects for the collector to go through.
        return finding | {"artifactId": from_global_id(artifact, "Artifact")[1]}
    return finding


@strawberry.type
class AnalysisMutations:
    @strawberry.mutation(
        permission_classes=[IsWorker],
        description=(
            "Record the analysis of a PROCESSING or COMPLETED task, with its findings, all or nothing, "
            "under the claim that processes (or completed) the task."
        ),
    )
    async def record_analysis(self, info: Info, input: RecordAnalysisInput) -> RecordAnalysisPayload:
        context = info.context
        task_id = from_global_id(input.task_id, "Task")[1]
        async with context.database.transaction() as session:
            recorded = await record_analysis(
                session, task_id, await off_the_loop(analysis_data, input), viewer=context.require_viewer(),
                claim_id=parse_claim_id(input.claim_id), replace=input.replace,
            )
        async with context.database.sessions() as session:
            row = (
                await session.execute(select(*ANALYSIS_COLUMNS).where(models.Analysis.id == recorded.id))
            ).one()
        context.loaders.analysis_by_task_id.clear(task_id)
        return RecordAnalysisPayload(analysis=Analysis.from_row(row), task=await fresh_task(info, task_id))

"""recordAnalysis: an analysis with its findings and their sources, written in one transaction."""

import dataclasses
from typing import Any

import strawberry
from sqlalchemy import select

from db import models
from db.analyses import record_analysis
from db.claims import parse_claim_id
from graph.analyses.types import ANALYSIS_COLUMNS, Analysis
from graph.context import Info
from graph.enums import Severity, Verdict
from graph.permissions import IsWorker
from graph.relay import from_global_id
from graph.scalars import JSON
from graph.tasks.mutations import CLAIM_ID_DESCRIPTION, fresh_task
from graph.tasks.types import Task


@strawberry.input
class SourceReferenceInput:
    page_number: int | None = strawberry.field(default=None, description="1 or more.")
    section: str | None = None
    snippet: str | None = None


@strawberry.input
class FindingInput:
    severity: Severity
    rule_id: str
    message: str
    category: str | None = None
    evidence: JSON | None = None
    remediation: str | None = None
    confidence: float | None = strawberry.field(default=None, description="0 to 1.")
    artifact_id: strawberry.ID | None = strawberry.field(
        default=None, description="An artifact of the same task that shows the evidence."
    )
    sources: list[SourceReferenceInput] = strawberry.field(default_factory=list)


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
    findings: list[FindingInput] = strawberry.field(default_factory=list)
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


def analysis_data(input: RecordAnalysisInput) -> dict[str, Any]:
    """The input in the shape db.inputs.AnalysisInput validates, with artifact ids decoded."""
    data = dataclasses.asdict(input)  # type: ignore[call-overload]
    del data["task_id"], data["claim_id"], data["replace"]
    for finding in data["findings"]:
        if finding["artifact_id"] is not None:
            finding["artifact_id"] = from_global_id(finding["artifact_id"], "Artifact")[1]
    return data


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
                session, task_id, analysis_data(input), viewer=context.require_viewer(),
                claim_id=parse_claim_id(input.claim_id), replace=input.replace,
            )
        async with context.database.sessions() as session:
            row = (
                await session.execute(select(*ANALYSIS_COLUMNS).where(models.Analysis.id == recorded.id))
            ).one()
        context.loaders.analysis_by_task_id.clear(task_id)
        return RecordAnalysisPayload(analysis=Analysis.from_row(row), task=await fresh_task(info, task_id))

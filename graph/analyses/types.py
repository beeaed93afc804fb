import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Self

import strawberry
from sqlalchemy import Row

from db import models
from graph.context import Info
from graph.engine.batching import loads
from graph.engine.rows import RowShape
from graph.enums import Severity, Verdict
from graph.relay import Node
from graph.scalars import JSON
from graph.tasks.types import Artifact, Task, decode_json, raw_json


@strawberry.type
class FindingCounts:
    critical: int
    major: int
    minor: int
    info: int
    total: int


@strawberry.type
class Analysis(Node):
    verdict: Verdict
    equipment_type: str | None
    test_type: str | None
    equipment_tag: str | None
    compliance_score: float | None = strawberry.field(description="0 to 100.")
    confidence_score: float | None = strawberry.field(description="0 to 1.")
    summary: str | None
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[uuid.UUID]
    task_pk: strawberry.Private[uuid.UUID]
    extraction_json: strawberry.Private[str | None]
    validation_json: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: Row, names: Sequence[str] | None = None) -> Self:
        return ANALYSIS_COLUMNS.build(cls, row, names)

    @strawberry.field
    def extraction_result(self) -> JSON | None:
        return decode_json(self.extraction_json)

    @strawberry.field
    def validation_result(self) -> JSON | None:
        return decode_json(self.validation_json)

    @strawberry.field
    @loads("task_by_id", key="task_pk")
    async def task(self, info: Info) -> Task:
        task = await info.context.loaders.task_by_id.load(self.task_pk)
        assert task is not None, "a visible analysis belongs to a visible task"
        return task

    @strawberry.field(description="The findings, most severe first; optionally only some severities.")
    @loads("findings_by_analysis_id", key="pk")
    async def findings(self, info: Info, severity: list[Severity] | None = None) -> list["Finding"]:
        findings = await info.context.loaders.findings_by_analysis_id.load(self.pk)
        if severity is None:
            return findings
        wanted = set(severity)
        return [finding for finding in findings if finding.severity in wanted]

    @strawberry.field
    async def finding_counts(self, info: Info) -> FindingCounts:
        findings = await info.context.loaders.findings_by_analysis_id.load(self.pk)
        counts = {level: 0 for level in Severity}
        for finding in findings:
            counts[finding.severity] += 1
        return FindingCounts(
            critical=counts[Severity.CRITICAL],
            major=counts[Severity.MAJOR],
            minor=counts[Severity.MINOR],
            info=counts[Severity.INFO],
            total=len(findings),
        )


ANALYSIS_COLUMNS = RowShape.of(
    Analysis, models.Analysis,
    always=("pk", "task_pk"),
    needs={
        "id": (),
        "extraction_result": ("extraction_json",),
        "validation_result": ("validation_json",),
        "task": (),
        "findings": (),
        "finding_counts": (),
    },
    pk=models.Analysis.id,
    task_pk=models.Analysis.task_id,
    extraction_json=raw_json(models.Analysis.extraction_result, "extraction_json"),
    validation_json=raw_json(models.Analysis.validation_result, "validation_json"),
)


@strawberry.type
class Finding(Node):
    severity: Severity
    rule_id: str
    category: str | None
    message: str
    remediation: str | None
    confidence: float | None
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[uuid.UUID]
    analysis_pk: strawberry.Private[uuid.UUID]
    artifact_pk: strawberry.Private[uuid.UUID | None]
    evidence_json: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: Row, names: Sequence[str] | None = None) -> Self:
        return FINDING_COLUMNS.build(cls, row, names)

    @strawberry.field
    def evidence(self) -> JSON | None:
        return decode_json(self.evidence_json)

    @strawberry.field
    @loads("analysis_by_id", key="analysis_pk")
    async def analysis(self, info: Info) -> Analysis:
        analysis = await info.context.loaders.analysis_by_id.load(self.analysis_pk)
        assert analysis is not None, "a visible finding belongs to a visible analysis"
        return analysis

    @strawberry.field
    @loads("sources_by_finding_id", key="pk")
    async def sources(self, info: Info) -> list["SourceReference"]:
        return await info.context.loaders.sources_by_finding_id.load(self.pk)

    @strawberry.field
    async def artifact(self, info: Info) -> Artifact | None:
        if self.artifact_pk is None:
            return None
        return await info.context.loaders.artifact_by_id.load(self.artifact_pk)


FINDING_COLUMNS = RowShape.of(
    Finding, models.Finding,
    always=("pk", "analysis_pk", "severity"),
    needs={
        "id": (),
        "evidence": ("evidence_json",),
        "analysis": (),
        "sources": (),
        "artifact": ("artifact_pk",),
    },
    pk=models.Finding.id,
    analysis_pk=models.Finding.analysis_id,
    evidence_json=raw_json(models.Finding.evidence, "evidence_json"),
    artifact_pk=models.Finding.artifact_id,
)


@strawberry.type
class SourceReference(Node):
    page_number: int | None
    section: str | None
    snippet: str | None
    pk: strawberry.Private[uuid.UUID]
    finding_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row, names: Sequence[str] | None = None) -> Self:
        return SOURCE_COLUMNS.build(cls, row, names)

    @strawberry.field
    @loads("finding_by_id", key="finding_pk")
    async def finding(self, info: Info) -> Finding:
        finding = await info.context.loaders.finding_by_id.load(self.finding_pk)
        assert finding is not None, "a visible source belongs to a visible finding"
        return finding


SOURCE_COLUMNS = RowShape.of(
    SourceReference, models.SourceReference,
    always=("pk", "finding_pk"),
    needs={
        "id": (),
        "finding": (),
    },
    pk=models.SourceReference.id,
    finding_pk=models.SourceReference.finding_id,
)

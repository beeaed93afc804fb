import uuid
from datetime import datetime
from typing import Any, Self

import strawberry
from sqlalchemy import Row

from db import models
from graph.context import Info
from graph.enums import Severity, Verdict
from graph.relay import Node, to_global_id
from graph.scalars import JSON
from graph.tasks.types import Artifact, Task, decode_json, raw_json

ANALYSIS_COLUMNS = (
    models.Analysis.id,
    models.Analysis.task_id,
    models.Analysis.equipment_type,
    models.Analysis.test_type,
    models.Analysis.equipment_tag,
    models.Analysis.verdict,
    models.Analysis.compliance_score,
    models.Analysis.confidence_score,
    models.Analysis.summary,
    raw_json(models.Analysis.extraction_result, "extraction_json"),
    raw_json(models.Analysis.validation_result, "validation_json"),
    models.Analysis.created_at,
    models.Analysis.updated_at,
)

FINDING_COLUMNS = (
    models.Finding.id,
    models.Finding.analysis_id,
    models.Finding.severity,
    models.Finding.rule_id,
    models.Finding.category,
    models.Finding.message,
    raw_json(models.Finding.evidence, "evidence_json"),
    models.Finding.remediation,
    models.Finding.confidence,
    models.Finding.artifact_id,
    models.Finding.created_at,
    models.Finding.updated_at,
)

SOURCE_COLUMNS = (
    models.SourceReference.id,
    models.SourceReference.finding_id,
    models.SourceReference.page_number,
    models.SourceReference.section,
    models.SourceReference.snippet,
)


@strawberry.type
class FindingCounts:
    critical: int
    major: int
    minor: int
    info: int
    total: int


@strawberry.type
class Analysis(Node):
    id: strawberry.ID
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
    def from_row(cls, row: Row[Any]) -> Self:
        return cls(
            id=to_global_id("Analysis", row.id),
            pk=row.id,
            task_pk=row.task_id,
            equipment_type=row.equipment_type,
            test_type=row.test_type,
            equipment_tag=row.equipment_tag,
            verdict=row.verdict,
            compliance_score=row.compliance_score,
            confidence_score=row.confidence_score,
            summary=row.summary,
            extraction_json=row.extraction_json,
            validation_json=row.validation_json,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field
    def extraction_result(self) -> JSON | None:
        return decode_json(self.extraction_json)

    @strawberry.field
    def validation_result(self) -> JSON | None:
        return decode_json(self.validation_json)

    @strawberry.field
    async def task(self, info: Info) -> Task:
        task = await info.context.loaders.task_by_id.load(self.task_pk)
        assert task is not None, "a visible analysis belongs to a visible task"
        return task

    @strawberry.field(description="The findings, most severe first; optionally only some severities.")
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


@strawberry.type
class Finding(Node):
    id: strawberry.ID
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
    def from_row(cls, row: Row[Any]) -> Self:
        return cls(
            id=to_global_id("Finding", row.id),
            pk=row.id,
            analysis_pk=row.analysis_id,
            artifact_pk=row.artifact_id,
            severity=row.severity,
            rule_id=row.rule_id,
            category=row.category,
            message=row.message,
            evidence_json=row.evidence_json,
            remediation=row.remediation,
            confidence=row.confidence,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field
    def evidence(self) -> JSON | None:
        return decode_json(self.evidence_json)

    @strawberry.field
    async def analysis(self, info: Info) -> Analysis:
        analysis = await info.context.loaders.analysis_by_id.load(self.analysis_pk)
        assert analysis is not None, "a visible finding belongs to a visible analysis"
        return analysis

    @strawberry.field
    async def sources(self, info: Info) -> list["SourceReference"]:
        return await info.context.loaders.sources_by_finding_id.load(self.pk)

    @strawberry.field
    async def artifact(self, info: Info) -> Artifact | None:
        if self.artifact_pk is None:
            return None
        return await info.context.loaders.artifact_by_id.load(self.artifact_pk)


@strawberry.type
class SourceReference(Node):
    id: strawberry.ID
    page_number: int | None
    section: str | None
    snippet: str | None
    pk: strawberry.Private[uuid.UUID]
    finding_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        return cls(
            id=to_global_id("SourceReference", row.id),
            pk=row.id,
            finding_pk=row.finding_id,
            page_number=row.page_number,
            section=row.section,
            snippet=row.snippet,
        )

    @strawberry.field
    async def finding(self, info: Info) -> Finding:
        finding = await info.context.loaders.finding_by_id.load(self.finding_pk)
        assert finding is not None, "a visible source belongs to a visible finding"
        return finding

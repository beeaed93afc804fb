import uuid
from collections.abc import Sequence

from sqlalchemy import case, select

from db import models
from db.access import analysis_scope, task_scope
from db.enums import Severity
from graph.analyses.types import (
    ANALYSIS_COLUMNS,
    FINDING_COLUMNS,
    SOURCE_COLUMNS,
    Analysis,
    Finding,
    SourceReference,
)
from graph.batching import BatchLoader, many_per_key, one_per_key

SEVERITY_RANK = case(
    {severity: rank for rank, severity in enumerate(Severity)}, value=models.Finding.severity
)


class AnalysisByIdLoader(BatchLoader[uuid.UUID, Analysis | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Analysis | None]:
        rows = await self.fetch(
            select(*ANALYSIS_COLUMNS).where(
                models.Analysis.id.in_(keys), task_scope(self.viewer, models.Analysis.task_id)
            )
        )
        return one_per_key(keys, {row.id: Analysis.from_row(row) for row in rows})


class AnalysisByTaskIdLoader(BatchLoader[uuid.UUID, Analysis | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Analysis | None]:
        rows = await self.fetch(
            select(*ANALYSIS_COLUMNS).where(
                models.Analysis.task_id.in_(keys), task_scope(self.viewer, models.Analysis.task_id)
            )
        )
        return one_per_key(keys, {row.task_id: Analysis.from_row(row) for row in rows})


class FindingsByAnalysisIdLoader(BatchLoader[uuid.UUID, list[Finding]]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[Finding]]:
        rows = await self.fetch(
            select(*FINDING_COLUMNS)
            .where(
                models.Finding.analysis_id.in_(keys),
                analysis_scope(self.viewer, models.Finding.analysis_id),
            )
            .order_by(SEVERITY_RANK, models.Finding.rule_id, models.Finding.id)
        )
        return many_per_key(keys, ((row.analysis_id, Finding.from_row(row)) for row in rows))


class FindingByIdLoader(BatchLoader[uuid.UUID, Finding | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Finding | None]:
        rows = await self.fetch(
            select(*FINDING_COLUMNS).where(
                models.Finding.id.in_(keys), analysis_scope(self.viewer, models.Finding.analysis_id)
            )
        )
        return one_per_key(keys, {row.id: Finding.from_row(row) for row in rows})


class SourcesByFindingIdLoader(BatchLoader[uuid.UUID, list[SourceReference]]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[SourceReference]]:
        rows = await self.fetch(
            select(*SOURCE_COLUMNS)
            .join(models.Finding, models.Finding.id == models.SourceReference.finding_id)
            .where(
                models.SourceReference.finding_id.in_(keys),
                analysis_scope(self.viewer, models.Finding.analysis_id),
            )
            .order_by(models.SourceReference.page_number, models.SourceReference.id)
        )
        return many_per_key(keys, ((row.finding_id, SourceReference.from_row(row)) for row in rows))


class SourceByIdLoader(BatchLoader[uuid.UUID, SourceReference | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[SourceReference | None]:
        rows = await self.fetch(
            select(*SOURCE_COLUMNS)
            .join(models.Finding, models.Finding.id == models.SourceReference.finding_id)
            .where(
                models.SourceReference.id.in_(keys),
                analysis_scope(self.viewer, models.Finding.analysis_id),
            )
        )
        return one_per_key(keys, {row.id: SourceReference.from_row(row) for row in rows})

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, select

from db import models
from db.access import Viewer, analysis_scope, task_scope
from db.enums import Severity
from graph.analyses.types import (
    ANALYSIS_COLUMNS,
    FINDING_COLUMNS,
    SOURCE_COLUMNS,
    Analysis,
    Finding,
    SourceReference,
)
from graph.batching import BatchLoader, KeyMatch, many_per_key, one_per_key

SEVERITY_RANK = case(
    {severity: rank for rank, severity in enumerate(Severity)}, value=models.Finding.severity
)


class AnalysisByIdLoader(BatchLoader[uuid.UUID, Analysis | None]):
    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch) -> Select[Any]:
        return select(*ANALYSIS_COLUMNS).where(
            key(models.Analysis.id), task_scope(viewer, models.Analysis.task_id)
        )

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Analysis | None]:
        rows = await self.fetch_keys(keys)
        return one_per_key(keys, {item.pk: item for item in map(Analysis.from_row, rows)})


class AnalysisByTaskIdLoader(BatchLoader[uuid.UUID, Analysis | None]):
    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch) -> Select[Any]:
        return select(*ANALYSIS_COLUMNS).where(
            key(models.Analysis.task_id), task_scope(viewer, models.Analysis.task_id)
        )

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Analysis | None]:
        rows = await self.fetch_keys(keys)
        return one_per_key(keys, {item.task_pk: item for item in map(Analysis.from_row, rows)})


class FindingsByAnalysisIdLoader(BatchLoader[uuid.UUID, list[Finding]]):
    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch) -> Select[Any]:
        return (
            select(*FINDING_COLUMNS)
            .where(key(models.Finding.analysis_id), analysis_scope(viewer, models.Finding.analysis_id))
            .order_by(SEVERITY_RANK, models.Finding.rule_id, models.Finding.id)
        )

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[Finding]]:
        rows = await self.fetch_keys(keys)
        return many_per_key(keys, ((item.analysis_pk, item) for item in map(Finding.from_row, rows)))


class FindingByIdLoader(BatchLoader[uuid.UUID, Finding | None]):
    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch) -> Select[Any]:
        return select(*FINDING_COLUMNS).where(
            key(models.Finding.id), analysis_scope(viewer, models.Finding.analysis_id)
        )

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Finding | None]:
        rows = await self.fetch_keys(keys)
        return one_per_key(keys, {item.pk: item for item in map(Finding.from_row, rows)})


class SourcesByFindingIdLoader(BatchLoader[uuid.UUID, list[SourceReference]]):
    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch) -> Select[Any]:
        return (
            select(*SOURCE_COLUMNS)
            .join(models.Finding, models.Finding.id == models.SourceReference.finding_id)
            .where(key(models.SourceReference.finding_id), analysis_scope(viewer, models.Finding.analysis_id))
            .order_by(models.SourceReference.page_number, models.SourceReference.id)
        )

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[SourceReference]]:
        rows = await self.fetch_keys(keys)
        return many_per_key(keys, ((item.finding_pk, item) for item in map(SourceReference.from_row, rows)))


class SourceByIdLoader(BatchLoader[uuid.UUID, SourceReference | None]):
    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch) -> Select[Any]:
        return (
            select(*SOURCE_COLUMNS)
            .join(models.Finding, models.Finding.id == models.SourceReference.finding_id)
            .where(key(models.SourceReference.id), analysis_scope(viewer, models.Finding.analysis_id))
        )

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[SourceReference | None]:
        rows = await self.fetch_keys(keys)
        return one_per_key(keys, {item.pk: item for item in map(SourceReference.from_row, rows)})

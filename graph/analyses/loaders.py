import uuid
from typing import Any

from sqlalchemy import Select, case, select

from db import models
from db.access import Viewer, among_visible_analyses, among_visible_tasks, analysis_scope, task_scope
from db.enums import Severity
from graph.analyses.types import (
    ANALYSIS_COLUMNS,
    FINDING_COLUMNS,
    SOURCE_COLUMNS,
    Analysis,
    Finding,
    SourceReference,
)
from graph.engine.batching import BatchLoader, KeyMatch
from graph.tasks.types import Task

SEVERITY_RANK = case(
    {severity: rank for rank, severity in enumerate(Severity)}, value=models.Finding.severity
)


Columns = tuple[Any, ...]


class AnalysisByIdLoader(BatchLoader[uuid.UUID, Analysis | None]):
    node, shape = Analysis, ANALYSIS_COLUMNS

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return select(*columns).where(key(models.Analysis.id), task_scope(viewer, models.Analysis.task_id))


class AnalysisByTaskIdLoader(BatchLoader[uuid.UUID, Analysis | None]):
    node, shape, parent = Analysis, ANALYSIS_COLUMNS, Task
    key_column = "task_pk"

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return among_visible_tasks(select(*columns), viewer, models.Analysis.task_id, key)


class FindingsByAnalysisIdLoader(BatchLoader[uuid.UUID, list[Finding]]):
    node, shape, parent = Finding, FINDING_COLUMNS, Analysis
    key_column, many = "analysis_pk", True

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return (
            among_visible_analyses(select(*columns), viewer, models.Finding.analysis_id, key)
            .order_by(models.Finding.analysis_id, SEVERITY_RANK, models.Finding.rule_id, models.Finding.id)
        )


class FindingByIdLoader(BatchLoader[uuid.UUID, Finding | None]):
    node, shape = Finding, FINDING_COLUMNS

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return select(*columns).where(key(models.Finding.id), analysis_scope(viewer, models.Finding.analysis_id))


class SourcesByFindingIdLoader(BatchLoader[uuid.UUID, list[SourceReference]]):
    node, shape, parent = SourceReference, SOURCE_COLUMNS, Finding
    key_column, many = "finding_pk", True

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return (
            select(*columns)
            .join(models.Finding, models.Finding.id == models.SourceReference.finding_id)
            .where(key(models.SourceReference.finding_id), analysis_scope(viewer, models.Finding.analysis_id))
            .order_by(models.SourceReference.finding_id, models.SourceReference.page_number, models.SourceReference.id)
        )


class SourceByIdLoader(BatchLoader[uuid.UUID, SourceReference | None]):
    node, shape = SourceReference, SOURCE_COLUMNS

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return (
            select(*columns)
            .join(models.Finding, models.Finding.id == models.SourceReference.finding_id)
            .where(key(models.SourceReference.id), analysis_scope(viewer, models.Finding.analysis_id))
        )

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Self

import orjson
import strawberry
from sqlalchemy import Row, Text, cast

from db import models
from graph.context import Info
from graph.enums import EventType, Severity, SortDirection, TaskStatus, Verdict
from graph.relay import Connection, Node, to_global_id
from graph.scalars import JSON, BigInt
from graph.users.types import User

if TYPE_CHECKING:
    from graph.analyses.types import Analysis

TASK_COLUMNS = (
    models.Task.id,
    models.Task.user_id,
    models.Task.status,
    models.Task.original_filename,
    models.Task.content_type,
    models.Task.file_size,
    models.Task.file_hash,
    models.Task.source_url,
    models.Task.page_count,
    models.Task.error_message,
    models.Task.started_at,
    models.Task.completed_at,
    models.Task.created_at,
    models.Task.updated_at,
    models.Task.last_event_sequence,
)


@strawberry.type
class Task(Node):
    id: strawberry.ID
    status: TaskStatus
    original_filename: str | None
    content_type: str | None
    file_size: BigInt | None
    file_hash: str | None = strawberry.field(description="SHA-256 of the file, in hex.")
    source_url: str | None
    page_count: int | None
    error_message: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[uuid.UUID]
    owner_id: strawberry.Private[uuid.UUID]
    event_count: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        return cls(
            id=to_global_id("Task", row.id),
            pk=row.id,
            owner_id=row.user_id,
            status=row.status,
            original_filename=row.original_filename,
            content_type=row.content_type,
            file_size=row.file_size,
            file_hash=row.file_hash,
            source_url=row.source_url,
            page_count=row.page_count,
            error_message=row.error_message,
            started_at=row.started_at,
            completed_at=row.completed_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            event_count=row.last_event_sequence,
        )

    @strawberry.field(description="Seconds from start to completion, or until now while processing.")
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()

    @strawberry.field
    async def owner(self, info: Info) -> User:
        owner = await info.context.loaders.user_by_id.load(self.owner_id)
        assert owner is not None, "a visible task's owner is visible"
        return owner

    @strawberry.field
    async def analysis(
        self, info: Info
    ) -> Annotated["Analysis", strawberry.lazy("graph.analyses.types")] | None:
        return await info.context.loaders.analysis_by_task_id.load(self.pk)

    @strawberry.field(description="The task's event log, oldest first.")
    async def events(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection["TaskEvent"]:
        from graph.tasks.queries import event_connection

        return await event_connection(info, self, first=first, after=after)

    @strawberry.field
    async def artifacts(self, info: Info) -> list["Artifact"]:
        return await info.context.loaders.artifacts_by_task_id.load(self.pk)

    @strawberry.field(description="Where to GET the original file, with the same bearer token.")
    def download_url(self) -> str | None:
        return f"/files/tasks/{self.pk}" if self.file_hash is not None else None


def decode_json(raw: str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def raw_json(column: Any, name: str) -> Any:
    # Selected as text and decoded only when a client asks for the field.
    return cast(column, Text).label(name)


EVENT_COLUMNS = (
    models.TaskEvent.id,
    models.TaskEvent.task_id,
    models.TaskEvent.sequence,
    models.TaskEvent.type,
    raw_json(models.TaskEvent.data, "data_json"),
    models.TaskEvent.created_at,
)


@strawberry.type
class TaskEvent(Node):
    id: strawberry.ID
    sequence: int
    type: EventType
    created_at: datetime
    pk: strawberry.Private[uuid.UUID]
    task_pk: strawberry.Private[uuid.UUID]
    data_json: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        return cls(
            id=to_global_id("TaskEvent", row.id),
            pk=row.id,
            task_pk=row.task_id,
            sequence=row.sequence,
            type=row.type,
            data_json=row.data_json,
            created_at=row.created_at,
        )

    @strawberry.field
    def data(self) -> JSON:
        return decode_json(self.data_json) or {}

    @strawberry.field
    def task_id(self) -> strawberry.ID:
        return to_global_id("Task", self.task_pk)

    @strawberry.field
    async def task(self, info: Info) -> Task | None:
        return await info.context.loaders.task_by_id.load(self.task_pk)


ARTIFACT_COLUMNS = (
    models.Artifact.id,
    models.Artifact.task_id,
    models.Artifact.kind,
    models.Artifact.label,
    models.Artifact.index,
    models.Artifact.content_type,
    models.Artifact.file_size,
    models.Artifact.created_at,
)


@strawberry.type
class Artifact(Node):
    id: strawberry.ID
    kind: str
    label: str | None
    index: int
    content_type: str
    file_size: BigInt
    created_at: datetime
    pk: strawberry.Private[uuid.UUID]
    task_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        return cls(
            id=to_global_id("Artifact", row.id),
            pk=row.id,
            task_pk=row.task_id,
            kind=row.kind,
            label=row.label,
            index=row.index,
            content_type=row.content_type,
            file_size=row.file_size,
            created_at=row.created_at,
        )

    @strawberry.field
    async def task(self, info: Info) -> Task | None:
        return await info.context.loaders.task_by_id.load(self.task_pk)

    @strawberry.field(description="Where to GET the artifact's file, with the same bearer token.")
    def download_url(self) -> str:
        return f"/files/artifacts/{self.pk}"


@strawberry.enum
class TaskOrderField(Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    FILE_SIZE = "FILE_SIZE"
    COMPLIANCE_SCORE = "COMPLIANCE_SCORE"


@strawberry.input
class TaskOrder:
    field: TaskOrderField = TaskOrderField.CREATED_AT
    direction: SortDirection = SortDirection.DESC


@strawberry.input
class TaskFilter:
    status: list[TaskStatus] | None = None
    verdict: list[Verdict] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    filename_contains: str | None = None
    has_findings_of_severity: list[Severity] | None = strawberry.field(
        default=None, description="Tasks whose analysis has a finding of any of these severities."
    )
    owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only tasks of this user (WORKER and ADMIN only)."
    )
    source_url: str | None = None

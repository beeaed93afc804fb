import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Self

import orjson
import strawberry
from sqlalchemy import Row, Text, cast

from db import models
from db.access import Viewer
from db.enums import Role
from db.pagination import Count, Page, SortKey
from graph.context import Info
from graph.engine.batching import loads
from graph.engine.rows import RowShape
from graph.enums import EventType, Severity, SortDirection, TaskStatus, Verdict
from graph.relay import Connection, Node, connection_from_page, decode_cursor, page_size, to_global_id
from graph.scalars import JSON, BigInt

if TYPE_CHECKING:
    from graph.analyses.types import Analysis
    from graph.users.types import User

EVENT_SORT_KEY = SortKey(columns=(models.TaskEvent.sequence,))


@strawberry.type
class Task(Node):
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
    def from_row(cls, row: Row, names: Sequence[str] | None = None) -> Self:
        return TASK_COLUMNS.build(cls, row, names)

    @strawberry.field(description="Seconds from start to completion, or until now while processing.")
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()

    @strawberry.field
    @loads("user_by_id", key="owner_id")
    async def owner(self, info: Info) -> Annotated["User", strawberry.lazy("graph.users.types")]:
        owner = await info.context.loaders.user_by_id.load(self.owner_id)
        assert owner is not None, "a visible task's owner is visible"
        return owner

    @strawberry.field
    @loads("analysis_by_task_id", key="pk")
    async def analysis(
        self, info: Info
    ) -> Annotated["Analysis", strawberry.lazy("graph.analyses.types")] | None:
        return await info.context.loaders.analysis_by_task_id.load(self.pk)

    @strawberry.field(description="The task's event log, oldest first.")
    async def events(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection["TaskEvent"]:
        context = info.context
        limit, _ = page_size(first, None, context.settings.max_page_size)
        assert limit is not None
        tag = f"events:{self.pk}"
        cursor = decode_cursor(after, tag, EVENT_SORT_KEY)
        after_sequence = cursor[0] if cursor else 0
        # One more than asked tells whether another page follows.
        events = await context.loaders.event_page_by_task.load((self.pk, after_sequence, limit + 1))
        page_events = events[:limit]
        page = Page(
            rows=page_events,
            keys=[(event.sequence,) for event in page_events],
            has_next_page=len(events) > limit,
            has_previous_page=after_sequence > 0,
        )
        # Sequences are gap-free and events are never deleted, so the last number handed out is the count.
        event_count = self.event_count

        async def count() -> Count:
            return Count(event_count)

        return connection_from_page(page, page_events, tag, EVENT_SORT_KEY, count)

    @strawberry.field
    @loads("artifacts_by_task_id", key="pk")
    async def artifacts(self, info: Info) -> list["Artifact"]:
        return await info.context.loaders.artifacts_by_task_id.load(self.pk)

    @strawberry.field(description="Where to GET the original file, with the same bearer token.")
    def download_url(self) -> str | None:
        return f"/files/tasks/{self.pk}" if self.file_hash is not None else None


TASK_COLUMNS = RowShape.of(
    Task, models.Task,
    always=("pk", "owner_id"),
    needs={
        "id": (),
        "duration_seconds": ("started_at", "completed_at"),
        "owner": (),
        "analysis": (),
        "events": ("event_count",),
        "artifacts": (),
        "download_url": ("file_hash",),
    },
    pk=models.Task.id,
    owner_id=models.Task.user_id,
    event_count=models.Task.last_event_sequence,
)


def decode_json(raw: str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def raw_json(column: Any, name: str) -> Any:
    # Selected as text and decoded only when a client asks for the field.
    return cast(column, Text).label(name)


# Ids the service writes into event data, stored as database UUIDs, and the node type each names.
EVENT_DATA_IDS = {"analysisId": "Analysis", "artifactId": "Artifact", "workerId": "User"}


def public_event_data(data: dict[str, Any], viewer: Viewer | None) -> dict[str, Any]:
    """Event data in the API's language: global ids, and no other account's internal id."""
    for key, type_name in EVENT_DATA_IDS.items():
        value = data.get(key)
        if not isinstance(value, str):
            continue
        if type_name == "User" and not _may_see_account(viewer, value):
            del data[key]
        else:
            data[key] = to_global_id(type_name, uuid.UUID(value))
    return data


def _may_see_account(viewer: Viewer | None, user_id: str) -> bool:
    return viewer is not None and (viewer.role is Role.ADMIN or str(viewer.user_id) == user_id)


@strawberry.type
class TaskEvent(Node):
    sequence: int = strawberry.field(description="The event's number in its task's log: 1, 2, 3, ... without gaps.")
    position: BigInt = strawberry.field(description=(
        "The event's place in the whole log, in commit order: resume myTaskEvents after it with afterPosition."
    ))
    type: EventType
    created_at: datetime
    pk: strawberry.Private[uuid.UUID]
    task_pk: strawberry.Private[uuid.UUID]
    data_json: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: Row, names: Sequence[str] | None = None) -> Self:
        return EVENT_COLUMNS.build(cls, row, names)

    @strawberry.field(description=(
        "What happened, by type. Ids in it are global ids (node(id:) takes them); "
        "the id of the pipeline account that acted is shown only to that account and to ADMINs."
    ))
    def data(self, info: Info) -> JSON:
        return public_event_data(decode_json(self.data_json) or {}, info.context.viewer)  # type: ignore[return-value]

    @strawberry.field
    def task_id(self) -> strawberry.ID:
        return to_global_id("Task", self.task_pk)

    @strawberry.field
    @loads("task_by_id", key="task_pk")
    async def task(self, info: Info) -> Task | None:
        return await info.context.loaders.task_by_id.load(self.task_pk)


EVENT_COLUMNS = RowShape.of(
    TaskEvent, models.TaskEvent,
    always=("pk", "task_pk"),
    needs={
        "id": (),
        "data": ("data_json",),
        "task_id": (),
        "task": (),
    },
    pk=models.TaskEvent.id,
    task_pk=models.TaskEvent.task_id,
    data_json=raw_json(models.TaskEvent.data, "data_json"),
)


@strawberry.type
class Artifact(Node):
    kind: str
    label: str | None
    index: int
    content_type: str
    file_size: BigInt
    created_at: datetime
    pk: strawberry.Private[uuid.UUID]
    task_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row, names: Sequence[str] | None = None) -> Self:
        return ARTIFACT_COLUMNS.build(cls, row, names)

    @strawberry.field
    @loads("task_by_id", key="task_pk")
    async def task(self, info: Info) -> Task | None:
        return await info.context.loaders.task_by_id.load(self.task_pk)

    @strawberry.field(description="Where to GET the artifact's file, with the same bearer token.")
    def download_url(self) -> str:
        return f"/files/artifacts/{self.pk}"


ARTIFACT_COLUMNS = RowShape.of(
    Artifact, models.Artifact,
    always=("pk", "task_pk"),
    needs={
        "id": (),
        "task": (),
        "download_url": (),
    },
    pk=models.Artifact.id,
    task_pk=models.Artifact.task_id,
)


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

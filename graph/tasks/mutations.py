"""Task mutations: uploads and URL submissions, the lifecycle, the work queue, artifacts."""

import uuid
from collections.abc import AsyncIterator

import strawberry
from sqlalchemy import select
from strawberry.file_uploads import Upload

from db import models
from db.enums import TaskStatus as DomainTaskStatus
from db.storage import CHUNK_SIZE, clean_filename
from db.tasks import claim_next_task, create_url_task, normalize_url, report_progress, transition_task
from db.uploads import add_artifact, delete_task_and_files, upload_document
from graph.context import Info
from graph.enums import TaskStatus
from graph.observability.metrics import UPLOAD_BYTES
from graph.permissions import IsAuthenticated, IsWorker
from graph.relay import from_global_id
from graph.tasks.types import ARTIFACT_COLUMNS, EVENT_COLUMNS, TASK_COLUMNS, Artifact, Task, TaskEvent


@strawberry.type
class UploadPayload:
    task: Task
    deduplicated: bool = strawberry.field(
        description="True when the viewer had already uploaded these bytes: `task` is that earlier task."
    )


@strawberry.type
class SubmitUrlPayload:
    task: Task
    deduplicated: bool = strawberry.field(
        description="True when the viewer already has an open task for this URL: `task` is that task."
    )


@strawberry.type
class TaskPayload:
    task: Task


@strawberry.type
class ReportProgressPayload:
    task: Task
    event: TaskEvent


@strawberry.type
class AddArtifactPayload:
    artifact: Artifact
    task: Task


@strawberry.type
class DeleteTaskPayload:
    deleted_task_id: strawberry.ID


async def read_chunks(file: Upload) -> AsyncIterator[bytes]:
    # Typed as bytes by Strawberry; what arrives is Starlette's UploadFile.
    while chunk := await file.read(CHUNK_SIZE):  # type: ignore[attr-defined]
        UPLOAD_BYTES.inc(len(chunk))
        yield chunk


async def fresh_task(info: Info, pk: uuid.UUID) -> Task:
    """The task as committed, also handed to this request's loader for nested fields."""
    async with info.context.database.sessions() as session:
        row = (await session.execute(select(*TASK_COLUMNS).where(models.Task.id == pk))).one()
    task = Task.from_row(row)
    info.context.loaders.task_by_id.clear(pk).prime(pk, task)
    return task


def task_pk(task_id: strawberry.ID) -> uuid.UUID:
    return from_global_id(task_id, "Task")[1]


@strawberry.type
class TaskMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description=(
            "Upload a file to audit (GraphQL multipart request; send an `Apollo-Require-Preflight` header). "
            "The same bytes uploaded again return the existing task."
        ),
    )
    async def upload_document(self, info: Info, file: Upload) -> UploadPayload:
        context = info.context
        viewer = context.require_viewer()
        assert viewer.user_id is not None
        task_id, deduplicated = await upload_document(
            context.database, context.settings, viewer.user_id,
            clean_filename(file.filename), read_chunks(file),  # type: ignore[attr-defined]
        )
        return UploadPayload(task=await fresh_task(info, task_id), deduplicated=deduplicated)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Queue an audit of a web page; an open task for the same URL is returned instead.",
    )
    async def submit_url(self, info: Info, url: str) -> SubmitUrlPayload:
        viewer = info.context.require_viewer()
        assert viewer.user_id is not None
        normalized = normalize_url(url)
        async with info.context.database.transaction() as session:
            task, deduplicated = await create_url_task(session, viewer.user_id, normalized)
        return SubmitUrlPayload(task=await fresh_task(info, task.id), deduplicated=deduplicated)

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description="Move the oldest QUEUED task to PROCESSING and hand it to the caller; null when none waits.",
    )
    async def claim_next_task(self, info: Info) -> Task | None:
        viewer = info.context.require_viewer()
        async with info.context.database.transaction() as session:
            task = await claim_next_task(session, viewer.user_id)
        return await fresh_task(info, task.id) if task is not None else None

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description=(
            "Move a task along its lifecycle. With `expectedStatus`, only if the task is still in it "
            "(compare-and-set); `errorMessage` accompanies a move to FAILED."
        ),
    )
    async def update_task_status(
        self,
        info: Info,
        task_id: strawberry.ID,
        status: TaskStatus,
        expected_status: TaskStatus | None = None,
        error_message: str | None = None,
    ) -> TaskPayload:
        pk = task_pk(task_id)
        async with info.context.database.transaction() as session:
            await transition_task(
                session, pk, status, viewer=info.context.require_viewer(),
                expected_status=expected_status, error_message=error_message,
            )
        return TaskPayload(task=await fresh_task(info, pk))

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description="Tell watchers how far the processing of a task has come (0 to 100 percent).",
    )
    async def report_progress(
        self, info: Info, task_id: strawberry.ID, percent: int, message: str | None = None
    ) -> ReportProgressPayload:
        pk = task_pk(task_id)
        async with info.context.database.transaction() as session:
            event = await report_progress(session, pk, percent, message, viewer=info.context.require_viewer())
        async with info.context.database.sessions() as session:
            row = (await session.execute(select(*EVENT_COLUMNS).where(models.TaskEvent.id == event.id))).one()
        return ReportProgressPayload(task=await fresh_task(info, pk), event=TaskEvent.from_row(row))

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description="Attach a file (a screenshot, a report) to a task as its next artifact.",
    )
    async def add_artifact(
        self, info: Info, task_id: strawberry.ID, file: Upload, kind: str, label: str | None = None
    ) -> AddArtifactPayload:
        context = info.context
        pk = task_pk(task_id)
        artifact_id = await add_artifact(
            context.database, context.settings, pk, read_chunks(file),
            kind=kind, label=label, viewer=context.require_viewer(),
        )
        async with context.database.sessions() as session:
            row = (await session.execute(select(*ARTIFACT_COLUMNS).where(models.Artifact.id == artifact_id))).one()
        context.loaders.artifacts_by_task_id.clear(pk)
        return AddArtifactPayload(artifact=Artifact.from_row(row), task=await fresh_task(info, pk))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Cancel a QUEUED or PROCESSING task (its owner, a WORKER or an ADMIN).",
    )
    async def cancel_task(self, info: Info, task_id: strawberry.ID) -> TaskPayload:
        pk = task_pk(task_id)
        async with info.context.database.transaction() as session:
            await transition_task(session, pk, DomainTaskStatus.CANCELLED, viewer=info.context.require_viewer())
        return TaskPayload(task=await fresh_task(info, pk))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Delete a task with its analysis, events and artifacts (its owner or an ADMIN).",
    )
    async def delete_task(self, info: Info, task_id: strawberry.ID) -> DeleteTaskPayload:
        context = info.context
        pk = task_pk(task_id)
        await delete_task_and_files(context.database, context.settings, pk, viewer=context.require_viewer())
        context.loaders.task_by_id.clear(pk)
        return DeleteTaskPayload(deleted_task_id=task_id)

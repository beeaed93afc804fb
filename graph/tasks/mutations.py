"""Task mutations: uploads and URL submissions, the lifecycle, the work queue, artifacts."""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy import select
from strawberry.file_uploads import Upload

from db import models
from db.claims import parse_claim_id
from db.enums import TaskStatus as DomainTaskStatus
from db.leases import renew_lease
from db.storage import CHUNK_SIZE, clean_filename
from db.tasks import claim_next_task, create_url_task, normalize_url, report_progress, transition_task
from db.uploads import add_artifact, delete_task_and_files, upload_document
from graph.access.permissions import IsAuthenticated, IsWorker
from graph.context import Info
from graph.enums import TaskStatus
from graph.observability.metrics import UPLOAD_BYTES
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


CLAIM_ID_DESCRIPTION = (
    "The claim you process the task under (the claimId claimNextTask gave you). Required while the task "
    "is PROCESSING; a claim that is no longer the task's is refused with CONFLICT and changes nothing."
)
ClaimId = Annotated[strawberry.ID, strawberry.argument(description=CLAIM_ID_DESCRIPTION)]
OptionalClaimId = Annotated[strawberry.ID | None, strawberry.argument(description=CLAIM_ID_DESCRIPTION)]


@strawberry.type(description=(
    "A worker's hold on a task it processes: a lease that expires unless the worker reports progress or "
    "sends a heartbeat. An expired lease puts the task back in the queue (after the maximum attempts, the "
    "task fails), and the claim can no longer write to the task."
))
class Claim:
    claim_id: strawberry.ID = strawberry.field(description=(
        "Pass it to every pipeline mutation on the task: reportProgress, heartbeat, recordAnalysis, "
        "addArtifact, updateTaskStatus."
    ))
    attempt: int = strawberry.field(description="1 for the task's first claim, 2 once a lease expired, and so on.")
    lease_expires_at: datetime = strawberry.field(
        description="When the task goes back to the queue unless reportProgress or heartbeat renews the lease."
    )
    task: Task

    @classmethod
    async def of(cls, info: Info, claimed: models.Task) -> "Claim":
        assert claimed.claim_id is not None and claimed.lease_expires_at is not None
        return cls(claim_id=strawberry.ID(str(claimed.claim_id)), attempt=claimed.attempts,
                   lease_expires_at=claimed.lease_expires_at, task=await fresh_task(info, claimed.id))


@strawberry.type
class TaskPayload:
    task: Task
    claim: Claim | None = strawberry.field(
        default=None, description="The claim this mutation made, when it moved the task to PROCESSING."
    )


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
        await info.context.throttle.count_submission(viewer.user_id)
        normalized = normalize_url(url)
        async with info.context.database.transaction() as session:
            task, deduplicated = await create_url_task(session, viewer.user_id, normalized)
        return SubmitUrlPayload(task=await fresh_task(info, task.id), deduplicated=deduplicated)

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description=(
            "Claim the oldest QUEUED task: it moves to PROCESSING under a claim for the caller, whose "
            "claimId every later pipeline mutation on the task names. Null when no task waits."
        ),
    )
    async def claim_next_task(self, info: Info) -> Claim | None:
        context = info.context
        viewer = context.require_viewer()
        async with context.database.transaction() as session:
            task = await claim_next_task(session, viewer.user_id, context.settings.lease)
        return await Claim.of(info, task) if task is not None else None

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description=(
            "Move a task along its lifecycle. With `expectedStatus`, only if the task is still in it "
            "(compare-and-set); `errorMessage` accompanies a move to FAILED. Completing or failing a "
            "PROCESSING task names its claim (`claimId`); a move to PROCESSING claims the task "
            "(the payload's `claim`); cancelling needs no claim."
        ),
    )
    async def update_task_status(
        self,
        info: Info,
        task_id: strawberry.ID,
        status: TaskStatus,
        expected_status: TaskStatus | None = None,
        error_message: str | None = None,
        claim_id: OptionalClaimId = None,
    ) -> TaskPayload:
        context = info.context
        pk = task_pk(task_id)
        async with context.database.transaction() as session:
            task = await transition_task(
                session, pk, status, viewer=context.require_viewer(),
                expected_status=expected_status, error_message=error_message,
                claim_id=parse_claim_id(claim_id), lease=context.settings.lease,
            )
        if task.status is DomainTaskStatus.PROCESSING:
            claim = await Claim.of(info, task)
            return TaskPayload(task=claim.task, claim=claim)
        return TaskPayload(task=await fresh_task(info, pk))

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description=(
            "Tell watchers how far the processing of a task has come (0 to 100 percent); "
            "renews the claim's lease."
        ),
    )
    async def report_progress(
        self,
        info: Info,
        task_id: strawberry.ID,
        claim_id: ClaimId,
        percent: Annotated[int, strawberry.argument(description="0 to 100.")],
        message: str | None = None,
    ) -> ReportProgressPayload:
        context = info.context
        pk = task_pk(task_id)
        async with context.database.transaction() as session:
            event = await report_progress(
                session, pk, percent, message, viewer=context.require_viewer(),
                claim_id=parse_claim_id(claim_id), lease=context.settings.lease,
            )
        async with info.context.database.sessions() as session:
            row = (await session.execute(select(*EVENT_COLUMNS).where(models.TaskEvent.id == event.id))).one()
        return ReportProgressPayload(task=await fresh_task(info, pk), event=TaskEvent.from_row(row))

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description=(
            "Renew the lease of a claim without reporting progress, for long steps; returns the claim "
            "with its new expiry."
        ),
    )
    async def heartbeat(
        self,
        info: Info,
        task_id: strawberry.ID,
        claim_id: ClaimId,
    ) -> Claim:
        context = info.context
        pk = task_pk(task_id)
        named = parse_claim_id(claim_id)
        assert named is not None
        async with context.database.transaction() as session:
            task = await renew_lease(session, pk, named, viewer=context.require_viewer(),
                                     lease=context.settings.lease)
        return await Claim.of(info, task)

    @strawberry.mutation(
        permission_classes=[IsWorker],
        description="Attach a file (a screenshot, a report) to a task as its next artifact.",
    )
    async def add_artifact(
        self,
        info: Info,
        task_id: strawberry.ID,
        file: Upload,
        kind: str,
        label: str | None = None,
        claim_id: OptionalClaimId = None,
    ) -> AddArtifactPayload:
        context = info.context
        pk = task_pk(task_id)
        artifact_id = await add_artifact(
            context.database, context.settings, pk, read_chunks(file),
            kind=kind, label=label, viewer=context.require_viewer(), claim_id=parse_claim_id(claim_id),
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

"""Task rules: creation with deduplication, the lifecycle as compare-and-set, and the work queue (db/claims.py)."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import HttpUrl, TypeAdapter, ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import figures
from db.access import Viewer
from db.base import utcnow
from db.claims import DEFAULT_LEASE, RELEASED_CLAIM, check_claim, lock_task_claim, new_claim
from db.enums import EventType, Role, TaskStatus
from db.errors import Conflict, DuplicateTask, Forbidden, InvalidInput, InvalidTransition, NotFound
from db.events import add_event, append_event
from db.models import Artifact, Task, TaskEvent

ALLOWED_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.PROCESSING, TaskStatus.CANCELLED}),
    TaskStatus.PROCESSING: frozenset(
        {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.FAILED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}
OPEN_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.PROCESSING})
MAX_PROGRESS_MESSAGE_LENGTH = 1000
MAX_ERROR_MESSAGE_LENGTH = 10_000
MAX_URL_LENGTH = 2048
_http_url: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What the storage layer learned while writing an upload."""

    original_filename: str
    content_type: str
    file_size: int
    file_hash: str
    file_path: str
    page_count: int | None = None


def parse_status(value: str | TaskStatus) -> TaskStatus:
    try:
        return TaskStatus(value)
    except ValueError:
        raise InvalidInput(
            f"unknown task status {value!r}; expected one of {', '.join(TaskStatus)}"
        ) from None


async def get_task(session: AsyncSession, task_id: uuid.UUID, viewer: Viewer) -> Task:
    """The task if this viewer may see it; another user's task is reported as missing."""
    task = await session.scalar(select(Task).where(Task.id == task_id, viewer.visible_tasks()))
    if task is None:
        raise NotFound("task not found")
    return task


async def create_file_task(session: AsyncSession, owner_id: uuid.UUID, file: StoredFile) -> Task:
    """A QUEUED task for stored bytes; the same bytes from the same owner raise DuplicateTask."""
    now = utcnow()
    task = Task(
        id=uuid.uuid4(),
        user_id=owner_id,
        status=TaskStatus.QUEUED,
        original_filename=file.original_filename,
        content_type=file.content_type,
        file_path=file.file_path,
        file_size=file.file_size,
        file_hash=file.file_hash,
        page_count=file.page_count,
        last_event_sequence=1,
        created_at=now,
        updated_at=now,
    )
    try:
        # The unique (user_id, file_hash) constraint decides, so concurrent
        # uploads of the same bytes cannot both win; the savepoint keeps the
        # caller's transaction usable after the refusal.
        async with session.begin_nested():
            session.add(task)
            await session.flush()
    except IntegrityError:
        existing = await session.scalar(
            select(Task.id).where(Task.user_id == owner_id, Task.file_hash == file.file_hash)
        )
        if existing is None:
            raise
        raise DuplicateTask(existing) from None
    add_event(session, task.id, 1, EventType.CREATED, {"status": TaskStatus.QUEUED.value})
    figures.task_created(session, owner_id, now, TaskStatus.QUEUED)
    await session.flush()
    return task


def normalize_url(url: str) -> str:
    """An absolute http(s) URL in canonical form: lower-case host, no default port, no fragment."""
    candidate = url.strip()
    if len(candidate) > MAX_URL_LENGTH:
        raise InvalidInput(f"a URL has at most {MAX_URL_LENGTH} characters")
    try:
        parsed = _http_url.validate_python(candidate)
    except ValidationError:
        raise InvalidInput("give an absolute http:// or https:// URL") from None
    normalized = str(parsed).split("#", 1)[0]
    if len(normalized) > MAX_URL_LENGTH:
        raise InvalidInput(f"a URL has at most {MAX_URL_LENGTH} characters")
    return normalized


async def create_url_task(session: AsyncSession, owner_id: uuid.UUID, url: str) -> tuple[Task, bool]:
    """A task auditing a web page; an open task of the owner's for the same URL is returned instead."""
    open_task = await session.scalar(
        select(Task)
        .where(
            Task.user_id == owner_id, Task.source_url == url, Task.status.in_(OPEN_STATUSES)
        )
        .order_by(Task.created_at)
        .limit(1)
    )
    if open_task is not None:
        return open_task, True
    now = utcnow()
    task = Task(
        id=uuid.uuid4(),
        user_id=owner_id,
        status=TaskStatus.QUEUED,
        source_url=url,
        last_event_sequence=1,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    add_event(session, task.id, 1, EventType.CREATED, {"status": TaskStatus.QUEUED.value})
    figures.task_created(session, owner_id, now, TaskStatus.QUEUED)
    await session.flush()
    return task, False


def lifecycle_values(to_status: TaskStatus, error_message: str | None) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {
        "status": to_status,
        "updated_at": now,
        "last_event_sequence": Task.last_event_sequence + 1,
    }
    if to_status is TaskStatus.PROCESSING:
        values |= {"started_at": now, "completed_at": None, "error_message": None}
    elif to_status is TaskStatus.QUEUED:
        values |= {"started_at": None, "completed_at": None, "error_message": None}
    else:
        values |= {"completed_at": now}
    if to_status is TaskStatus.FAILED:
        values["error_message"] = error_message
    return values


def _claim_changes(
    current: TaskStatus, target: TaskStatus, viewer: Viewer, lease: timedelta, now: datetime
) -> dict[str, Any]:
    if target is TaskStatus.PROCESSING:
        return new_claim(viewer.user_id, lease, now)
    if current is TaskStatus.PROCESSING and target in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        # Its holder finished it: the claim stays, so the holder may still attach what it found.
        return {"lease_expires_at": None}
    if target is TaskStatus.QUEUED:
        # Queued again by hand: a fresh set of attempts.
        return RELEASED_CLAIM | {"attempts": 0}
    return RELEASED_CLAIM


async def transition_task(
    session: AsyncSession,
    task_id: uuid.UUID,
    to_status: str | TaskStatus,
    *,
    viewer: Viewer,
    expected_status: str | TaskStatus | None = None,
    error_message: str | None = None,
    claim_id: uuid.UUID | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> Task:
    """Move a task along the lifecycle, appending a STATUS_CHANGED event in the same transaction.

    Moving a task to PROCESSING claims it for the viewer (a lease of `lease`).
    Completing or failing a task being processed is its claim holder's act and
    names the claim; cancelling is open to anyone who may, and ends the claim.
    """
    target = parse_status(to_status)
    expected = parse_status(expected_status) if expected_status is not None else None
    if error_message is not None and target is not TaskStatus.FAILED:
        raise InvalidInput("an error message can only accompany a move to FAILED")
    if error_message is not None and len(error_message) > MAX_ERROR_MESSAGE_LENGTH:
        raise InvalidInput(f"an error message has at most {MAX_ERROR_MESSAGE_LENGTH} characters")

    # Lock the row first so the answer below names the state that really blocked us.
    held = await lock_task_claim(session, task_id, viewer)
    current = held.status
    if claim_id is not None:
        check_claim(held, claim_id)
    if expected is not None and current is not expected:
        raise Conflict(f"task is {current}, not the expected {expected}")
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    if target is not TaskStatus.CANCELLED:
        check_claim(held, claim_id)

    # The status and claim in the WHERE clause make this a compare-and-set even
    # where the lock above is a no-op (SQLite serialises writers instead).
    values = lifecycle_values(target, error_message) | _claim_changes(current, target, viewer, lease, utcnow())
    task = await session.scalar(
        update(Task)
        .where(Task.id == task_id, Task.status == current, Task.claim_id.is_not_distinct_from(held.claim_id))
        .values(values)
        .returning(Task)
        .execution_options(populate_existing=True)
    )
    if task is None:
        raise Conflict("task changed while it was being updated; retry")
    figures.status_moved(session, task.user_id, task.created_at, current, target)
    data: dict[str, Any] = {"from": current.value, "to": target.value}
    if target is TaskStatus.PROCESSING:
        data |= claim_event_data(task)
    if error_message is not None:
        data["errorMessage"] = error_message
    add_event(session, task.id, task.last_event_sequence, EventType.STATUS_CHANGED, data)
    await session.flush()
    return task


def claim_event_data(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = {"attempt": task.attempts}
    if task.claimed_by is not None:
        data["workerId"] = str(task.claimed_by)
    return data


async def claim_next_task(
    session: AsyncSession, worker_id: uuid.UUID | None = None, lease: timedelta = DEFAULT_LEASE
) -> Task | None:
    """Hand the oldest QUEUED task to one worker, never to two, under a fresh claim."""
    oldest_queued = (
        select(Task.id)
        .where(Task.status == TaskStatus.QUEUED)
        .order_by(Task.created_at, Task.id)
        .limit(1)
        # PostgreSQL: concurrent claimers skip each other's rows instead of
        # queueing on them. SQLite ignores this; its writers hold the database
        # lock for the whole (IMMEDIATE) transaction.
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    now = utcnow()
    task = await session.scalar(
        update(Task)
        .where(Task.id == oldest_queued, Task.status == TaskStatus.QUEUED)
        .values(lifecycle_values(TaskStatus.PROCESSING, None) | new_claim(worker_id, lease, now))
        .returning(Task)
        .execution_options(populate_existing=True)
    )
    if task is None:
        return None
    figures.status_moved(session, task.user_id, task.created_at, TaskStatus.QUEUED, TaskStatus.PROCESSING)
    data: dict[str, Any] = {"from": TaskStatus.QUEUED.value, "to": TaskStatus.PROCESSING.value}
    add_event(session, task.id, task.last_event_sequence, EventType.STATUS_CHANGED, data | claim_event_data(task))
    await session.flush()
    return task


async def report_progress(
    session: AsyncSession,
    task_id: uuid.UUID,
    percent: int,
    message: str | None = None,
    *,
    viewer: Viewer,
    claim_id: uuid.UUID | None,
    lease: timedelta = DEFAULT_LEASE,
) -> TaskEvent:
    """Append a PROGRESS event to a task being processed under this claim, and renew the claim's lease."""
    if not 0 <= percent <= 100:
        raise InvalidInput("percent must be between 0 and 100")
    if message is not None and len(message) > MAX_PROGRESS_MESSAGE_LENGTH:
        raise InvalidInput(f"a progress message has at most {MAX_PROGRESS_MESSAGE_LENGTH} characters")
    held = await lock_task_claim(session, task_id, viewer)
    check_claim(held, claim_id)
    if held.status is not TaskStatus.PROCESSING:
        raise Conflict(f"progress can be reported only while a task is PROCESSING, not {held.status}")
    await session.execute(update(Task).where(Task.id == task_id).values(lease_expires_at=utcnow() + lease))
    return await append_event(session, task_id, EventType.PROGRESS, {"percent": percent, "message": message})


async def delete_task(session: AsyncSession, task_id: uuid.UUID, *, viewer: Viewer) -> list[str]:
    """Delete a task and everything beneath it; returns the stored files its rows referenced.

    The caller removes those files after the commit, if nothing else references them.
    """
    task = await get_task(session, task_id, viewer)
    if task.user_id != viewer.user_id and viewer.role is not Role.ADMIN:
        raise Forbidden("only the task's owner or an ADMIN can delete it")
    artifact_paths = await session.scalars(select(Artifact.file_path).where(Artifact.task_id == task_id))
    paths = [*artifact_paths, *([task.file_path] if task.file_path else [])]
    gone = await figures.stored_contribution(session, task_id)
    gone[figures.STATUS_FIGURES[task.status]] += 1
    figures.counted(session, task.user_id, task.created_at, gone, sign=-1)
    # The foreign keys cascade to analyses, findings, sources, events and artifacts.
    await session.execute(delete(Task).where(Task.id == task_id))
    return paths

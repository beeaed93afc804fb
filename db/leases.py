"""Leases: a claim lasts while its worker shows signs of life; the queue takes back a task whose lease ran out.

Every worker process runs requeue_expired_leases periodically
(graph/live/housekeeping.py), with no coordinator: on PostgreSQL each takes the
expired rows FOR UPDATE SKIP LOCKED, so two never requeue the same task and
none waits on a row another transaction holds (a renewal in flight, say); the
row is simply looked at again next time. Each requeue is also a
compare-and-set on the claim it ends, so a lease renewed or a task finished in
between is left alone. On SQLite the one process's write transactions are
serial anyway.

Lease times come from the clock of the process that writes them, like every
timestamp here: hosts are expected to keep NTP time, far finer than a lease.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import figures
from db.access import Viewer
from db.base import utcnow
from db.claims import RELEASED_CLAIM, check_claim, lock_task_claim
from db.enums import EventType, TaskStatus
from db.errors import Conflict
from db.events import add_event
from db.models import Task
from db.tasks import lifecycle_values

EXPIRED_PER_TRANSACTION = 100
# The condition of the partial index on leases, written as it is (its value inline, not a parameter):
# a database uses a partial index only for a condition it can see implies the index's own.
BEING_PROCESSED = Task.status == literal_column("'PROCESSING'", Task.status.type)
LEASE_EXPIRED = "LEASE_EXPIRED"


async def renew_lease(
    session: AsyncSession, task_id: uuid.UUID, claim_id: uuid.UUID, *, viewer: Viewer, lease: timedelta
) -> Task:
    """Extend the lease of the task's current claim to `lease` from now."""
    held = await lock_task_claim(session, task_id, viewer)
    check_claim(held, claim_id)
    if held.status is not TaskStatus.PROCESSING:
        raise Conflict(f"only a task being processed has a lease to renew, and this one is {held.status}")
    task = await session.scalar(
        update(Task)
        .where(Task.id == task_id)
        .values(lease_expires_at=utcnow() + lease)
        .returning(Task)
        .execution_options(populate_existing=True)
    )
    assert task is not None, "the row is locked"
    return task


async def requeue_expired_leases(
    session: AsyncSession, *, max_attempts: int, limit: int = EXPIRED_PER_TRANSACTION
) -> int:
    """Put tasks whose lease expired back in the queue, or fail those out of attempts; returns how many."""
    now = utcnow()
    expired = (
        await session.execute(
            select(Task.id, Task.claim_id, Task.claimed_by, Task.attempts)
            .where(BEING_PROCESSED, Task.lease_expires_at < now)
            .order_by(Task.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for task_id, claim_id, worker_id, attempts in expired:
        await _end_lapsed_claim(session, task_id, claim_id, worker_id, attempts, now, max_attempts)
    return len(expired)


async def _end_lapsed_claim(
    session: AsyncSession,
    task_id: uuid.UUID,
    claim_id: uuid.UUID | None,
    worker_id: uuid.UUID | None,
    attempts: int,
    now: datetime,
    max_attempts: int,
) -> None:
    target, error_message = TaskStatus.QUEUED, None
    if attempts >= max_attempts:
        target = TaskStatus.FAILED
        error_message = (
            f"gave up after {attempts} attempts: each time, the worker's lease expired before it finished"
        )
    changed = (await session.execute(
        update(Task)
        .where(
            Task.id == task_id,
            Task.status == TaskStatus.PROCESSING,
            Task.claim_id.is_not_distinct_from(claim_id),
            Task.lease_expires_at < now,
        )
        .values(lifecycle_values(target, error_message) | RELEASED_CLAIM)
        .returning(Task.last_event_sequence, Task.user_id, Task.created_at)
    )).one_or_none()
    if changed is None:
        return
    sequence, owner_id, created_at = changed
    figures.status_moved(session, owner_id, created_at, TaskStatus.PROCESSING, target)
    data: dict[str, Any] = {
        "from": TaskStatus.PROCESSING.value, "to": target.value, "reason": LEASE_EXPIRED, "attempt": attempts
    }
    if worker_id is not None:
        data["workerId"] = str(worker_id)
    if error_message is not None:
        data["errorMessage"] = error_message
    add_event(session, task_id, sequence, EventType.STATUS_CHANGED, data)
    await session.flush()

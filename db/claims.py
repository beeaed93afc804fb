"""Claims: a task being processed is held by one worker's claim, and every pipeline write names it.

A claim records its worker, an attempt number and a lease expiry (db/leases.py
renews and expires leases). Its id is handed only to the worker that claimed
the task, which passes it with every write on the task. A write naming a claim
that is no longer the task's (its lease expired, the task went back to the
queue, another worker claimed it since, the task was cancelled) is refused with
StaleClaim and changes nothing: a worker presumed dead cannot overwrite its
successor's work. The lease's expiry is checked by time, in the write itself,
not left to the next sweep: between expiry and sweep the claim is already dead,
and renewing it then would resurrect a worker the queue has given up on. The
check runs with the task row locked, in the transaction of the write itself.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import Viewer
from db.base import utcnow
from db.enums import TaskStatus
from db.errors import Conflict, InvalidInput, NotFound
from db.models import Task
from db.settings import DEFAULT_LEASE_SECONDS

CLAIM_COLUMNS = (Task.status, Task.claim_id, Task.lease_expires_at)
DEFAULT_LEASE = timedelta(seconds=DEFAULT_LEASE_SECONDS)
# Set when the task leaves its claim holder's hands some other way than by the holder finishing it.
RELEASED_CLAIM: dict[str, Any] = {"claim_id": None, "lease_expires_at": None}


class StaleClaim(Conflict):
    def __init__(self, reason: str = "its lease expired or the task was claimed again or cancelled since") -> None:
        super().__init__(f"this claim is no longer the task's: {reason}; nothing was changed, claim another task")


class HeldClaim(NamedTuple):
    """A task's status and claim as its locked row has them."""

    status: TaskStatus
    claim_id: uuid.UUID | None
    lease_expires_at: datetime | None


def new_claim(worker_id: uuid.UUID | None, lease: timedelta, now: datetime) -> dict[str, Any]:
    """The column values of a fresh claim on a task, for an UPDATE of that task."""
    return {
        "claim_id": uuid.uuid4(),
        "claimed_by": worker_id,
        "attempts": Task.attempts + 1,
        "lease_expires_at": now + lease,
    }


def check_claim(held: HeldClaim, named: uuid.UUID | None) -> None:
    """Refuse a pipeline write that names a claim other than the task's or one whose lease ran out, or names
    none on a task being processed."""
    if named is not None and named != held.claim_id:
        raise StaleClaim()
    # Only a task being processed has a lease; its finished holder keeps the claim with none.
    if named is not None and held.lease_expires_at is not None and held.lease_expires_at <= utcnow():
        raise StaleClaim(f"its lease expired at {held.lease_expires_at.isoformat()}")
    if named is None and held.status is TaskStatus.PROCESSING:
        raise Conflict("this task is being processed under a claim: name it (claimId) to write to the task")


async def lock_task_claim(session: AsyncSession, task_id: uuid.UUID, viewer: Viewer) -> HeldClaim:
    """The task's status and claim, with its row locked until the transaction ends."""
    row = (
        await session.execute(
            select(*CLAIM_COLUMNS).where(Task.id == task_id, viewer.visible_tasks()).with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise NotFound("task not found")
    return HeldClaim(*row)


def parse_claim_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput("claimId is not the id of a claim: pass the claimId claimNextTask returned") from None

"""The append-only task event log: gap-free per-task sequences, published after commit."""

import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.enums import EventType
from db.errors import NotFound
from db.models import Task, TaskEvent

PENDING_EVENTS = "auditgraph.pending_events"


def add_event(
    session: AsyncSession, task_id: uuid.UUID, sequence: int, type: EventType, data: dict[str, Any]
) -> TaskEvent:
    """Stage an event whose sequence the caller has already taken from its task row."""
    event = TaskEvent(
        id=uuid.uuid4(), task_id=task_id, sequence=sequence, type=type, data=data, created_at=utcnow()
    )
    session.add(event)
    # Read by whoever commits the session, to publish once the rows are durable.
    session.info.setdefault(PENDING_EVENTS, []).append(event)
    return event


async def append_event(
    session: AsyncSession, task_id: uuid.UUID, type: EventType, data: dict[str, Any] | None = None
) -> TaskEvent:
    # Taking the next number is an UPDATE of the task row: it locks the row
    # until commit, so concurrent writers queue up and no number is skipped.
    sequence = await session.scalar(
        update(Task)
        .where(Task.id == task_id)
        .values(last_event_sequence=Task.last_event_sequence + 1, updated_at=Task.updated_at)
        .returning(Task.last_event_sequence)
    )
    if sequence is None:
        raise NotFound("task not found")
    event = add_event(session, task_id, sequence, type, data or {})
    await session.flush()
    return event


def pending_events(session: AsyncSession) -> list[TaskEvent]:
    return list(session.info.get(PENDING_EVENTS, ()))

"""The append-only task event log: gap-free per-task sequences, published after commit."""

import uuid
from dataclasses import dataclass
from typing import Any, Self

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.enums import EventType
from db.errors import NotFound
from db.models import Task, TaskEvent

PENDING_EVENTS = "auditgraph.pending_events"
# The PostgreSQL LISTEN/NOTIFY channel every committed event is announced on.
EVENT_CHANNEL = "auditgraph_task_events"


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


@dataclass(frozen=True, slots=True)
class EventNotice:
    """That an event was committed: ids only, so a notification stays far below PostgreSQL's 8000-byte cap."""

    task_id: uuid.UUID
    sequence: int
    owner_id: uuid.UUID

    def encode(self) -> str:
        return orjson.dumps([str(self.task_id), self.sequence, str(self.owner_id)]).decode()

    @classmethod
    def decode(cls, payload: str) -> Self:
        task_id, sequence, owner_id = orjson.loads(payload)
        return cls(uuid.UUID(task_id), int(sequence), uuid.UUID(owner_id))


async def announce_events(session: AsyncSession) -> list[EventNotice]:
    """Name the session's staged events just before commit; on PostgreSQL also NOTIFY them.

    A NOTIFY issued inside the transaction is delivered only if it commits, so
    every listener on every host hears of an event exactly when it is durable.
    """
    events = pending_events(session)
    if not events:
        return []
    owners = dict(
        (await session.execute(
            select(Task.id, Task.user_id).where(Task.id.in_({event.task_id for event in events}))
        )).all()
    )
    # A task deleted in the same transaction took its events with it.
    notices = [
        EventNotice(event.task_id, event.sequence, owners[event.task_id])
        for event in events if event.task_id in owners
    ]
    assert session.bind is not None
    if session.bind.dialect.name == "postgresql":
        for notice in notices:
            await session.execute(select(func.pg_notify(EVENT_CHANNEL, notice.encode())))
    session.info.pop(PENDING_EVENTS, None)
    return notices

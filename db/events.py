"""The append-only task event log: gap-free per-task sequences and log positions, published after commit."""

import uuid
from dataclasses import dataclass
from typing import Any, Self

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db import access_changes
from db.access import Viewer
from db.base import utcnow
from db.claims import CLAIM_COLUMNS, HeldClaim
from db.enums import EventType
from db.errors import NotFound
from db.models import Task, TaskEvent

PENDING_EVENTS = "auditgraph.pending_events"
# The PostgreSQL LISTEN/NOTIFY channel every committed event is announced on.
EVENT_CHANNEL = "auditgraph_task_events"
# Announces that a user's access changed (deactivated, reactivated, another role): their
# open subscriptions re-check it. The payload is the user's id.
ACCESS_CHANNEL = "auditgraph_access_changes"
PENDING_ACCESS_CHANGES = "auditgraph.pending_access_changes"
# The transaction-scoped advisory lock that numbers log positions (any constant bigint, ours alone).
POSITION_LOCK = 0x6175646974677261


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


async def take_event_sequence(
    session: AsyncSession, task_id: uuid.UUID, viewer: Viewer
) -> tuple[HeldClaim, int]:
    """Take the visible task's next event sequence, locking its row until commit: (its claim, the sequence)."""
    locked = (
        await session.execute(
            update(Task)
            .where(Task.id == task_id, viewer.visible_tasks())
            .values(last_event_sequence=Task.last_event_sequence + 1, updated_at=utcnow())
            .returning(*CLAIM_COLUMNS, Task.last_event_sequence)
        )
    ).one_or_none()
    if locked is None:
        raise NotFound("task not found")
    return HeldClaim(*locked[:-1]), locked[-1]


def pending_events(session: AsyncSession) -> list[TaskEvent]:
    return list(session.info.get(PENDING_EVENTS, ()))


@dataclass(frozen=True, slots=True)
class EventNotice:
    """That an event was committed: ids only, so a notification stays far below PostgreSQL's 8000-byte cap."""

    task_id: uuid.UUID
    sequence: int
    owner_id: uuid.UUID
    position: int

    def encode(self) -> str:
        return orjson.dumps([str(self.task_id), self.sequence, str(self.owner_id), self.position]).decode()

    @classmethod
    def decode(cls, payload: str) -> Self:
        task_id, sequence, owner_id, position = orjson.loads(payload)
        return cls(uuid.UUID(task_id), int(sequence), uuid.UUID(owner_id), int(position))


async def number_positions(session: AsyncSession, events: list[TaskEvent]) -> None:
    """Give the transaction's events the next positions in the log, as the last thing before commit.

    The lock is held until commit, so positions are handed out in commit
    order: a reader that sees position P committed has every position below P
    too, and "the log after P" can never skip an event that commits later.
    On SQLite, write transactions are serial already.
    """
    if not events:
        return
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(POSITION_LOCK)))
    # A statement of its own, after the lock: it sees the transaction that released it.
    head: int = await session.scalar(select(func.coalesce(func.max(TaskEvent.position), 0))) or 0
    for offset, event in enumerate(events, start=1):
        event.position = head + offset
    await session.flush()


async def log_head(connection: AsyncConnection) -> int:
    """The position of the newest committed event (0 for an empty log)."""
    return int(await connection.scalar(select(func.coalesce(func.max(TaskEvent.position), 0))) or 0)


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
    surviving = [event for event in events if event.task_id in owners]
    for event in surviving:
        event.user_id = owners[event.task_id]
    await number_positions(session, surviving)
    notices = [
        EventNotice(event.task_id, event.sequence, owners[event.task_id], event.position)  # type: ignore[arg-type]
        for event in surviving
    ]
    assert session.bind is not None
    if session.bind.dialect.name == "postgresql":
        for notice in notices:
            await session.execute(select(func.pg_notify(EVENT_CHANNEL, notice.encode())))
    session.info.pop(PENDING_EVENTS, None)
    return notices


def note_access_change(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Stage an announcement that this user's access changed, made when the transaction commits."""
    session.info.setdefault(PENDING_ACCESS_CHANGES, set()).add(user_id)


async def announce_access_changes(session: AsyncSession) -> list[uuid.UUID]:
    """Name the users whose access the session changed, just before commit, and announce it to every process:
    NOTIFY on PostgreSQL, the access_changes log on SQLite (db/access_changes.py)."""
    changed = sorted(session.info.pop(PENDING_ACCESS_CHANGES, ()))
    if not changed or session.bind is None:
        return changed
    if session.bind.dialect.name == "postgresql":
        for user_id in changed:
            await session.execute(select(func.pg_notify(ACCESS_CHANNEL, str(user_id))))
    else:
        await access_changes.record(session, changed)
    return changed

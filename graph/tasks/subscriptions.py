"""Live task events: the log replayed first, then live notices, with no gap and no duplicate.

A subscription subscribes to the broker *before* reading the log, so an event
committed during the replay is announced to it; every read is "the log after
the last sequence delivered", so the seam de-duplicates itself. Between events
a subscription holds only its inbox: each read opens a connection and returns it.
"""

import uuid
from collections.abc import AsyncGenerator, Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry
from sqlalchemy import Select, and_, or_, select

from db import models
from db.access import Viewer, task_scope
from db.engine import Database
from db.errors import InvalidInput, NotFound
from db.events import EventNotice
from graph.broker import Broker
from graph.context import Info
from graph.loaders import Loaders
from graph.permissions import IsAuthenticated
from graph.relay import from_global_id
from graph.tasks.types import EVENT_COLUMNS, TaskEvent

READ_BATCH = 200
# How far back a myTaskEvents subscriber that fell behind looks for events of
# tasks it has not seen yet: an event's created_at is taken inside its
# transaction, so it can precede the commit (and the missed notice) by this long.
RESYNC_LOOKBACK = timedelta(seconds=60)


async def _fetch(database: Database, statement: Select[Any]) -> list[TaskEvent]:
    async with database.read() as connection:
        return [TaskEvent.from_row(row) for row in await connection.execute(statement)]


async def _task_log_after(database: Database, viewer: Viewer, task_id: uuid.UUID, after: int) -> list[TaskEvent]:
    return await _fetch(
        database,
        select(*EVENT_COLUMNS)
        .where(
            models.TaskEvent.task_id == task_id,
            models.TaskEvent.sequence > after,
            task_scope(viewer, models.TaskEvent.task_id),
        )
        .order_by(models.TaskEvent.sequence)
        .limit(READ_BATCH),
    )


async def _visible_last_sequence(database: Database, viewer: Viewer, task_id: uuid.UUID) -> int:
    async with database.read() as connection:
        last = await connection.scalar(
            select(models.Task.last_event_sequence).where(models.Task.id == task_id, viewer.visible_tasks())
        )
    if last is None:
        # Another user's task is reported as missing, exactly like a task that does not exist.
        raise NotFound("task not found")
    return last


def _refresh_loaders(info: Info, viewer: Viewer) -> None:
    # A connection lives for hours: fresh loaders per delivery, so a nested
    # `task` is read as it is now, not as it was cached at the first event.
    info.context.loaders = Loaders(info.context.database, viewer)


async def task_event_stream(
    info: Info, task_id: uuid.UUID, after_sequence: int | None
) -> AsyncGenerator[TaskEvent, None]:
    context = info.context
    viewer = context.require_viewer()
    broker: Broker = context.broker
    scope = None if viewer.sees_every_task else viewer.user_id
    with broker.subscribe(task_id=task_id) as inbox:
        current = await _visible_last_sequence(context.database, viewer, task_id)
        last = current if after_sequence is None else after_sequence
        # Set when a notice woke us: the highest sequence announced so far.
        notified: int | None = None
        while True:

            def read(after: int = last) -> Awaitable[list[TaskEvent]]:
                return _task_log_after(context.database, viewer, task_id, after)

            if notified is None:
                events = await read()
            else:
                # Subscribers woken by the same notice share one read. The key
                # holds the announced sequence, so a read is only joined by those
                # whose notice it started after: it sees what they were told of.
                events = await broker.shared_read((scope, task_id, last, notified), read)
            if events:
                _refresh_loaders(info, viewer)
            for event in events:
                yield event
                last = event.sequence
            if len(events) == READ_BATCH:
                notified = None
                continue
            # Sleep until a notice says the log grew past what we delivered.
            while True:
                notices, behind = await inbox.next_batch()
                if behind:
                    notified = None  # notices were lost: a read of our own
                    break
                newest = max((notice.sequence for notice in notices), default=0)
                if newest > last:
                    notified = newest
                    break


def _events_of_tasks_after(viewer: Viewer, after: dict[uuid.UUID, int]) -> Select[Any]:
    return (
        select(*EVENT_COLUMNS)
        .where(
            or_(*(
                and_(models.TaskEvent.task_id == task_id, models.TaskEvent.sequence > sequence)
                for task_id, sequence in after.items()
            )),
            task_scope(viewer, models.TaskEvent.task_id),
        )
        .order_by(models.TaskEvent.task_id, models.TaskEvent.sequence)
    )


def _events_since(viewer: Viewer, since: datetime) -> Select[Any]:
    # Ordered by task and sequence, not by time: created_at is when a writing
    # transaction began, and a later sequence can carry an earlier time.
    return (
        select(*EVENT_COLUMNS)
        .where(models.TaskEvent.created_at >= since, task_scope(viewer, models.TaskEvent.task_id))
        .order_by(models.TaskEvent.task_id, models.TaskEvent.sequence)
    )


def _in_task_order(*batches: list[TaskEvent]) -> list[TaskEvent]:
    unique = {event.pk: event for batch in batches for event in batch}
    return sorted(unique.values(), key=lambda event: (event.task_pk, event.sequence))


def _unseen(events: Sequence[TaskEvent], delivered: dict[uuid.UUID, int]) -> list[TaskEvent]:
    return [event for event in events if event.sequence > delivered.get(event.task_pk, 0)]


async def my_task_event_stream(
    info: Info, since: datetime | None, resume: dict[uuid.UUID, int]
) -> AsyncGenerator[TaskEvent, None]:
    context = info.context
    viewer = context.require_viewer()
    broker: Broker = context.broker
    # The last sequence delivered per task: what makes every read de-duplicate.
    delivered: dict[uuid.UUID, int] = dict(resume)
    started = datetime.now(UTC)
    floor = since or started
    owner = None if viewer.sees_every_task else viewer.user_id
    with broker.subscribe(owner_id=owner) as inbox:
        resumed = await _fetch(context.database, _events_of_tasks_after(viewer, resume)) if resume else []
        recent = await _fetch(context.database, _events_since(viewer, since)) if since else []
        pending = _in_task_order(resumed, recent)
        while True:
            events = _unseen(pending, delivered)
            if events:
                _refresh_loaders(info, viewer)
            for event in events:
                if event.sequence > delivered.get(event.task_pk, 0):
                    yield event
                    delivered[event.task_pk] = event.sequence
            pending = await _next_my_events(context.database, viewer, inbox, delivered, floor)


async def _next_my_events(
    database: Database, viewer: Viewer, inbox: Any, delivered: dict[uuid.UUID, int], floor: datetime
) -> list[TaskEvent]:
    while True:
        notices, behind = await inbox.next_batch()
        if behind:
            # Notices were lost: recent events of every visible task, filtered by what was delivered.
            since = max(floor, datetime.now(UTC) - RESYNC_LOOKBACK)
            known = await _fetch(database, _events_of_tasks_after(viewer, delivered)) if delivered else []
            recent = await _fetch(database, _events_since(viewer, since))
            return _in_task_order(known, recent)
        after = _read_points(notices, delivered)
        if after:
            return await _fetch(database, _events_of_tasks_after(viewer, after))


def _read_points(notices: list[EventNotice], delivered: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
    """Per task, the sequence to read after: the last delivered, or just before the first notice of a new task."""
    after: dict[uuid.UUID, int] = {}
    for notice in notices:
        start = delivered.get(notice.task_id, notice.sequence - 1)
        if notice.sequence > start:
            after[notice.task_id] = min(after.get(notice.task_id, start), start)
    return after


@strawberry.input(description="Where to resume one task's events: after the last sequence you received.")
class TaskSequenceInput:
    task_id: strawberry.ID
    after_sequence: int


def _resume_points(points: list[TaskSequenceInput] | None, limit: int) -> dict[uuid.UUID, int]:
    points = points or []
    if len(points) > limit:
        raise InvalidInput(f"afterSequences takes at most {limit} tasks")
    resume: dict[uuid.UUID, int] = {}
    for point in points:
        if point.after_sequence < 0:
            raise InvalidInput("afterSequence must not be negative")
        _, pk = from_global_id(point.task_id, "Task")
        # Named twice: resume from the earlier point, so nothing is skipped.
        resume[pk] = min(resume.get(pk, point.after_sequence), point.after_sequence)
    return resume


def _resume_after(last_event_id: str | None, after_sequence: int | None) -> int | None:
    """Where a task's stream resumes: after an SSE client's Last-Event-ID, else after afterSequence."""
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise InvalidInput("Last-Event-ID must be the id of an event this stream sent")
        return int(last_event_id)
    if after_sequence is not None and after_sequence < 0:
        raise InvalidInput("afterSequence must not be negative")
    return after_sequence


@strawberry.type
class TaskSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description=(
            "A task's events as they are committed. With afterSequence, the stored events after "
            "that sequence come first: reconnect with the last sequence you received and you miss "
            "nothing and receive nothing twice. Without it, only events from now on. Over "
            "Server-Sent Events each event's id is its sequence, and a Last-Event-ID header resumes after it."
        ),
    )
    async def task_events(
        self, info: Info, task_id: strawberry.ID, after_sequence: int | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        _, pk = from_global_id(task_id, "Task")
        after = _resume_after(info.context.last_event_id, after_sequence)
        async for event in task_event_stream(info, pk, after):
            # Over SSE, the event's id: a reconnect sends it back as Last-Event-ID.
            info.context.stream_position = str(event.sequence)
            yield event

    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description=(
            "Events of every task the viewer may see (a USER: their own; WORKER and ADMIN: all), "
            "each task's in sequence order. To resume after a reconnect, pass afterSequences (per "
            "task, the last sequence you received): those tasks' stored events after it come first, "
            "with no gap and no duplicate. since adds the stored events, created at or after that "
            "instant, of tasks you did not list. Without either, only events from now on."
        ),
    )
    async def my_task_events(
        self, info: Info, since: datetime | None = None, after_sequences: list[TaskSequenceInput] | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        resume = _resume_points(after_sequences, info.context.settings.max_page_size)
        async for event in my_task_event_stream(info, since, resume):
            yield event

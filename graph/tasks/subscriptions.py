"""Live task events: the log replayed first, then live notices, with no gap and no duplicate.

A subscription subscribes to the broker *before* reading the log, so an event
committed during the replay is announced to it; every read is "the log after
the last sequence (one task) or position (many tasks) delivered", so the seam
de-duplicates itself. Between events a subscription holds only its inbox: each
read opens a connection and returns it, and rides out a short outage of the
database (db/outage.py): since it is "the log after what was delivered", the
retry on a fresh connection resumes with no gap and no duplicate.
"""

import uuid
from collections.abc import AsyncGenerator, Awaitable
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Select, and_, func, or_, select, true

from db import models
from db.access import Viewer, task_scope
from db.engine import Database
from db.errors import InvalidInput, NotFound
from db.events import log_head
from db.outage import ride_out
from graph.access.live_access import while_access_lasts
from graph.access.permissions import IsAuthenticated
from graph.context import Info
from graph.live.broker import Broker
from graph.relay import from_global_id
from graph.scalars import BigInt
from graph.tasks.types import EVENT_COLUMNS, TaskEvent

READ_BATCH = 200
RESUME_POINTS_PER_READ = 100
# The largest ids an SSE stream sends: a sequence is a 32-bit integer, a position a 64-bit one.
MAX_SEQUENCE = 2**31 - 1
MAX_POSITION = 2**63 - 1
# The key of the connection parameters under which a WebSocket client carries the position of the last event
# it handled: graphql-ws re-reads connectionParams on every reconnect, so a resubscription resumes after it.
CARRIED_POSITION = "afterPosition"


async def _fetch(database: Database, statement: Select, window: float) -> list[TaskEvent]:
    async def read() -> list[TaskEvent]:
        async with database.read() as connection:
            return [TaskEvent.from_row(row) for row in await connection.execute(statement)]

    return await ride_out(read, window)


async def _head(database: Database, window: float) -> int:
    async def read() -> int:
        async with database.read() as connection:
            return await log_head(connection)

    return await ride_out(read, window)


async def _task_log_after(database: Database, viewer: Viewer, task_id: uuid.UUID, after: int,
                          window: float) -> list[TaskEvent]:
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
        window,
    )


async def _visible_last_sequence(database: Database, viewer: Viewer, task_id: uuid.UUID, window: float) -> int:
    async def read() -> int | None:
        async with database.read() as connection:
            return await connection.scalar(
                select(models.Task.last_event_sequence).where(models.Task.id == task_id, viewer.visible_tasks())
            )

    last = await ride_out(read, window)
    if last is None:
        # Another user's task is reported as missing, exactly like a task that does not exist.
        raise NotFound("task not found")
    return last


def _refresh_loaders(info: Info, viewer: Viewer) -> None:
    # A connection lives for hours: fresh loaders per delivery, so a nested
    # `task` is read as it is now, not as it was cached at the first event;
    # their reads ride out a blip like the stream's own.
    database = info.context.database.patient(info.context.settings.subscription_outage_seconds)
    info.context.loaders = info.context.loaders.fresh(database, viewer)


async def _sequence_at(database: Database, task_id: uuid.UUID, position: int, window: float) -> int:
    """The task's last sequence at or before a log position: what a client that has the log up to it has."""
    async def read() -> int | None:
        async with database.read() as connection:
            return await connection.scalar(
                select(func.max(models.TaskEvent.sequence))
                .where(models.TaskEvent.task_id == task_id, models.TaskEvent.position <= position)
            )

    return await ride_out(read, window) or 0


async def task_event_stream(
    info: Info, task_id: uuid.UUID, after_sequence: int | None, carried_position: int | None = None
) -> AsyncGenerator[TaskEvent, None]:
    context = info.context
    viewer = context.require_viewer()
    broker: Broker = context.broker
    scope = None if viewer.sees_every_task else viewer.user_id
    window = context.settings.subscription_outage_seconds
    with broker.subscribe(task_id=task_id) as inbox:
        current = await _visible_last_sequence(context.database, viewer, task_id, window)
        if carried_position is not None:
            after_sequence = _later(after_sequence, await _sequence_at(context.database, task_id, carried_position,
                                                                       window))
        last = current if after_sequence is None else after_sequence
        # Set when a notice woke us: the highest sequence announced so far.
        notified: int | None = None
        while True:

            def read(after: int = last) -> Awaitable[list[TaskEvent]]:
                return _task_log_after(context.database, viewer, task_id, after, window)

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


def _events_of_tasks_after(viewer: Viewer, after: dict[uuid.UUID, int], head: int) -> Select:
    return (
        select(*EVENT_COLUMNS)
        .where(
            or_(*(
                and_(models.TaskEvent.task_id == task_id, models.TaskEvent.sequence > sequence)
                for task_id, sequence in after.items()
            )),
            models.TaskEvent.position <= head,
            task_scope(viewer, models.TaskEvent.task_id),
        )
    )


def _events_since(viewer: Viewer, since: datetime, head: int) -> Select:
    return select(*EVENT_COLUMNS).where(
        models.TaskEvent.created_at >= since,
        models.TaskEvent.position <= head,
        task_scope(viewer, models.TaskEvent.task_id),
    )


def _log_after(viewer: Viewer, position: int) -> Select:
    # Each event names its owner: a USER's resume walks (user_id, position), however busy the log is.
    scope = true() if viewer.sees_every_task else models.TaskEvent.user_id == viewer.id_parameter
    return (
        select(*EVENT_COLUMNS)
        .where(models.TaskEvent.position > position, scope)
        .order_by(models.TaskEvent.position)
        .limit(READ_BATCH)
    )


async def _replay(database: Database, viewer: Viewer, resume: dict[uuid.UUID, int], since: datetime | None,
                  head: int, window: float) -> list[TaskEvent]:
    """The stored events afterSequences and since ask for, up to the log's head, in log order, once each."""
    batches = []
    points = list(resume.items())
    # One statement per so many tasks keeps each within every database's limit on parameters.
    for start in range(0, len(points), RESUME_POINTS_PER_READ):
        chunk = dict(points[start:start + RESUME_POINTS_PER_READ])
        batches.append(await _fetch(database, _events_of_tasks_after(viewer, chunk, head), window))
    if since is not None:
        # A task named in afterSequences resumes after its own sequence only: the client has what came before.
        recent = await _fetch(database, _events_since(viewer, since, head), window)
        batches.append([event for event in recent if event.task_pk not in resume])
    unique = {event.pk: event for batch in batches for event in batch}
    return sorted(unique.values(), key=lambda event: event.position)


async def my_task_event_stream(
    info: Info, after_position: int | None, since: datetime | None, resume: dict[uuid.UUID, int]
) -> AsyncGenerator[TaskEvent, None]:
    """Every visible task's events in log order: a replay if asked for, then the log after a position.

    Positions are handed out in commit order, so "the log after the last
    position delivered" is exact whatever a subscriber missed: lost notices, a
    full inbox or a listener cut off for any time are all one more read.
    """
    context = info.context
    viewer = context.require_viewer()
    broker: Broker = context.broker
    owner = None if viewer.sees_every_task else viewer.user_id
    window = context.settings.subscription_outage_seconds
    with broker.subscribe(owner_id=owner) as inbox:
        if after_position is None:
            last = await _head(context.database, window)
            replayed = await _replay(context.database, viewer, resume, since, last, window) if resume or since else []
        else:
            last, replayed = after_position, []
        if replayed:
            _refresh_loaders(info, viewer)
        for event in replayed:
            yield event
        while True:
            events = await _fetch(context.database, _log_after(viewer, last), window)
            if events:
                _refresh_loaders(info, viewer)
            for event in events:
                yield event
                last = event.position
            if len(events) == READ_BATCH:
                continue
            await _wait_past(inbox, last)


async def _wait_past(inbox: Any, position: int) -> None:
    """Until a notice names a position past this one, or notices were lost (then the log is read anyway)."""
    while True:
        notices, behind = await inbox.next_batch()
        if behind or any(notice.position > position for notice in notices):
            return


@strawberry.input(description="Where to resume one task's events: after the last sequence you received.")
class TaskSequenceInput:
    task_id: strawberry.ID
    after_sequence: int


def _resume_points(points: list[TaskSequenceInput] | None) -> dict[uuid.UUID, int]:
    points = points or []
    resume: dict[uuid.UUID, int] = {}
    for point in points:
        if point.after_sequence < 0:
            raise InvalidInput("afterSequence must not be negative")
        _, pk = from_global_id(point.task_id, "Task")
        # Named twice: resume from the earlier point, so nothing is skipped.
        resume[pk] = min(resume.get(pk, point.after_sequence), point.after_sequence)
    return resume


def _event_id(text: str, largest: int, what: str = "Last-Event-ID must be the id of an event this stream sent") -> int:
    """An id a client sends back (an SSE client's Last-Event-ID): a number this stream could have sent."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(largest)) and int(text) <= largest):
        raise InvalidInput(what)
    return int(text)


def _carried_position(info: Info) -> int | None:
    """The position of the last event the client handled, if it carries one in its connection parameters."""
    value = (info.context.connection_params or {}).get(CARRIED_POSITION)
    if value is None:
        return None
    # A BigInt travels as a string; a client may as well send the number.
    if isinstance(value, bool) or not isinstance(value, int | str):
        value = ""
    return _event_id(str(value), MAX_POSITION,
                     f"connectionParams.{CARRIED_POSITION} must be the position of an event you received")


def _later(first: int | None, second: int | None) -> int | None:
    """The later of two resume points: a client has everything up to either, so it has up to the later one."""
    return first if second is None else second if first is None else max(first, second)


def _resume_after(last_event_id: str | None, after: int | None, argument: str, largest: int) -> int | None:
    """Where a stream resumes: after an SSE client's Last-Event-ID, else after the argument's value."""
    if last_event_id is not None:
        return _event_id(last_event_id, largest)
    if after is not None and after < 0:
        raise InvalidInput(f"{argument} must not be negative")
    return after


@strawberry.type
class TaskSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description=(
            "A task's events as they are committed. With afterSequence, the stored events after "
            "that sequence come first: reconnect with the last sequence you received and you miss "
            "nothing and receive nothing twice. Without it, only events from now on. Over "
            "Server-Sent Events each event's id is its sequence, and a Last-Event-ID header resumes after it. "
            "Over a WebSocket, connectionParams.afterPosition (the position of the last event you handled, "
            "re-read by graphql-ws on each reconnect) resumes after this task's events up to that position; "
            "with afterSequence too, after the later of the two."
        ),
    )
    async def task_events(
        self, info: Info, task_id: strawberry.ID, after_sequence: int | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        _, pk = from_global_id(task_id, "Task")
        after = _resume_after(info.context.last_event_id, after_sequence, "afterSequence", MAX_SEQUENCE)
        stream = task_event_stream(info, pk, after, _carried_position(info))
        async for event in while_access_lasts(info, stream):
            # Over SSE, the event's id: a reconnect sends it back as Last-Event-ID.
            info.context.stream_position = str(event.sequence)
            yield event

    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description=(
            "Events of every task the viewer may see (a USER: their own; WORKER and ADMIN: all), in "
            "log order. To resume after a reconnect, pass afterPosition, the position of the last event "
            "you received: every later event comes, with no gap and no duplicate, however many tasks. "
            "Over Server-Sent Events each event's id is its position, and a Last-Event-ID header "
            "resumes after it. Without afterPosition, events from now on, after a replay of what "
            "afterSequences (per task, after a sequence: as many tasks as MAX_LIST_LENGTH allows) and since "
            "(created at or after an instant, for the tasks afterSequences does not name) ask for, each event once. "
            "Over a WebSocket, connectionParams.afterPosition (re-read by graphql-ws on each reconnect) resumes "
            "after that position as afterPosition does; with both, after the later of the two."
        ),
    )
    async def my_task_events(
        self, info: Info, after_position: BigInt | None = None, since: datetime | None = None,
        after_sequences: list[TaskSequenceInput] | None = None,
    ) -> AsyncGenerator[TaskEvent, None]:
        after = _later(_resume_after(info.context.last_event_id, after_position, "afterPosition", MAX_POSITION),
                       _carried_position(info))
        resume = _resume_points(after_sequences)
        async for event in while_access_lasts(info, my_task_event_stream(info, after, since, resume)):
            # Over SSE, the event's id: a reconnect sends it back as Last-Event-ID.
            info.context.stream_position = str(event.position)
            yield event

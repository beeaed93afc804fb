"""Fan-out of committed task events to subscribers: in-process on SQLite, LISTEN/NOTIFY on PostgreSQL.

The broker carries notices (ids only), never event rows: the task_events log
is the truth, and a subscriber that missed notices (a full queue, a listener
that lost its connection) re-reads the log after the last sequence it
delivered, so nothing is ever lost and nothing repeats.
"""

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from db import access_changes
from db.engine import Database
from db.events import ACCESS_CHANNEL, EVENT_CHANNEL, EventNotice
from db.settings import Settings
from graph.live.housekeeping import in_housekeeping
from graph.observability.metrics import BROKER_RECONNECTS

logger = logging.getLogger("auditgraph.broker")
T = TypeVar("T")

# Enough for bursts; a subscriber further behind re-reads the log instead.
INBOX_SIZE = 256
# How often the embedded default reads the access changes other processes made: a stream of an account
# the CLI deactivates ends within this and one read of the account.
ACCESS_POLL_SECONDS = 0.25


class Inbox:
    """One subscriber's bounded queue of notices.

    Overflow policy: a notice that does not fit is dropped and the inbox is
    marked behind; its subscriber then re-reads the log after what it last
    delivered, which recovers every dropped notice without blocking the broker.
    A list and one future, not an asyncio.Queue: every idle subscriber holds
    one, and a Queue's three deques and event were 5 KiB of it.
    """

    def __init__(self, maxsize: int = INBOX_SIZE) -> None:
        self._maxsize = maxsize
        self._notices: list[EventNotice] = []
        self._behind = False
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._notices)

    @property
    def full(self) -> bool:
        return len(self._notices) >= self._maxsize

    def offer(self, notice: EventNotice) -> None:
        if self.full:
            self._behind = True
        else:
            self._notices.append(notice)
        self._wake()

    def resync(self) -> None:
        """Notices may have been missed: make the subscriber re-read the log."""
        self._behind = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_batch(self) -> tuple[list[EventNotice], bool]:
        """Wait for news; return the queued notices and whether the log must be re-read."""
        while not self._notices and not self._behind:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        notices, self._notices = self._notices, []
        behind, self._behind = self._behind, False
        return notices, behind


class Broker:
    """Routes notices to the inboxes that asked for a task, an owner, or everything."""

    def __init__(self, inbox_size: int = INBOX_SIZE) -> None:
        self.inbox_size = inbox_size
        self._by_task: dict[uuid.UUID, set[Inbox]] = {}
        self._by_owner: dict[uuid.UUID, set[Inbox]] = {}
        self._everything: set[Inbox] = set()
        self._reads: dict[Hashable, asyncio.Future[Any]] = {}
        self._access_watchers: dict[uuid.UUID, set[Callable[[], None]]] = {}
        self._connections: Counter[uuid.UUID] = Counter()
        # Counts the access changes heard (and the times some may have been missed):
        # what was read about an account under an older count may be stale.
        self.access_version = 0

    @contextmanager
    def watch_access(self, user_id: uuid.UUID, changed: Callable[[], None]) -> Iterator[None]:
        """Call `changed()` whenever this user's access may have changed (then re-read it)."""
        self._access_watchers.setdefault(user_id, set()).add(changed)
        try:
            yield
        finally:
            watchers = self._access_watchers[user_id]
            watchers.discard(changed)
            if not watchers:
                del self._access_watchers[user_id]

    def publish_access_changes(self, user_ids: list[uuid.UUID]) -> None:
        self.access_version += 1
        for user_id in user_ids:
            for changed in self._access_watchers.get(user_id, ()):
                changed()

    def admit_connection(self, user_id: uuid.UUID, limit: int) -> bool:
        """Count one more live connection of this user in this process, unless they hold `limit` already."""
        if self._connections[user_id] >= limit:
            return False
        self._connections[user_id] += 1
        return True

    def release_connection(self, user_id: uuid.UUID) -> None:
        self._connections[user_id] -= 1
        if self._connections[user_id] <= 0:
            del self._connections[user_id]

    async def shared_read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`, run once for every subscriber that asks for the same `key` while it runs.

        A notice wakes every subscriber of its task at once, and most of them
        want the same rows (the log after the same sequence): one query serves
        them all instead of one each.
        """
        future = self._reads.get(key)
        if future is None:
            future = self._reads[key] = asyncio.ensure_future(read())
            future.add_done_callback(lambda done: self._read_done(key, done))
        # A subscriber that goes away must not cancel the read the others wait on.
        return await asyncio.shield(future)

    def _read_done(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        self._reads.pop(key, None)
        if not done.cancelled():
            # A failed read (the database unreachable) is raised to every subscriber still waiting on it;
            # when all of them have gone, nobody else would look at it.
            done.exception()

    @property
    def subscriber_count(self) -> int:
        return (
            sum(map(len, self._by_task.values())) + sum(map(len, self._by_owner.values()))
            + len(self._everything)
        )

    @contextmanager
    def subscribe(self, *, task_id: uuid.UUID | None = None, owner_id: uuid.UUID | None = None) -> Iterator[Inbox]:
        """An inbox for one task's events, one owner's, or (with neither) every event."""
        inbox = Inbox(self.inbox_size)
        if task_id is not None:
            routes, key = self._by_task, task_id
        elif owner_id is not None:
            routes, key = self._by_owner, owner_id
        else:
            routes, key = None, None
        if routes is None:
            self._everything.add(inbox)
        else:
            routes.setdefault(key, set()).add(inbox)  # type: ignore[arg-type]
        try:
            yield inbox
        finally:
            if routes is None:
                self._everything.discard(inbox)
            else:
                members = routes[key]  # type: ignore[index]
                members.discard(inbox)
                if not members:
                    del routes[key]  # type: ignore[arg-type]

    def publish(self, notices: list[EventNotice]) -> None:
        for notice in notices:
            for inbox in (
                *self._by_task.get(notice.task_id, ()), *self._by_owner.get(notice.owner_id, ()), *self._everything
            ):
                inbox.offer(notice)

    def resync_all(self) -> None:
        for inbox in (*self._everything, *(i for s in self._by_task.values() for i in s),
                      *(i for s in self._by_owner.values() for i in s)):
            inbox.resync()
        # Access changes may have been missed too: every watcher re-reads its user's.
        self.publish_access_changes(list(self._access_watchers))

    @property
    def listening(self) -> bool:
        """Whether notices of every commit reach this process now (/readyz reports it)."""
        return True

    @property
    def hears_every_access_change(self) -> bool:
        """Whether an access change committed by any process reaches this one (graph/access/viewer_roles.py)."""
        return False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class InProcessBroker(Broker):
    """The embedded default's broker: one process, told by the Database after each commit.

    Access changes may come from another process (the CLI): while any stream
    watches an account, the broker also reads the access_changes log every
    ACCESS_POLL_SECONDS (db/access_changes.py), SQLite's stand-in for NOTIFY.
    """

    def __init__(self, database: Database, inbox_size: int = INBOX_SIZE,
                 access_poll_seconds: float = ACCESS_POLL_SECONDS) -> None:
        super().__init__(inbox_size)
        self.database = database
        self.access_poll_seconds = access_poll_seconds
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.database.commit_listeners.append(self.publish)
        self.database.access_listeners.append(self.publish_access_changes)
        seen = None
        with suppress(Exception):  # the file may not open yet: the server starts all the same, and reads it later
            seen = await access_changes.head(self.database)
        self._poller = asyncio.create_task(self._poll_access_changes(seen), name="auditgraph-access-changes")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with suppress(asyncio.CancelledError):
                await self._poller
        with suppress(ValueError):
            self.database.commit_listeners.remove(self.publish)
        with suppress(ValueError):
            self.database.access_listeners.remove(self.publish_access_changes)

    async def _poll_access_changes(self, seen: int | None) -> None:
        """From `seen`, the position the log stood at when this process began (None: not read yet)."""
        in_housekeeping.set(True)  # this task's own context: no request's statements
        failing = False
        while True:
            await asyncio.sleep(self.access_poll_seconds)
            if seen is not None and not self._access_watchers:
                continue  # no stream to end: what is logged meanwhile is read once one opens
            try:
                if seen is None:
                    seen = await access_changes.head(self.database)
                    continue
                changes, missed = await access_changes.changes_after(self.database, seen)
            except Exception:  # the file unreadable for a moment must not end the loop
                if not failing:
                    logger.warning("cannot read the access changes; retrying", exc_info=True)
                failing = True
                continue
            failing = False
            if not changes:
                continue
            seen = changes[-1][0]
            # This process's own changes come back here too: their streams re-check once more, to no effect.
            self.publish_access_changes(list(self._access_watchers) if missed else [user for _, user in changes])


class PostgresBroker(Broker):
    """LISTENs on a dedicated asyncpg connection, so a commit on any worker on any host reaches us.

    The NOTIFY is issued by the writing transaction itself (db.events.announce_events),
    so this process's own writes arrive the same way as everyone else's. When
    the connection drops it is re-established and every subscriber re-reads the log.
    """

    def __init__(self, dsn: str, inbox_size: int = INBOX_SIZE, *, health_interval: float = 10.0,
                 retry_delay: float = 0.5) -> None:
        super().__init__(inbox_size)
        self.dsn = dsn
        self.health_interval = health_interval
        self.retry_delay = retry_delay
        self._connection: asyncpg.Connection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "PostgresBroker":
        url = make_url(settings.listen_url).set(drivername="postgresql")
        return cls(url.render_as_string(hide_password=False), settings.subscriber_inbox_size)

    @property
    def listening(self) -> bool:
        return self._connected.is_set()

    @property
    def hears_every_access_change(self) -> bool:
        return self.listening

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="auditgraph-event-listener")
        # Serve only once listening, so no subscriber starts before notices can arrive.
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait({waiter, self._supervisor}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._supervisor.done():
            self._supervisor.result()

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError):
                await self._supervisor
        await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = EventNotice.decode(payload)
        except (ValueError, TypeError):
            logger.warning("ignoring a malformed event notification")
            return
        self.publish([notice])

    def _on_access_change(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            logger.warning("ignoring a malformed access notification")
            return
        self.publish_access_changes([user_id])

    async def _supervise(self) -> None:
        first = True
        while True:
            lost = asyncio.Event()
            try:
                self._connection = await asyncpg.connect(self.dsn)
                self._connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await self._connection.add_listener(EVENT_CHANNEL, self._on_notification)
                await self._connection.add_listener(ACCESS_CHANNEL, self._on_access_change)
            except Exception as error:  # whatever it was, try again
                if first and not self._connected.is_set():
                    raise
                logger.warning("event listener cannot connect (%s); retrying", error)
                await asyncio.sleep(self.retry_delay)
                continue
            if not first:
                self.reconnects += 1
                BROKER_RECONNECTS.inc()
                logger.info("event listener reconnected; subscribers re-read the log")
                # Whatever was committed while we were deaf is in the log.
                self.resync_all()
            first = False
            self._connected.set()
            await self._watch(lost)
            self._connected.clear()
            # Subscribers read the log now: while the database is back at once they miss nothing (a read rides
            # out a blip, db/outage.py), and in a lasting outage they learn of it and end, SERVICE_UNAVAILABLE.
            self.resync_all()
            await self._close()

    async def _watch(self, lost: asyncio.Event) -> None:
        """Return once the connection is gone: closed under us, or silent to a health check."""
        while not lost.is_set():
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=self.health_interval)
                return
            connection = self._connection
            try:
                assert connection is not None
                await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=self.health_interval)
            except Exception as error:  # noqa: BLE001 - any failure means: reconnect
                logger.warning("event listener connection lost (%s)", error)
                return


def create_broker(database: Database, settings: Settings) -> Broker:
    """Chosen by the database: the broker must see every worker's writes."""
    if database.dialect == "postgresql":
        return PostgresBroker.from_settings(settings)
    return InProcessBroker(database, settings.subscriber_inbox_size)

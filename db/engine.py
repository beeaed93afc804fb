"""The engine and the session factories, built from settings."""

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    AsyncExitStack,
    asynccontextmanager,
    nullcontext,
)
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Executable, Select, event, exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from db.availability import report_unavailability
from db.deadline import interrupt_sqlite_past_deadline, statement_timeout_ms
from db.events import EventNotice, announce_access_changes, announce_events
from db.figures import apply_changes
from db.outage import ride_out
from db.pooling import engine_connect_args
from db.reads import DriverReads, Row, StatementObserver
from db.replica import PRIMARY_POSITION, Replica, Route, Writes, noted_writes, noting_writes, read_route, reads_replica
from db.settings import Settings

# The statements run through SQLAlchemy are the ones whose cost depends on who asks (filters, counts,
# windows, writes scoped to an owner): each is planned for its own values, so a small account never
# runs on a plan PostgreSQL made generic after a large one's runs. The driver reads (db/reads.py) are
# reads by key and page, the same plan for anyone, and keep theirs generic.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}


def create_engine(settings: Settings, url: str | None = None, server_settings: dict[str, str] | None = None,
                  **overrides: Any) -> AsyncEngine:
    """The engine of DATABASE_URL (or `url`: a replica's); its PostgreSQL sessions start with `server_settings`
    (CUSTOM_PLANS unless given), or go without them behind a pooler in transaction mode (db/pooling.py)."""
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
    }
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(settings.database_url, **(options | overrides))
        # First: its "begin" hook bounds the wait for the lock before _configure_sqlite's begins the transaction.
        interrupt_sqlite_past_deadline(engine.sync_engine, settings.sqlite_busy_timeout_ms)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
    else:
        options["pool_pre_ping"] = settings.db_pool_pre_ping
        options["connect_args"] = engine_connect_args(settings, CUSTOM_PLANS if server_settings is None
                                                      else server_settings)
        engine = create_async_engine(url or settings.database_url, **(options | overrides))
        _discard_closed_connections(engine)
    report_unavailability(engine)
    return engine


def _read_engine(settings: Settings, url: str) -> AsyncEngine:
    """An engine for single-statement reads, in autocommit; a read never outlives the request that made it
    (db/deadline.py)."""
    return create_engine(settings, url, {**CUSTOM_PLANS,
                                         "statement_timeout": statement_timeout_ms(settings.request_timeout_seconds)},
                         isolation_level="AUTOCOMMIT", pool_pre_ping=False)


@asynccontextmanager
async def _together(*blocks: AbstractAsyncContextManager[None]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for block in blocks:
            await stack.enter_async_context(block)
        yield


def _discard_closed_connections(engine: AsyncEngine) -> None:
    """Never hand out a pooled connection the server has already closed.

    A restarting or stopping PostgreSQL tells every session it is going away,
    and the driver marks the connection closed as the message arrives: a
    check of that flag catches what a pre-ping would, without its round trip
    (the pool then connects afresh). The read pool relies on it alone.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise exc.DisconnectionError("the server closed this pooled connection")


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver, so "begin" below decides
        # whether a transaction takes the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer that starts as a reader can fail with SQLITE_BUSY when it
        # upgrades; BEGIN IMMEDIATE waits for the lock (busy_timeout) instead.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@dataclass(frozen=True)
class Database:
    """The engine and its two kinds of session: reads, and writes that own a transaction."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    write_sessions: async_sessionmaker[AsyncSession]
    # Single-statement reads (loaders, pages, counts). On PostgreSQL a pool of
    # its own whose connections are in autocommit from the start and are not
    # pinged: a read costs one round trip, where a transaction adds BEGIN and
    # ROLLBACK and a pre-ping one more.
    reader: AsyncEngine
    # Told of the events of every committed write transaction (the in-process
    # broker listens here; on PostgreSQL the NOTIFY inside the commit suffices).
    commit_listeners: list[Callable[[list[EventNotice]], None]] = field(default_factory=list, compare=False)
    # Told of the users whose access a committed transaction changed (the in-process broker again).
    access_listeners: list[Callable[[list[uuid.UUID]], None]] = field(default_factory=list, compare=False)
    # Told of each statement `prepared_rows` ran on the driver itself, which SQLAlchemy's cursor events never see.
    statement_observers: list[StatementObserver] = field(default_factory=list, compare=False)
    driver_reads: DriverReads | None = field(default=None, compare=False)
    # The streaming replica the queries of HTTP requests read (db/replica.py); None reads the primary.
    replica: Replica | None = field(default=None, compare=False)
    # How long `rows` and `prepared_rows` try again while the database is unreachable (db/outage.py): 0 for a
    # request, which is answered SERVICE_UNAVAILABLE at once; a live subscription's deliveries wait (`patient`).
    outage_seconds: float = field(default=0.0, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        engine = create_engine(settings)
        write_engine = engine.execution_options(sqlite_begin="IMMEDIATE")
        reader = engine if settings.is_sqlite else _read_engine(settings, settings.database_url)
        observers: list[StatementObserver] = []
        # With traces on, every statement goes through SQLAlchemy, whose events give each its span.
        direct = not settings.is_sqlite and settings.otel_exporter_otlp_endpoint is None
        replica = None
        if settings.replica_database_url is not None:
            replica_reader = _read_engine(settings, settings.replica_database_url)
            replica = Replica(replica_reader, DriverReads(replica_reader, observers, settings) if direct else None,
                              settings.replica_wait_seconds)
        return cls(
            engine=engine,
            sessions=async_sessionmaker(engine, expire_on_commit=False),
            write_sessions=async_sessionmaker(write_engine, expire_on_commit=False),
            reader=reader,
            statement_observers=observers,
            driver_reads=DriverReads(reader, observers, settings) if direct else None,
            replica=replica,
        )

    def patient(self, outage_seconds: float) -> "Database":
        """The same database, whose `rows` and `prepared_rows` ride out an outage of up to so many seconds."""
        return replace(self, outage_seconds=outage_seconds)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one write transaction, committed on success, rolled back on error."""
        async with self.write_sessions.begin() as session:
            yield session
            await apply_changes(session)
            notices = await announce_events(session)
            access_changes = await announce_access_changes(session)
        writes = noted_writes.get()
        if writes is not None:
            writes.committed = True
        if notices:
            for listener in self.commit_listeners:
                listener(notices)
        if access_changes:
            for access_listener in self.access_listeners:
                access_listener(access_changes)

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one read statement; use it as `async with database.read() as connection`.
        Inside `reads_replica`, a connection to the replica once it has replayed what the query asks for."""
        route = read_route.get()
        return self.reader.connect() if route is None else self._routed_read(route)

    @asynccontextmanager
    async def _routed_read(self, route: Route) -> AsyncIterator[AsyncConnection]:
        reader = route.replica.reader if await route.on_replica() else self.reader
        async with reader.connect() as connection:
            yield connection

    async def rows(self, statement: Executable, parameters: dict[str, Any] | None = None) -> Sequence[Row]:
        """The rows of one read statement, by position."""
        if self.outage_seconds:
            return await ride_out(lambda: self._rows(statement, parameters), self.outage_seconds)
        return await self._rows(statement, parameters)

    async def _rows(self, statement: Executable, parameters: dict[str, Any] | None) -> Sequence[Row]:
        async with self.read() as connection:
            return (await connection.execute(statement, parameters)).all()

    async def prepared_rows(self, statement: Select, parameters: dict[str, Any] | None = None
                            ) -> Sequence[Row]:
        """`rows`, for a statement object the process runs again and again (a loader's, a shared list's):
        on PostgreSQL straight from the driver, compiled once (db/reads.py)."""
        if self.outage_seconds:
            return await ride_out(lambda: self._prepared_rows(statement, parameters), self.outage_seconds)
        return await self._prepared_rows(statement, parameters)

    async def _prepared_rows(self, statement: Select, parameters: dict[str, Any] | None) -> Sequence[Row]:
        driver_reads, route = self.driver_reads, read_route.get()
        if route is not None and await route.on_replica():
            driver_reads = route.replica.driver_reads
        if driver_reads is not None:
            plan = driver_reads.plan(statement)
            if plan is not None:
                rows = await driver_reads.rows(plan, parameters)
                if rows is not None:
                    return rows
        return await self._rows(statement, parameters)

    def one_read_connection(self) -> AbstractAsyncContextManager[None]:
        """The `prepared_rows` reads made inside share one connection (db/reads.py), one per server they read;
        on SQLite, nothing changes."""
        if self.driver_reads is None:
            return nullcontext()
        if self.replica is None or self.replica.driver_reads is None:
            return self.driver_reads.one_connection()
        return _together(self.driver_reads.one_connection(), self.replica.driver_reads.one_connection())

    def reads_replica(self, after: str | None) -> AbstractContextManager[None]:
        """The reads made inside go to the replica, once it has replayed `after` (db/replica.py)."""
        return reads_replica(self.replica, after)

    def noting_writes(self) -> AbstractContextManager[Writes | None]:
        """Notes whether a transaction committed inside; None when there is no replica to read after it."""
        return noting_writes(self.replica)

    async def write_position(self) -> str:
        """The primary's WAL position now: once a commit has returned, a replica that replayed it has the commit."""
        async with self.reader.connect() as connection:
            return str(await connection.scalar(PRIMARY_POSITION))

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        engines = (self.engine,) if self.reader is self.engine else (self.engine, self.reader)
        return engines if self.replica is None else (*engines, self.replica.reader)

    async def dispose(self) -> None:
        for driver_reads in (self.driver_reads, None if self.replica is None else self.replica.driver_reads):
            if driver_reads is not None:
                await driver_reads.close()
        for engine in self.engines:
            await engine.dispose()

"""Single-statement reads on PostgreSQL, run by asyncpg itself from SQL that SQLAlchemy compiled once.

A read through SQLAlchemy's execution path builds an execution context, a
cursor result and a Row per row; for a page of a few hundred rows that is more
work than decoding the rows. Here each statement object is compiled once (its
SQL, the order of its parameters and the type processing of its values and
columns) and every later run hands asyncpg the SQL and the values: asyncpg
keeps the prepared statement, and rows come back as asyncpg Records, with
SQLAlchemy's result processing applied only to the columns that have one.

The reads take their connections from an asyncpg pool of their own, opened on
first use with the read engine's address and size: a checkout through
SQLAlchemy's async pool (a connection object, a greenlet each way) cost as much
as the rest of a small read. Its connections are in autocommit, as asyncpg's
are by default, and go back without a reset: these reads change no session
state. A connection the server closed is replaced by asyncpg on checkout.

Statements the compiled form cannot serve as is (lists expanded at execution
time) take SQLAlchemy's path, and so does every failed read: it is run again
there, so errors look and are reported exactly as before (a read has no
effects to repeat). Statement observers (the request's SQL count and time,
and the tests' counters) are told of each read either way.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import asyncpg
from cachetools import LRUCache
from sqlalchemy import Enum as SQLEnum
from sqlalchemy import Select, String
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from db.deadline import statement_timeout_ms
from db.errors import DatabaseBusy, DatabaseUnavailable, RequestTimedOut
from db.pooling import driver_connect_args
from db.settings import Settings

logger = logging.getLogger("auditgraph.reads")

# Statements are cached objects (loaders, shared lists): a few per shape and role.
MAX_PLANS = 1024
# How long closing the pool waits for reads still running before it cuts them off.
CLOSE_SECONDS = 5.0

StatementObserver = Callable[[str, float], None]
Row = Sequence[Any]


@dataclass(slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    required: frozenset[str]
    bind_processors: dict[str, Callable[[Any], Any]]
    column_types: tuple[Any, ...]
    # Known at the first run: a processor can depend on the type the server reports for the column.
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None

    async def learn_columns(self, driver: Any, dialect: Dialect) -> None:
        attributes = (await driver.prepare(self.sql)).get_attributes()
        processors = []
        for index, (column_type, attribute) in enumerate(zip(self.column_types, attributes, strict=True)):
            process = column_type._cached_result_processor(dialect, attribute.type.oid)
            if process is not None:
                processors.append((index, _enum_lookup(column_type, dialect, attribute.type.oid) or process))
        self.result_processors = tuple(processors)

    def arguments(self, parameters: dict[str, Any] | None) -> list[Any]:
        if self.required and not self.required <= (parameters or {}).keys():
            raise ValueError(f"a value is required for {sorted(self.required - (parameters or {}).keys())}")
        values = self.defaults if not parameters else {**self.defaults, **parameters}
        processors = self.bind_processors
        return [processors[name](values[name]) if name in processors else values[name] for name in self.names]

    def rows(self, records: list[Any]) -> list[Row]:
        if not self.result_processors or not records:
            return records
        # Column by column, and all of it in C: a page has a processed column or two and hundreds of rows.
        columns: list[Any] = list(zip(*records, strict=True))
        for index, process in self.result_processors:
            columns[index] = map(process, columns[index])
        return list(zip(*columns, strict=True))


def _enum_lookup(column_type: Any, dialect: Dialect, oid: int) -> Callable[[Any], Any] | None:
    """An Enum column's processing as one dict lookup, where SQLAlchemy's is that lookup in two Python calls
    (a page of findings has an enum or two in every row). A value the Enum does not know raises KeyError,
    and SQLAlchemy's path reruns the read and reports it as it always has."""
    if not isinstance(column_type, SQLEnum) or String.result_processor(column_type, dialect, oid) is not None:
        return None
    return dict(column_type._object_lookup).__getitem__


def _plan(statement: Select, dialect: Dialect) -> _Plan | None:
    compiled = statement.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params or compiled.positiontup is None:
        return None
    bind_processors = {name: process for name, process in compiled._bind_processors.items()
                       if name in compiled.positiontup}
    if not all(callable(process) for process in bind_processors.values()):
        return None  # a tuple-valued parameter: SQLAlchemy's path knows how to spread it
    return _Plan(
        sql=compiled.string,
        names=tuple(compiled.positiontup),
        defaults=dict(compiled.construct_params(_check=False)),
        required=frozenset(name for name, bind in compiled.binds.items() if bind.required),
        bind_processors=bind_processors,  # type: ignore[arg-type]
        column_types=tuple(column.type for column in compiled._result_columns),
    )


# Every statement read here is one the process runs again and again, with keys or an id and a page
# size as its parameters, and one plan serves them all. Left to choose, PostgreSQL planned a page of
# tasks anew on each run (a LIMIT parameter makes its generic plan look ten times dearer than it is):
# 0.18 ms of planning for 0.07 of execution, the larger part of the page's cost to the database.
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}


class DriverReads:
    """One per read engine on PostgreSQL (the Database holds it)."""

    def __init__(self, engine: AsyncEngine, observers: list[StatementObserver], settings: Settings) -> None:
        self.engine = engine
        self.observers = observers
        self.pool_size = settings.db_pool_size
        self.acquire_timeout = settings.db_pool_timeout_seconds
        self.close_timeout = min(CLOSE_SECONDS, settings.shutdown_timeout_seconds)
        # A read never outlives the request that made it (db/deadline.py).
        self.connect_args = driver_connect_args(settings, {
            **GENERIC_PLANS, "statement_timeout": statement_timeout_ms(settings.request_timeout_seconds)})
        # The lease of the `one_connection` block the current task is in, on this pool's connections alone
        # (a request may read the primary and a replica, each through its own DriverReads).
        self._current_lease: ContextVar[_Lease | None] = ContextVar("auditgraph_read_lease", default=None)
        self._plans: LRUCache[Select, _Plan | None] = LRUCache(MAX_PLANS)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        # Hand-backs scheduled by a read that outlived its block, kept until they end.
        self._returning: set[asyncio.Task[None]] = set()

    def plan(self, statement: Select) -> _Plan | None:
        try:
            return self._plans[statement]
        except KeyError:
            plan = self._plans[statement] = _plan(statement, self.engine.dialect)
            return plan

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    url = self.engine.url
                    self._pool = await asyncpg.create_pool(
                        **url.translate_connect_args(username="user"), **dict(url.query),
                        min_size=0, max_size=self.pool_size, reset=_keep_session, **self.connect_args)
        return self._pool

    def in_use(self) -> int:
        """Connections taken from the pool and not given back (0 when the pool is whole)."""
        pool = self._pool
        return 0 if pool is None else sum(1 for holder in pool._holders if holder._in_use is not None)

    async def close(self) -> None:
        """Closes the pool, waiting for connections in use for a few seconds at most, then cutting them off:
        a shutdown never waits on a read that does not end."""
        pool = self._pool
        if pool is not None:
            # Still this object's pool while it closes: a read finishing meanwhile gives its connection back.
            try:
                await asyncio.wait_for(pool.close(), self.close_timeout)
            except TimeoutError:
                logger.warning("read connections still in use at shutdown were cut off")
                pool.terminate()
            finally:
                self._pool = None

    async def _acquire(self, pool: asyncpg.Pool) -> Any:
        try:
            return await pool.acquire(timeout=self.acquire_timeout)
        except TimeoutError:
            raise DatabaseBusy() from None

    @asynccontextmanager
    async def one_connection(self) -> AsyncIterator[None]:
        """The reads made inside share one connection: taken at the first, given back at the end.

        A request's reads come one level of its tree after another. Taking a
        connection from the pool and giving it back for each cost more than a
        small read's decoding: asyncpg gives a connection back under
        asyncio.shield, a task and a turn of the event loop each time. Reads
        that overlap take turns on the one connection rather than take a
        second, so requests that each hold one never wait on each other.

        The block owns every connection taken for it, however it ends. A read
        still running (or still waiting for its connection) when the block
        ends holds the lease's lock, and gives the connections back itself
        when it lets go; any other gives them back here. A read that starts
        after the block ended (a sibling resolver of a failed request) never
        touches the lease: it takes its own connection and gives it back.
        """
        lease = _Lease(asyncio.Lock())
        token = self._current_lease.set(lease)
        try:
            yield
        finally:
            self._current_lease.reset(token)
            lease.open = False
            if not lease.lock.locked():
                await self._give_back(lease.take())

    async def _give_back(self, connections: list[Any]) -> None:
        for index, connection in enumerate(connections):
            try:
                await self._release(connection)
            except BaseException:
                # Cancelled while giving back: the rest go back all the same.
                self._hand_back_later(connections[index + 1:])
                raise

    def _hand_back_later(self, connections: list[Any]) -> None:
        if connections:
            task = asyncio.ensure_future(self._give_back(connections))
            self._returning.add(task)
            task.add_done_callback(self._returning.discard)

    async def _release(self, connection: Any) -> None:
        if self._pool is not None:
            await self._pool.release(connection)

    async def rows(self, plan: _Plan, parameters: dict[str, Any] | None) -> list[Row] | None:
        """The rows, or None when the read failed (the caller runs it through SQLAlchemy instead)."""
        arguments = plan.arguments(parameters)
        lease = self._current_lease.get()
        try:
            pool = await self._connections()
            records, elapsed = await self._leased(lease, pool, plan, arguments)
        except DatabaseUnavailable:
            raise  # no connection to be had in time: running it again would only wait again
        except asyncpg.QueryCanceledError:
            raise RequestTimedOut() from None  # past the request's time budget: so would a second run
        except Exception:  # a cancellation is not one: it goes on up
            logger.debug("a driver read failed; SQLAlchemy runs it again", exc_info=True)
            return None
        for observe in self.observers:
            observe(plan.sql, elapsed)
        try:
            return plan.rows(records)
        except Exception:  # a value no processor knows: SQLAlchemy's path reports it as it always has
            logger.debug("a driver read's rows could not be processed; SQLAlchemy runs it again", exc_info=True)
            return None

    async def _leased(self, lease: "_Lease | None", pool: asyncpg.Pool, plan: _Plan,
                      arguments: list[Any]) -> tuple[list[Any], float]:
        if lease is not None and lease.open:
            async with lease.lock:
                try:
                    if lease.open:
                        if lease.connection is None or lease.connection.is_closed():
                            # A read that failed closed it: it goes back to the pool when the block ends.
                            if lease.connection is not None:
                                lease.spent.append(lease.connection)
                                lease.connection = None
                            lease.connection = await self._acquire(pool)
                        return await self._fetch(plan, lease.connection, arguments)
                finally:
                    if not lease.open:
                        # The block ended while this read ran: nobody else will give them back.
                        self._hand_back_later(lease.take())
        connection = await self._acquire(pool)
        try:
            return await self._fetch(plan, connection, arguments)
        finally:
            await self._give_back([connection])

    async def _fetch(self, plan: _Plan, driver: Any, arguments: list[Any]) -> tuple[list[Any], float]:
        """The records of one run of `plan`, and the seconds it took."""
        started = perf_counter()
        try:
            if plan.result_processors is None:
                await plan.learn_columns(driver, self.engine.dialect)
            records = await driver.fetch(plan.sql, *arguments)
        except BaseException:
            # Whatever state the connection is in now (a failed read, a cancelled one, or one whose
            # coroutine was closed mid-read), it must not be handed out again.
            driver.terminate()
            raise
        return records, perf_counter() - started


@dataclass(slots=True)
class _Lease:
    """The connection the reads inside one `one_connection` block share, while it is open."""

    lock: asyncio.Lock
    connection: Any = None
    open: bool = True
    # Connections a failed read closed, given back to the pool with the last one.
    spent: list[Any] = field(default_factory=list)

    def take(self) -> list[Any]:
        """Every connection the lease holds, which the caller now gives back."""
        taken = self.spent if self.connection is None else [*self.spent, self.connection]
        self.connection, self.spent = None, []
        return taken



async def _keep_session(_connection: asyncpg.Connection) -> None:
    # These reads change no session state: a connection goes back to the pool
    # without asyncpg's reset round trip (RESET ALL, UNLISTEN *, ...).
    return None

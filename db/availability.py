"""The engine's failures that mean the database cannot be reached right now become DatabaseUnavailable,
and those that mean its disk is full become InsufficientStorage.

A request that meets one is answered `SERVICE_UNAVAILABLE` (retry later)
rather than `INTERNAL_SERVER_ERROR`: nothing is wrong with what it asked.
Only errors raised inside the engine are looked at, so an OSError here is
the network's, never a file's. Nothing is logged per failure: an outage would
flood the log with one line per request, while the event listener logs the
database going away and coming back, and /readyz reports it.

A full disk (SQLite's SQLITE_FULL, PostgreSQL's SQLSTATE 53100) is likewise
the server's state, not a bug: the write is refused with INSUFFICIENT_STORAGE
(507), nothing was written, reads go on, and no traceback is logged per request.
"""

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

from asyncpg import exceptions as pg
from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import DatabaseBusy, DatabaseUnavailable, InsufficientStorage, RequestTimedOut

# What ends a request that could not get a connection (or its time) soon enough: SERVICE_UNAVAILABLE, retry later.
WAITED_TOO_LONG = (DatabaseUnavailable, PoolTimeout, TimeoutError)


def as_unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable an error of WAITED_TOO_LONG means, else None."""
    if isinstance(error, DatabaseUnavailable):
        return error
    if isinstance(error, (PoolTimeout, TimeoutError)):
        return DatabaseBusy()
    return None


_POSTGRES_UNREACHABLE = (
    pg.PostgresConnectionError,  # SQLSTATE class 08: the connection failed or was lost
    pg.CannotConnectNowError,  # starting up or shutting down
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.TooManyConnectionsError,
)


def is_unreachable(error: BaseException) -> bool:
    # SQLAlchemy's asyncpg adapter wraps the driver's error (a server that is
    # shutting down answers CannotConnectNowError inside it): look down the chain.
    for cause in _causes(error):
        if isinstance(cause, sqlite3.Error):
            # The embedded database is a file in this process: it is "down" only
            # when the file cannot be opened (its folder or volume is gone).
            if getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_CANTOPEN:
                return True
        # Refused, reset or timed out while connecting: asyncpg raises these unwrapped.
        elif isinstance(cause, (OSError, *_POSTGRES_UNREACHABLE)):
            return True
    return False


def is_full_disk(error: BaseException) -> bool:
    for cause in _causes(error):
        if isinstance(cause, sqlite3.Error) and getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if isinstance(cause, pg.DiskFullError):
            return True
    return False


def _causes(error: BaseException, depth: int = 4) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None and depth > 0:
        yield current
        current, depth = current.__cause__, depth - 1


def is_timed_out(error: BaseException) -> bool:
    """A statement stopped for running past the request's time budget (db/deadline.py), or, on SQLite, one
    that waited SQLITE_BUSY_TIMEOUT_MS for the write lock in vain: retrying later is the answer to both."""
    for cause in _causes(error):
        if isinstance(cause, pg.QueryCanceledError):
            return True
        # Interrupted at the deadline, or no write lock before it (a busy wait is bounded by the time left).
        if isinstance(cause, sqlite3.OperationalError) and str(cause) in ("interrupted", "database is locked"):
            return True
    return False


def report_unavailability(engine: AsyncEngine) -> None:
    """Make the engine raise DatabaseUnavailable for a failed connect or a connection lost mid-statement."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as error:
            if is_unreachable(error):
                raise DatabaseUnavailable() from error
            raise

    @event.listens_for(engine.sync_engine, "handle_error")
    def _lost(context: ExceptionContext) -> None:
        # A failed pre-ping is the pool's own business: it reconnects (through _connect). A task
        # cancelled mid-statement leaves its connection in doubt (a "disconnect" to SQLAlchemy),
        # but the database is fine, and the cancellation must go on up as itself.
        if context.is_pre_ping or isinstance(context.original_exception, asyncio.CancelledError):
            return
        if is_full_disk(context.original_exception):
            raise InsufficientStorage(
                "the database has no room to write this now: nothing was changed; try again later"
            ) from context.original_exception
        if is_timed_out(context.original_exception):
            raise RequestTimedOut() from context.original_exception
        if not (context.is_disconnect or is_unreachable(context.original_exception)):
            return
        # The connection is of no more use (a server shutting down answers AdminShutdownError
        # on it): the pool must discard it, and the connections opened before it.
        context.is_disconnect = True
        raise DatabaseUnavailable() from context.original_exception

"""The time budget of a request, as far as the database goes.

The view sets `request_deadline` (a time.monotonic() value) for the length of
an HTTP request and cancels the request at that moment; what runs on inside
the database must stop then too, or a cancelled request would still hold a
connection and a core. On PostgreSQL the read connections carry a
statement_timeout of the same length. On SQLite a statement runs in
aiosqlite's thread, where a cancellation never reaches: each connection has a
progress handler that interrupts a statement once the deadline of the
request that started it has passed (set before each statement, from the
context of whoever runs it: housekeeping has none).
"""

from collections.abc import Callable
from contextvars import ContextVar
from time import monotonic
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.util import await_only

request_deadline: ContextVar[float | None] = ContextVar("auditgraph_request_deadline", default=None)
# SQLite virtual machine instructions between two looks at the clock: a few microseconds of work.
PROGRESS_STEPS = 10_000


class _Deadline:
    """The deadline of the statement a connection runs now (None: none)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def passed(self) -> int:
        at = self.at
        return 1 if at is not None and monotonic() > at else 0


def interrupt_sqlite_past_deadline(engine: Engine, busy_timeout_ms: int) -> None:
    """Ends a SQLite statement of a request at the request's deadline: an interrupt while it runs, and a wait
    for the write lock no longer than the time left (a busy wait is deaf to interrupts)."""

    @event.listens_for(engine, "connect")
    def _watch(dbapi_connection: Any, record: Any) -> None:
        deadline = record.info["deadline"] = _Deadline()
        record.info["busy_timeout_ms"] = busy_timeout_ms
        handler: Callable[[], int] = deadline.passed
        await_only(dbapi_connection.driver_connection.set_progress_handler(handler, PROGRESS_STEPS))

    @event.listens_for(engine, "begin")
    def _wait_no_longer_than_the_deadline(connection: Any) -> None:
        at = request_deadline.get()
        wanted = busy_timeout_ms if at is None else max(1, min(busy_timeout_ms, int((at - monotonic()) * 1000)))
        info = connection.connection.info
        if info.get("busy_timeout_ms") != wanted:
            # On the driver's cursor: a setting of the connection, not one of the request's statements.
            cursor = connection.connection.dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={wanted}")
            cursor.close()
            info["busy_timeout_ms"] = wanted

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(connection: Any, *_: Any) -> None:
        deadline = connection.connection.info.get("deadline")
        if deadline is not None:
            deadline.at = request_deadline.get()


def statement_timeout_ms(seconds: float) -> str:
    """PostgreSQL's statement_timeout for a request's time budget (a little past it: the request ends first)."""
    return str(int(seconds * 1000) + 500)

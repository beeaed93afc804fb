"""Counting the SQL statements a request issues: SQLAlchemy's own events, and the database's
observers for the reads it runs on the driver."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from db.engine import Database
from graph.live.housekeeping import in_housekeeping


@contextmanager
def count_statements(database: Database) -> Iterator[list[str]]:
    """Collects every data statement (not BEGIN/COMMIT/ROLLBACK or PRAGMA) run while inside, but for the
    housekeeping loops' own: they run on a timer, and a slow machine put one inside a counted block."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if in_housekeeping.get():
            return
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            statements.append(statement)

    def observe(statement: str, _seconds: float) -> None:
        if not in_housekeeping.get():
            statements.append(statement)

    for engine in database.engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    # Reads run on the driver itself (db/reads.py) pass no cursor event.
    database.statement_observers.append(observe)
    try:
        yield statements
    finally:
        for engine in database.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        database.statement_observers.remove(observe)

"""Counting the SQL statements a request issues, through SQLAlchemy's own events."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from db.engine import Database


@contextmanager
def count_statements(database: Database) -> Iterator[list[str]]:
    """Collects every data statement (not BEGIN/COMMIT/ROLLBACK or PRAGMA) run while inside."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            statements.append(statement)

    for engine in database.engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in database.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", record)

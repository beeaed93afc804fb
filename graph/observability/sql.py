"""Counts the SQL statements a request runs, and the time they take, through SQLAlchemy's cursor events."""

from time import perf_counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.observability.facts import current

STARTED = "_auditgraph_statement_started"


def _before(_connection: Any, _cursor: Any, _statement: Any, _parameters: Any, context: Any,
            _executemany: bool) -> None:
    if context is not None:
        setattr(context, STARTED, perf_counter())


def _after(_connection: Any, _cursor: Any, _statement: Any, _parameters: Any, context: Any,
           _executemany: bool) -> None:
    facts = current.get()
    if facts is None:
        # Outside any request: the broker, a migration, the CLI.
        return
    facts.sql_statements += 1
    started = getattr(context, STARTED, None)
    if started is not None:
        facts.sql_seconds += perf_counter() - started


def count_statements(engines: tuple[AsyncEngine, ...]) -> None:
    for engine in engines:
        if not event.contains(engine.sync_engine, "after_cursor_execute", _after):
            event.listen(engine.sync_engine, "before_cursor_execute", _before)
            event.listen(engine.sync_engine, "after_cursor_execute", _after)

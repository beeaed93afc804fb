"""Counts the SQL statements a request runs, and the time they take: SQLAlchemy's cursor events,
and the database's observers for reads run on the driver itself."""

from time import perf_counter
from typing import Any

from sqlalchemy import event

from db.engine import Database
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


def _observed(_statement: str, seconds: float) -> None:
    facts = current.get()
    if facts is not None:
        facts.sql_statements += 1
        facts.sql_seconds += seconds


def count_statements(database: Database) -> None:
    for engine in database.engines:
        if not event.contains(engine.sync_engine, "after_cursor_execute", _after):
            event.listen(engine.sync_engine, "before_cursor_execute", _before)
            event.listen(engine.sync_engine, "after_cursor_execute", _after)
    # Reads run on the driver itself (db/reads.py) pass no cursor event.
    if _observed not in database.statement_observers:
        database.statement_observers.append(_observed)

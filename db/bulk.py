"""Writing many rows of one table at once: one `COPY` on PostgreSQL, one `executemany` on SQLite.

An analysis may carry thousands of findings. Inserting them through the ORM
costs Python work per row and per value on the event loop: a 4,000-finding
analysis held every other request of its process for seconds. Here the rows are
encoded for the driver in a worker thread (which the event loop takes turns
with, at the interpreter's switch interval, instead of waiting for it), then
written in one statement per table: asyncpg's binary COPY, or sqlite3's
executemany, which aiosqlite runs in its own thread.

Values go straight to the driver, past SQLAlchemy's type processing, so they
are encoded here as the ORM would store them: on SQLite a uuid as its 32 hex
digits, a time as naive UTC text, JSON as text; on PostgreSQL as asyncpg takes
them (jsonb as text).
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import Base

Row = tuple[Any, ...]


class RowEncoder:
    """Turns Python values into what one database's driver takes for the ORM's column types."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def id(self, value: uuid.UUID | None) -> Any:
        if value is None or not self.sqlite:
            return value
        return value.hex

    def time(self, value: datetime) -> Any:
        if not self.sqlite:
            return value
        # SQLAlchemy's own SQLite storage format for DateTime, microseconds always written.
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    def new_ids(self, count: int) -> list[Any]:
        """`count` fresh random (version 4) uuids, encoded; faster than as many uuid4() calls."""
        random = os.urandom(16 * count)
        ids = [uuid.UUID(bytes=random[start:start + 16], version=4) for start in range(0, 16 * count, 16)]
        return [value.hex for value in ids] if self.sqlite else ids

    @staticmethod
    def json(value: object) -> str | None:
        return None if value is None else orjson.dumps(value).decode()


def _table(model: type[Base]) -> Table:
    table: Table = model.__table__  # type: ignore[assignment]
    return table


def columns_of(model: type[Base]) -> tuple[str, ...]:
    return tuple(column.name for column in _table(model).columns)


ROWS_PER_TURN = 500


async def _in_turns(rows: list[Row]) -> AsyncIterator[Row]:
    """The rows for asyncpg's COPY, which encodes them on the event loop: a turn for everyone else between
    every few hundred."""
    for start in range(0, len(rows), ROWS_PER_TURN):
        for row in rows[start:start + ROWS_PER_TURN]:
            yield row
        await asyncio.sleep(0)


async def insert_rows(session: AsyncSession, model: type[Base], columns: Sequence[str], rows: Iterable[Row]) -> None:
    """Insert rows (values in `columns` order, encoded by a RowEncoder) into the model's table within the
    session's transaction, in one statement."""
    table = _table(model)
    rows = list(rows)
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None, "a checked-out connection has its driver's"
        # Each row's foreign key is checked by a query of PostgreSQL's own, which the session's
        # force_custom_plan (db/engine.py, for reads whose cost depends on who asks) planned anew for every
        # row: the COPY took twice as long as on a fresh connection. The cached plan, for this transaction.
        await driver.execute("SET LOCAL plan_cache_mode = auto")
        await driver.copy_records_to_table(table.name, records=_in_turns(rows), columns=list(columns))
        return
    marks = ", ".join("?" * len(columns))
    names = ", ".join(f'"{name}"' for name in columns)
    await connection.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)

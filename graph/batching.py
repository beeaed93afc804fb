"""The base of every DataLoader: one short-lived connection and one SELECT per batch."""

from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import Row, Select

from db.access import Viewer
from db.engine import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchLoader(DataLoader, Generic[K, V]):  # type: ignore[type-arg]
    """Built per request, so its cache never outlives one viewer's request."""

    def __init__(self, database: Database, viewer: Viewer) -> None:
        super().__init__()
        self.database = database
        self.viewer = viewer

    async def fetch(self, statement: Select[Any]) -> list[Row[Any]]:
        # A connection per batch, not a shared session: aiodataloader runs
        # batches concurrently, and an AsyncSession cannot be shared.
        async with self.database.read() as connection:
            return list((await connection.execute(statement)).all())


def one_per_key(keys: Iterable[K], values: dict[K, V]) -> list[V | None]:
    return [values.get(key) for key in keys]


def many_per_key(keys: Iterable[K], rows: Iterable[tuple[K, V]]) -> list[list[V]]:
    grouped: dict[K, list[V]] = {}
    for key, value in rows:
        grouped.setdefault(key, []).append(value)
    return [grouped.get(key, []) for key in keys]

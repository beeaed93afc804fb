"""Keyset pagination: pages walk an order key plus id, never OFFSET."""

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from db.errors import InvalidInput

Executor = AsyncSession | AsyncConnection
Rows = Callable[[Select, dict[str, Any]], Awaitable[Sequence[Any]]]

RowT = TypeVar("RowT")
# A page's size when the client names none: the connections' default, and the cost budget's guess for them.
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True)
class SortKey:
    """The columns a list is ordered by, the last of them unique (the id)."""

    columns: tuple[ColumnElement[Any] | InstrumentedAttribute[Any], ...]
    descending: bool = False

    def values_of(self, row: Any) -> tuple[Any, ...]:
        # keyset_page selects the key's columns last.
        return tuple(row[len(row) - len(self.columns):])

    @cached_property
    def labelled(self) -> tuple[ColumnElement[Any], ...]:
        return tuple(column.label(f"_key{i}") for i, column in enumerate(self.columns))

    def bound_parameters(self, prefix: str) -> ColumnElement[Any]:
        # Typed parameters, so values are stored-form on every dialect (SQLite
        # compares its timestamps as text).
        return tuple_(*(bindparam(f"{prefix}{i}", type_=column.type) for i, column in enumerate(self.columns)))

    def parameter_values(self, prefix: str, values: Sequence[Any]) -> dict[str, Any]:
        return {f"{prefix}{i}": value for i, value in enumerate(values)}

    def encode(self, values: Sequence[Any]) -> list[Any]:
        return [_encode_value(value) for value in values]

    def decode(self, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, list) or len(raw) != len(self.columns):
            raise InvalidInput("the cursor does not belong to this list or ordering")
        try:
            return tuple(
                _decode_value(value, column.type.python_type)
                for value, column in zip(raw, self.columns, strict=True)
            )
        except (TypeError, ValueError):
            raise InvalidInput("the cursor is malformed") from None


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decode_value(value: Any, python_type: type) -> Any:
    if value is None:
        return None
    if python_type is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("cursor times carry an offset")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError("cursor time out of range") from None
    if python_type is uuid.UUID and isinstance(value, str):
        return uuid.UUID(value)
    if python_type is float and isinstance(value, int | float):
        return float(value)
    if python_type is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if python_type is str and isinstance(value, str):
        return value
    raise ValueError(f"unexpected cursor value {value!r}")


@dataclass
class Page(Generic[RowT]):
    rows: list[RowT]
    keys: list[tuple[Any, ...]]
    has_next_page: bool
    has_previous_page: bool


PAGE_LIMIT = "page_limit"
_AFTER, _BEFORE = "after", "before"


@functools.lru_cache(maxsize=256)
def _page_statement(statement: Select, key: SortKey, backward: bool, has_after: bool, has_before: bool) -> Select:
    """`statement` as one page in `key` order, its limit and cursor bounds left as parameters.

    Built once for a statement its caller reuses (an unfiltered list, see
    db/listing.py): building it and computing its cache key were a tenth of a
    small page's cost. A statement built anew each time is simply built here.
    """
    key_tuple = tuple_(*key.columns)
    statement = statement.add_columns(*key.labelled)
    if has_after:
        bound = key.bound_parameters(_AFTER)
        statement = statement.where(key_tuple < bound if key.descending else key_tuple > bound)
    if has_before:
        bound = key.bound_parameters(_BEFORE)
        statement = statement.where(key_tuple > bound if key.descending else key_tuple < bound)
    # Walking backward reads the reversed order and flips the page afterwards.
    descending = key.descending != backward
    statement = statement.order_by(*(c.desc() if descending else c.asc() for c in key.columns))
    return statement.limit(bindparam(PAGE_LIMIT, type_=Integer()))


async def keyset_page(
    rows_of: Rows,
    statement: Select,
    key: SortKey,
    *,
    first: int | None = None,
    after: tuple[Any, ...] | None = None,
    last: int | None = None,
    before: tuple[Any, ...] | None = None,
    parameters: dict[str, Any] | None = None,
) -> Page[Any]:
    """One page of `statement` in `key` order: `first` rows after a cursor, or `last` before one.

    `rows_of` runs the page (Database.rows, or prepared_rows for a statement the caller
    reuses); `parameters` are the values of the statement's own named parameters (the viewer's id).
    """
    if first is not None and last is not None:
        raise InvalidInput("pass either first or last, not both")
    backward = last is not None
    limit = last if backward else first
    assert limit is not None, "the caller supplies a default page size"
    if limit < 0:
        raise InvalidInput("page sizes cannot be negative")

    values = {**(parameters or {}), PAGE_LIMIT: limit + 1}
    if after is not None:
        values.update(key.parameter_values(_AFTER, after))
    if before is not None:
        values.update(key.parameter_values(_BEFORE, before))
    page = _page_statement(statement, key, backward, after is not None, before is not None)
    rows = list(await rows_of(page, values))
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    keys = [key.values_of(row) for row in rows]
    return Page(
        rows=rows,
        keys=keys,
        has_next_page=has_more if not backward else before is not None,
        has_previous_page=has_more if backward else after is not None,
    )


@dataclass(frozen=True, slots=True)
class Count:
    """How many rows a list holds: `value` exactly, or (not `exact`) more than `value`, the count limit."""

    value: int
    exact: bool = True


async def count_rows(session: Executor, statement: Select, parameters: dict[str, Any] | None = None,
                     limit: int | None = None) -> Count:
    """The rows of `statement`, counted up to `limit` and no further: the count stops where its budget does."""
    counted = statement.order_by(None)
    if limit is not None:
        counted = counted.limit(limit + 1)
    total = int(await session.scalar(select(func.count()).select_from(counted.subquery()), parameters) or 0)
    if limit is not None and total > limit:
        return Count(limit, exact=False)
    return Count(total)

"""Relay conventions: global ids, the Node interface, and keyset-backed connections."""

import asyncio
import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import orjson
import strawberry

from db.errors import InvalidInput
from db.pagination import DEFAULT_PAGE_SIZE, Count, Page, SortKey

NodeT = TypeVar("NodeT")


def to_global_id(type_name: str, pk: uuid.UUID) -> strawberry.ID:
    # binascii's own encoder, and no call of the ID NewType: a page encodes one id per object it answers.
    return binascii.b2a_base64(f"{type_name}:{pk}".encode(), newline=False).decode()  # type: ignore[return-value]


def from_global_id(global_id: str, expected_type: str | None = None) -> tuple[str, uuid.UUID]:
    try:
        type_name, _, raw = base64.b64decode(global_id, validate=True).decode().partition(":")
        pk = uuid.UUID(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(f"{global_id!r} is not a valid id") from None
    if expected_type is not None and type_name != expected_type:
        raise InvalidInput(f"{global_id!r} is not the id of a {expected_type}")
    return type_name, pk


@strawberry.interface(description="An object with a globally unique id.")
class Node:
    pk: strawberry.Private[uuid.UUID]

    @strawberry.field
    def id(self) -> strawberry.ID:
        # Encoded when asked for: most nested objects of a page never are.
        return to_global_id(self.__strawberry_definition__.name, self.pk)  # type: ignore[attr-defined]


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    # The sort values of the page's first and last items (None for an empty page), encoded when asked for.
    first_values: strawberry.Private[tuple[Any, ...] | None]
    last_values: strawberry.Private[tuple[Any, ...] | None]
    ordering: strawberry.Private[str]
    key: strawberry.Private[SortKey]

    @strawberry.field
    def start_cursor(self) -> str | None:
        return None if self.first_values is None else encode_cursor(self.ordering, self.key, self.first_values)

    @strawberry.field
    def end_cursor(self) -> str | None:
        return None if self.last_values is None else encode_cursor(self.ordering, self.key, self.last_values)


@strawberry.type
class Edge(Generic[NodeT]):
    node: NodeT
    # Encoded when asked for: a dashboard reading a page rarely wants every edge's.
    sort_values: strawberry.Private[tuple[Any, ...]]
    ordering: strawberry.Private[str]
    key: strawberry.Private[SortKey]

    @strawberry.field
    def cursor(self) -> str:
        return encode_cursor(self.ordering, self.key, self.sort_values)


@strawberry.type
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[Count]]]
    # The count, once asked for: totalCount and totalCountIsExact share it. A connection is made per request.
    _counted: strawberry.Private["asyncio.Future[Count] | None"] = None

    @strawberry.field(description=(
        "How many items the whole list holds, across every page. Exact when `totalCountIsExact` is true, "
        "which it always is for a list without a filter, or filtered only by status, verdict or owner (those "
        "are read from figures kept as the data changes); a list with another filter is counted up to the "
        "server's count limit, and when more match this is that limit and `totalCountIsExact` is false."
    ))
    async def total_count(self) -> int:
        return (await self._counting()).value

    @strawberry.field(description="False when more items match than `totalCount` says (it is then the count limit).")
    async def total_count_is_exact(self) -> bool:
        return (await self._counting()).exact

    async def _counting(self) -> Count:
        # Counted only when asked for: most page requests never need it.
        if self._counted is not None:
            return await self._counted
        counted = self._counted = asyncio.get_running_loop().create_future()
        try:
            counted.set_result(await self._count())
        except Exception as error:
            counted.set_exception(error)
            counted.exception()  # retrieved: the error goes to the caller, not to the loop's log
            raise
        except BaseException:
            counted.cancel()
            raise
        return counted.result()


def page_size(first: int | None, last: int | None, maximum: int) -> tuple[int | None, int | None]:
    """Check first/last against the maximum; with neither, the first page of the default size."""
    if first is not None and last is not None:
        raise InvalidInput("pass either first or last, not both")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= maximum:
            raise InvalidInput(f"{name} must be between 0 and {maximum}")
    if first is None and last is None:
        first = min(DEFAULT_PAGE_SIZE, maximum)
    return first, last


def encode_cursor(ordering: str, key: SortKey, values: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ordering, key.encode(values)])).decode()


def decode_cursor(cursor: str | None, ordering: str, key: SortKey) -> tuple[Any, ...] | None:
    if cursor is None:
        return None
    try:
        tag, raw = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput("the cursor is malformed") from None
    if tag != ordering:
        raise InvalidInput("the cursor belongs to another list or ordering")
    return key.decode(raw)


def connection_from_page(
    page: Page[Any],
    nodes: list[NodeT],
    ordering: str,
    key: SortKey,
    count: Callable[[], Awaitable[Count]],
) -> Connection[NodeT]:
    edges = [
        Edge(node=node, sort_values=values, ordering=ordering, key=key)
        for values, node in zip(page.keys, nodes, strict=True)
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            first_values=page.keys[0] if edges else None,
            last_values=page.keys[-1] if edges else None,
            ordering=ordering,
            key=key,
        ),
        _count=count,
    )

"""`node` and `nodes`: any object by its global id, through the same scoped loaders."""

import asyncio

import strawberry

from db.errors import InvalidInput
from graph.access.permissions import IsAuthenticated
from graph.context import Info
from graph.relay import Node, from_global_id

MAX_NODES = 100


async def _load(info: Info, global_id: str) -> Node | None:
    type_name, pk = from_global_id(global_id)
    loader = info.context.loaders.by_type(type_name)
    if loader is None:
        return None
    return await loader.load(pk)  # type: ignore[attr-defined, no-any-return]


@strawberry.type
class NodeQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await _load(info, id)

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise InvalidInput(f"ask for at most {MAX_NODES} ids at once")
        # Gathered, so the loaders batch every id of a type into one query.
        return list(await asyncio.gather(*(_load(info, global_id) for global_id in ids)))

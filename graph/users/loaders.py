import uuid
from collections.abc import Sequence

from sqlalchemy import select

from db import models
from db.access import user_scope
from graph.batching import BatchLoader, one_per_key
from graph.users.types import USER_COLUMNS, User


class UserByIdLoader(BatchLoader[uuid.UUID, User | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[User | None]:
        rows = await self.fetch(
            select(*USER_COLUMNS).where(
                models.User.id.in_(keys), user_scope(self.viewer, models.User.id)
            )
        )
        return one_per_key(keys, {row.id: User.from_row(row) for row in rows})

import strawberry
from sqlalchemy import select

from db import models
from db.access import user_scope
from db.pagination import Count, SortKey, count_rows, keyset_page
from graph.access.permissions import IsAdmin, IsAuthenticated
from graph.context import Info
from graph.relay import Connection, connection_from_page, decode_cursor, page_size
from graph.users.types import USER_COLUMNS, User

USER_SORT_KEY = SortKey(columns=(models.User.created_at, models.User.id))


@strawberry.type
class UserQueries:
    @strawberry.field(permission_classes=[IsAuthenticated], description="The signed-in user.")
    async def me(self, info: Info) -> User | None:
        viewer = info.context.require_viewer()
        assert viewer.user_id is not None
        return await info.context.loaders.user_by_id.load(viewer.user_id)

    @strawberry.field(permission_classes=[IsAdmin], description="Every account, oldest first (ADMIN).")
    async def users(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[User]:
        context = info.context
        first, _ = page_size(first, None, context.settings.max_page_size)
        # Scoped like every other read, so the rule holds if the permission ever widens.
        statement = select(*USER_COLUMNS).where(user_scope(context.require_viewer(), models.User.id))
        page = await keyset_page(
            context.database.rows, statement, USER_SORT_KEY, first=first,
            after=decode_cursor(after, "users", USER_SORT_KEY),
        )

        async def count() -> Count:
            async with context.database.read() as connection:
                return await count_rows(connection, statement)

        users = [User.from_row(row) for row in page.rows]
        return connection_from_page(page, users, "users", USER_SORT_KEY, count)

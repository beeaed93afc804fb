from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self
import uuid

import strawberry
from sqlalchemy import Row

from db import models
from graph.context import Info
from graph.enums import Role
from graph.relay import Connection, Node, to_global_id

if TYPE_CHECKING:
    from graph.tasks.types import Task, TaskFilter, TaskOrder

USER_COLUMNS = (
    models.User.id,
    models.User.email,
    models.User.role,
    models.User.is_active,
    models.User.created_at,
    models.User.updated_at,
)


@strawberry.type
class User(Node):
    id: strawberry.ID
    email: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Self:
        return cls(
            id=to_global_id("User", row.id),
            pk=row.id,
            email=row.email,
            role=row.role,
            is_active=row.is_active,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="This user's tasks, newest first unless ordered otherwise.")
    async def tasks(
        self,
        info: Info,
        filter: Annotated["TaskFilter", strawberry.lazy("graph.tasks.types")] | None = None,
        order_by: Annotated["TaskOrder", strawberry.lazy("graph.tasks.types")] | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Annotated["Task", strawberry.lazy("graph.tasks.types")]]:
        from graph.tasks.queries import task_connection

        return await task_connection(
            info, filter, order_by, first=first, after=after, last=last, before=before, owner_id=self.pk
        )


@strawberry.type
class AuthPayload:
    token: str
    expires_at: datetime
    user: User

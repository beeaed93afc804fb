import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Self

import strawberry
from sqlalchemy import Row

from db import models
from graph.context import Info
from graph.engine.rows import RowShape
from graph.enums import Role
from graph.relay import Connection, Node
from graph.tasks.queries import task_connection

if TYPE_CHECKING:
    from graph.tasks.types import Task, TaskFilter, TaskOrder


@strawberry.type
class User(Node):
    email: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row, names: Sequence[str] | None = None) -> Self:
        return USER_COLUMNS.build(cls, row, names)

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
        return await task_connection(
            info, filter, order_by, first=first, after=after, last=last, before=before, owner_id=self.pk
        )


USER_COLUMNS = RowShape.of(
    User, models.User,
    always=("pk",),
    needs={
        "id": (),
        "tasks": (),
    },
    pk=models.User.id,
)


@strawberry.type
class AuthPayload:
    token: str
    expires_at: datetime
    user: User


@strawberry.type(description=(
    "Signs in one Server-Sent Events stream from its URL: `GET /graphql?query=...&ticket=<ticket>` with "
    "`Accept: text/event-stream`, as the browser's own EventSource sends it. Single use; it expires at "
    "`expiresAt`, and with the session that minted it (a password change, a deactivation or a role change)."))
class StreamTicket:
    ticket: str
    expires_at: datetime


@strawberry.type(description=(
    "Lets one email register (`register(email, password, invitation: token)`) with the role it grants, until "
    "`expiresAt`; it registers one account, as an email has one."))
class Invitation:
    token: str
    email: str
    role: Role
    expires_at: datetime

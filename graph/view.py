"""Strawberry's ASGI view, with our context, fast JSON, and authentication from the bearer token."""

from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import ExecutionResult

from db.access import Viewer
from db.engine import Database
from db.enums import Role
from db.errors import Unauthenticated
from db.settings import Settings
from db.users import active_user
from graph.context import Context
from graph.loaders import Loaders
from graph.throttle import LoginThrottle
from graph.tokens import bearer_token, read_token

# Sees nothing: every scoped query filters on an owner that matches no row.
ANONYMOUS = Viewer(user_id=None, role=Role.USER)


async def viewer_from_token(token: str | None, database: Database, settings: Settings) -> Viewer | None:
    """The viewer a token names, or None without a token; a bad token raises Unauthenticated."""
    if token is None:
        return None
    user_id = read_token(token, settings)
    async with database.sessions() as session:
        user = await active_user(session, user_id)
    if user is None:
        raise Unauthenticated("the token's user no longer exists or is inactive")
    return Viewer(user_id=user.id, role=user.role)


class AuditGraphView(GraphQL):  # type: ignore[type-arg]
    def __init__(self, *, settings: Settings, database: Database, throttle: LoginThrottle,
                 broker: Any, **options: Any) -> None:
        super().__init__(**options)
        self.settings = settings
        self.database = database
        self.throttle = throttle
        self.broker = broker

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    async def execute_operation(self, request: Any, request_adapter: Any, request_data: Any,
                                context: Context, root_value: Any, sub_response: Any) -> Any:
        if context.auth_error is not None:
            # A token was presented and refused: answer nothing at all rather
            # than treat the caller as anonymous.
            error = GraphQLError(context.auth_error, extensions={"code": "UNAUTHENTICATED"})
            return ExecutionResult(data=None, errors=[error])
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        viewer, auth_error = None, None
        if isinstance(request, Request):
            try:
                token = bearer_token(request.headers.get("authorization"))
                viewer = await viewer_from_token(token, self.database, self.settings)
            except Unauthenticated as error:
                auth_error = error.message
        return self.make_context(request, response, viewer, auth_error)

    def make_context(self, request: Any, response: Any, viewer: Viewer | None, auth_error: str | None) -> Context:
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            database=self.database,
            throttle=self.throttle,
            broker=self.broker,
            loaders=Loaders(self.database, viewer or ANONYMOUS),
            viewer=viewer,
            auth_error=auth_error,
        )

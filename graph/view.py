"""Strawberry's ASGI view, with our context, fast JSON, and authentication from the bearer token."""

from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from db.access import Viewer
from db.engine import Database
from db.enums import Role
from db.errors import PayloadTooLarge, Unauthenticated
from db.settings import Settings
from db.users import active_role
from graph.context import Context
from graph.loaders import Loaders
from graph.multipart import check_csrf_header, is_multipart, limit_body, payload_too_large
from graph.throttle import AccountThrottle
from graph.tokens import bearer_token, read_token

# Sees nothing: every scoped query filters on an owner that matches no row.
ANONYMOUS = Viewer(user_id=None, role=Role.USER)


async def viewer_from_token(token: str | None, database: Database, settings: Settings) -> Viewer | None:
    """The viewer a token names, or None without a token; a bad token raises Unauthenticated."""
    if token is None:
        return None
    user_id = read_token(token, settings)
    async with database.read() as connection:
        role = await active_role(connection, user_id)
    if role is None:
        raise Unauthenticated("the token's user no longer exists or is inactive")
    return Viewer(user_id=user_id, role=role)


def connection_token(params: dict[str, Any] | None, websocket: Any) -> str | None:
    """The token of a connection_init payload ({"authorization": "Bearer ..."} or {"token": ...}),
    else of the handshake's Authorization header (clients that are not browsers can send one)."""
    params = params or {}
    authorization = params.get("authorization") or params.get("Authorization")
    if isinstance(authorization, str):
        return bearer_token(authorization)
    token = params.get("token")
    if isinstance(token, str) and token.strip():
        return token.strip()
    if authorization is not None or token is not None:
        raise Unauthenticated("pass the token as a string")
    return bearer_token(getattr(websocket, "headers", {}).get("authorization"))


class AuditGraphView(GraphQL):  # type: ignore[type-arg]
    def __init__(self, *, settings: Settings, database: Database, throttle: AccountThrottle,
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

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if not (isinstance(request, Request) and is_multipart(request)):
            return await super().run(request, context, root_value)
        check_csrf_header(request)
        try:
            request = limit_body(request, self.settings.max_upload_bytes)
            return await super().run(request, context, root_value)
        except PayloadTooLarge as error:
            return payload_too_large(error)
        finally:
            # Closes the spooled upload files as soon as the response is ready.
            await request.close()

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

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any, context: Context,
                             root_value: Any, request_data: Any) -> ExecutionResult:
        result = await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                              request_data)
        # An error that says when to retry says it the HTTP way too, for clients and proxies that read only that.
        waits = [error.extensions["retryAfter"] for error in result.errors or []
                 if error.extensions and "retryAfter" in error.extensions]
        if waits:
            sub_response.headers["Retry-After"] = str(max(waits))
        return result

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        viewer, auth_error = None, None
        if isinstance(request, Request):
            try:
                token = bearer_token(request.headers.get("authorization"))
                viewer = await viewer_from_token(token, self.database, self.settings)
            except Unauthenticated as error:
                auth_error = error.message
        return self.make_context(request, response, viewer, auth_error)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Authenticate a WebSocket from its connection_init payload; refuse it without a good token.

        The protocol then closes the socket (graphql-transport-ws: 4403;
        graphql-ws: connection_error, then close 1011) instead of leaving a
        client waiting on a subscription that could never be answered.
        """
        try:
            viewer = await viewer_from_token(
                connection_token(context.connection_params, context.request), self.database, self.settings
            )
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message, "code": "UNAUTHENTICATED"}) from None
        if viewer is None:
            raise ConnectionRejectionError({"message": "sign in to subscribe", "code": "UNAUTHENTICATED"})
        context.viewer = viewer
        context.loaders = Loaders(self.database, viewer)
        return None

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

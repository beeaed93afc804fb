"""Strawberry's ASGI view, with our context, fast JSON, authentication from the bearer token,
and GraphQL over HTTP to the letter (graph/http/graphql_http.py)."""

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Mapping
from contextvars import ContextVar
from datetime import datetime
from json import JSONDecodeError
from time import monotonic
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol, process_result
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived, WebSocketDisconnected
from strawberry.http.streaming import HTTPStreamTransport, SSETransport
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from db.access import Viewer
from db.availability import WAITED_TOO_LONG, as_unavailable
from db.deadline import request_deadline
from db.engine import Database
from db.enums import Role
from db.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    DomainError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimedOut,
    Unauthenticated,
)
from db.replica import READ_AFTER_HEADER, read_after
from db.settings import Settings
from db.storage import STORAGE_FULL
from db.stream_tickets import spend_ticket
from db.users import SESSIONS_ENDED, Access, active_access
from graph.access.throttle import AccountThrottle
from graph.access.tokens import VerifiedTokens, bearer_token, read_token
from graph.access.trusted_documents import PersistedQueries
from graph.access.viewer_roles import RoleCache
from graph.context import Context
from graph.engine.prepared import PreparedOperations
from graph.http import unavailable
from graph.http.graphiql.page import GRAPHIQL_HEADERS, graphiql_page
from graph.http.graphql_http import (
    CHALLENGE,
    REQUEST_ERROR_STATUS,
    Refusal,
    is_request_error,
    refusal_parts,
    request_error_status,
    storage_full,
)
from graph.http.http_cache import cache_headers
from graph.http.multipart import BODY_OVERHEAD_BYTES, check_csrf_header, is_multipart, limit_body, operations_with_files
from graph.http.negotiation import (
    APPLICATION_JSON,
    GRAPHQL_RESPONSE_JSON,
    accepts_stream,
    json_media_type,
    prefers_stream,
)
from graph.http.sse import NegotiatedSSETransport, resumable_stream
from graph.loaders import Loaders
from graph.observability import metrics
from graph.observability.facts import OK, current, request_reference

logger = logging.getLogger("auditgraph.prepared")

# Sees nothing: every scoped query filters on an owner that matches no row.
ANONYMOUS = Viewer(user_id=None, role=Role.USER)
HOW_TO_SUBSCRIBE = (
    "Subscriptions are not served over plain HTTP requests: open a WebSocket to this URL "
    "(graphql-transport-ws or graphql-ws), or send the request with 'Accept: text/event-stream' "
    "for Server-Sent Events."
)
MUTATIONS_ARE_POSTED = "mutations are sent with POST, not GET"
SIGN_IN_TO_STREAM = (
    "sign in to subscribe: send 'Authorization: Bearer <token>', or, from a browser's EventSource, "
    "a stream ticket from createStreamTicket as ?ticket=<ticket>"
)
TICKETS_SIGN_IN_STREAMS = "a stream ticket signs in a subscription over Server-Sent Events, nothing else"
# The URL parameter a stream ticket travels in (db/stream_tickets.py).
TICKET_PARAMETER = "ticket"
WHICH_OPERATION = (
    "Can't tell which operation to run: send a document with one operation, "
    "or name the one to run in operationName."
)


class Session(NamedTuple):
    """Who a token (or a stream ticket) signs in, until when, and the token generation it carries."""

    viewer: Viewer
    expires_at: datetime
    generation: int
    by_ticket: bool = False


async def authenticate(token: str | None, database: Database, settings: Settings,
                       roles: RoleCache | None = None, tokens: VerifiedTokens | None = None) -> Session | None:
    """The session a token opens, or None without a token; a bad token raises."""
    if token is None:
        return None
    claims = read_token(token, settings) if tokens is None else tokens.read(token)

    def read_access() -> Awaitable[Access | None]:
        return active_access(database, claims.user_id)

    try:
        access = await (read_access() if roles is None else roles.role(claims.user_id, read_access))
    except WAITED_TOO_LONG as error:
        raise as_unavailable(error) or DatabaseBusy() from error
    if access is None:
        raise Unauthenticated("the token's user no longer exists or is inactive")
    if access.generation != claims.generation:
        raise Unauthenticated(SESSIONS_ENDED)
    return Session(Viewer(user_id=claims.user_id, role=access.role), claims.expires_at, claims.generation)


async def authenticate_ticket(ticket: str, accept: str | None, database: Database) -> Session:
    """The session a stream ticket opens, spending the ticket; a ticket that opens none raises."""
    if not accepts_stream(accept):
        raise Unauthenticated(TICKETS_SIGN_IN_STREAMS)
    try:
        async with database.transaction() as session:
            spent = await spend_ticket(session, ticket)
        access = None if spent is None else await active_access(database, spent.user_id)
    except WAITED_TOO_LONG as error:
        raise as_unavailable(error) or DatabaseBusy() from error
    if spent is None:
        raise Unauthenticated("the stream ticket is unknown, expired or used already: mint another with "
                              "createStreamTicket")
    if access is None:
        raise Unauthenticated("the ticket's user no longer exists or is inactive")
    if access.generation != spent.generation:
        raise Unauthenticated(SESSIONS_ENDED)
    return Session(Viewer(user_id=spent.user_id, role=access.role), spent.session_expires_at, spent.generation,
                   by_ticket=True)


async def viewer_from_token(token: str | None, database: Database, settings: Settings) -> Viewer | None:
    """The viewer a token names, or None without a token; a bad token raises Unauthenticated."""
    session = await authenticate(token, database, settings)
    return None if session is None else session.viewer


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


MESSAGE_TOO_BIG = 1009


class TextFrameWebSocketAdapter(ASGIWebSocketAdapter):
    """Sends every protocol message as a text frame.

    Both GraphQL WebSocket protocols are JSON in text frames: browsers hand a
    binary frame to the client as a Blob, and graphql-ws and gql refuse it.
    """

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        """Strawberry's, with each message bounded like an HTTP body (MAX_REQUEST_BYTES): a larger one closes the
        socket with 1009 (message too big), as the server itself does when it is configured with the bound."""
        limit = self.view.settings.max_request_bytes  # type: ignore[attr-defined]
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
                    await self.ws.close(code=MESSAGE_TOO_BIG, reason=f"a message may hold at most {limit} bytes")
                    return
                try:
                    yield self.view.decode_json(text)
                except JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
        except KeyError as error:
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        # A connection refused for a passing reason asks the client to come back (on_ws_connect).
        code, reason = getattr(self.ws.state, "close_with", (code, reason))
        await self.ws.close(code=code, reason=reason)


def _declared_json(request: Request, settings: Settings) -> bool:
    """A POST of JSON of a declared length within the limit: its body may be read whole before it is parsed."""
    headers = request.headers
    declared = headers.get("content-length", "")
    return (request.scope["method"] == "POST" and declared.isdigit() and int(declared) <= settings.max_request_bytes
            and headers.get("content-type", "").split(";", 1)[0].strip().lower() == APPLICATION_JSON)


def _may_be_prepared(request: Request) -> bool:
    """A JSON POST the prepared path can answer by its shape: no query string, and an Accept that does not
    prefer a stream."""
    return not request.scope.get("query_string") and not prefers_stream(request.headers.get("accept", ""))


def _replay(body: bytes) -> Receive:
    """A receive that hands over `body`, read already, as the whole request."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class ParsedBody:
    """A JSON request body, parsed at most once though both the prepared path and the full path read it.

    A pipeline's analysis is megabytes of JSON: each parse held the event loop for tens of milliseconds and
    made a hundred thousand objects for the garbage collector to go through.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._value: Any = _UNPARSED

    def value(self) -> Any:
        """The body's JSON; raises orjson.JSONDecodeError if it is not JSON."""
        if self._value is _UNPARSED:
            self._value = orjson.loads(self.body)
        return self._value


_UNPARSED = object()
# The body the prepared path parsed, for the full path that answers the same request.
_PARSED_BODY: ContextVar[ParsedBody | None] = ContextVar("parsed_body", default=None)


def answer_protocol(method: str, accept: str | None, operation: OperationType | None) -> GraphQLRequestProtocol:
    """How a request whose client can read a stream is answered: a subscription, or anything the client
    prefers as a stream (graph/http/negotiation.py), over SSE; a query or mutation otherwise as one JSON answer."""
    if operation is OperationType.MUTATION and method == "GET":
        raise Refusal(405, MUTATIONS_ARE_POSTED, headers={"allow": "POST"})
    streams = prefers_stream(accept)
    return SSETransport.protocol if streams or operation is OperationType.SUBSCRIPTION else "http"


class AuditGraphView(GraphQL[Context, None]):
    websocket_adapter_class = TextFrameWebSocketAdapter  # type: ignore[assignment]
    stream_transport_classes_by_protocol: Mapping[str, type[HTTPStreamTransport]] = MappingProxyType(
        {GRAPHQL_SSE_PROTOCOL: NegotiatedSSETransport})

    def __init__(self, *, settings: Settings, database: Database, throttle: AccountThrottle,
                 broker: Any, persisted_queries: PersistedQueries, stopping: asyncio.Event,
                 **options: Any) -> None:
        super().__init__(**options)
        self.settings = settings
        self.database = database
        self.throttle = throttle
        self.broker = broker
        self.roles = RoleCache(broker, database, settings.viewer_role_cache_seconds)
        self.tokens = VerifiedTokens(settings)
        self.persisted_queries = persisted_queries
        # Set when the process begins to stop (graph/http/shutdown.py): SSE streams end then.
        self.stopping = stopping
        self.prepared: PreparedOperations | None = getattr(self.schema, "prepared", None)
        self.heavy_turns = asyncio.Semaphore(settings.heavy_requests_at_once)
        self.heavy_requests = {state: metrics.HEAVY_REQUESTS.labels(state) for state in ("waiting", "running")}
        self.prepared_outcomes = {answered: metrics.PREPARED_REQUESTS.labels("answered" if answered else "full_path")
                                  for answered in (True, False)}

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_page(), headers=GRAPHIQL_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        request = Request(scope, receive=receive)
        if is_multipart(request):
            # An upload takes as long as its bytes take to arrive: MAX_UPLOAD_BYTES bounds it instead.
            response = await self.respond(scope, request)
        else:
            budget = asyncio.timeout(self.settings.request_timeout_seconds)
            deadline = request_deadline.set(monotonic() + self.settings.request_timeout_seconds)
            try:
                async with budget:
                    response = await self.respond(scope, request)
            except TimeoutError:
                if not budget.expired():
                    raise
                body, status, headers = refusal_parts(unavailable.refusal(RequestTimedOut()),
                                                      request.headers.get("accept"))
                response = Response(self.encode_json(body), status_code=status, headers=headers)
            finally:
                request_deadline.reset(deadline)
        try:
            await response(scope, receive, send)
        finally:
            # uvicorn's per-request objects form reference cycles that hold the scope until the
            # garbage collector runs. Once the response is out, the request's context (its loaders,
            # with every row and object they read) leaves the scope, freed at once by reference
            # counting: left there, it made a collection's work (most of a page's CPU time).
            scope.get("state", {}).pop("graphql_context", None)

    async def respond(self, scope: Scope, request: Request) -> Response:
        """The response to an HTTP request: from a prepared operation's plan, or by the full path; with the
        primary's WAL position when it committed a write and a replica serves queries (db/replica.py)."""
        try:
            request.state.read_after = read_after(request.headers.get(READ_AFTER_HEADER))
        except InvalidInput as error:
            return self.refusal_response(Refusal(400, error.message, code=error.code), request)
        with self.database.noting_writes() as writes:
            response = await self.answer(scope, request)
        if writes is not None and writes.committed:
            try:
                response.headers[READ_AFTER_HEADER] = await self.database.write_position()
            except Exception:  # the write stands: the client reads after the last position it has
                logger.warning("the primary's WAL position could not be read after a write", exc_info=True)
        return response

    async def answer(self, scope: Scope, request: Request) -> Response:
        if not _declared_json(request, self.settings):
            return await self.answer_body(scope, request, None)
        parsed = ParsedBody(await request.body())
        # Whichever path answers reads the body again, and takes the JSON parsed already (parse_json).
        request = Request(scope, receive=_replay(parsed.body))
        if len(parsed.body) <= self.settings.heavy_request_bytes:
            return await self.answer_body(scope, request, parsed)
        # A heavy body's turn comes once it has arrived whole (a slow sender holds no turn). Six analyses
        # sent together parsed, coerced and written on the loop at once, and every other request's step
        # queued behind all of their steps (a reader's p99 of 250 ms): in turns, behind at most one's.
        # The wait counts against the request's time budget.
        with self.heavy_requests["waiting"].track_inprogress():
            await self.heavy_turns.acquire()
        try:
            with self.heavy_requests["running"].track_inprogress():
                return await self.answer_body(scope, request, parsed)
        finally:
            self.heavy_turns.release()

    async def answer_body(self, scope: Scope, request: Request, parsed: ParsedBody | None) -> Response:
        response: Response | None = None
        if self.prepared is not None and parsed is not None and _may_be_prepared(request):
            async with self.database.one_read_connection():
                response = await self.answer_prepared(request, self.prepared, parsed)
            self.prepared_outcomes[response is not None].inc()
        if response is None:
            handed_over = _PARSED_BODY.set(parsed)
            try:
                async with self.database.one_read_connection():
                    response = await self.run(request)
            except HTTPException as refusal:
                response = self.refusal_response(refusal, request)
            finally:
                _PARSED_BODY.reset(handed_over)
        return response

    def refusal_response(self, refusal: HTTPException, request: Request) -> Response:
        body, status, headers = refusal_parts(refusal, request.headers.get("accept"))
        return Response(self.encode_json(body), status_code=status, headers=headers)

    async def answer_prepared(self, request: Request, prepared: PreparedOperations,
                              body: ParsedBody) -> Response | None:
        """The response to a prepared operation (graph/engine/prepared.py), or None: the full path answers it."""
        checked = prepared.request(body.body, body.value)
        if checked is None:
            return None
        try:
            session = await self.authenticate_request(request)
        except (Unauthenticated, DatabaseUnavailable):
            return None
        viewer = None if session is None else session.viewer
        context = self.make_context(request, None, viewer, None)
        context.sign_in(session)
        try:
            with self.database.reads_replica(request.state.read_after):
                data = await prepared.data(checked.prepared, checked.query, checked.variables, context)
        except WAITED_TOO_LONG as error:
            # Running it again on the full path would only wait as long again.
            refused, status, headers = refusal_parts(
                unavailable.refusal(as_unavailable(error) or DatabaseBusy()), request.headers.get("accept"))
            return Response(self.encode_json(refused), status_code=status, headers=headers)
        except Exception:  # the full path runs it again, and decides what the client is told
            logger.debug("a prepared operation fell back to the full path", exc_info=True)
            return None
        facts = current.get()
        if facts is not None:
            # What OperationFacts records of an operation that went well.
            facts.operation_type, facts.operation_name = OperationType.QUERY.value, checked.prepared.operation_name
            facts.viewer_id = None if viewer is None else viewer.user_id
            facts.code = facts.code or OK
        return Response(self.encode_json({"data": data}),
                        media_type=json_media_type(request.headers.get("accept")))

    async def authenticate_request(self, request: Request) -> Session | None:
        """`authenticate` for the bearer token of an HTTP request, or else for the stream ticket in its URL."""
        token = bearer_token(request.headers.get("authorization"))
        ticket = request.query_params.get(TICKET_PARAMETER) if token is None and request.scope["query_string"] \
            else None
        if ticket is not None:
            return await authenticate_ticket(ticket, request.headers.get("accept"), self.database)
        return await authenticate(token, self.database, self.settings, self.roles, self.tokens)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = _PARSED_BODY.get()
        try:
            value = parsed.value() if parsed is not None and parsed.body == data else orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise Refusal(400, f"the request is not valid JSON: {error}") from None
        # A list is a batch, which the parser after this refuses with its own reason.
        if not isinstance(value, dict | list):
            raise Refusal(400, "the request must be a JSON object")
        return value

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        # `variables=null` in a URL means no variables, as a JSON body's null does.
        params = {key: value for key, value in dict(params).items()
                  if not (key in ("variables", "extensions") and value == "null")}
        return super().parse_query_params(params)

    async def parse_http_body(self, request: Any) -> Any:
        try:
            return await super().parse_http_body(request)
        except HTTPException as error:
            if error.reason == "Unsupported content type":
                raise Refusal(415, "send the request as application/json, or as multipart/form-data "
                                   "for uploads (GraphQL multipart request spec)") from None
            raise

    async def parse_multipart(self, request: Any) -> dict[str, Any]:
        try:
            form = await request.get_form_data()
        except StarletteHTTPException as error:
            # Starlette's reason for a body it cannot parse (no boundary, a part without a name...).
            raise Refusal(400, f"the multipart body could not be read: {error.detail}") from None
        except ValueError:
            raise Refusal(400, "the multipart body could not be read") from None
        return operations_with_files(form.form)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A persisted query by hash has no `query` either: it is a GraphQL request, not a browser's visit.
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = json_media_type(request.headers.get("accept"))
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = process_result(result)
        if ((result.data is None and result.errors and all(error.path is None for error in result.errors))
                or unavailable.got_nothing(response) or storage_full(response)):
            # Nothing was executed (or nothing got done): the spec's request error, with no data entry.
            del response["data"]
        if request.method == "GET":
            context: Context = request.state.graphql_context
            context.response.headers.update(cache_headers(response, self.settings.get_cache_max_age_seconds))
        return response

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or APPLICATION_JSON
        response.headers["content-type"] = media_type
        if (media_type == GRAPHQL_RESPONSE_JSON and not sub_response.status_code
                and isinstance(response_data, dict) and is_request_error(response_data)):
            response.status_code = request_error_status(response_data)
            if response.status_code == 401:
                response.headers.update(CHALLENGE)
        if isinstance(response_data, dict) and unavailable.is_unavailable(response_data):
            response.status_code = 503
            response.headers.update(unavailable.RETRY_AFTER)
        return response

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if not isinstance(request, Request):
            try:
                return await super().run(request, context, root_value)
            finally:
                opened: Context | None = getattr(request.state, "graphql_context", None)
                if opened is not None and opened.viewer is not None:
                    self.broker.release_connection(opened.viewer.user_id)
        if not is_multipart(request):
            try:
                limit = self.settings.max_request_bytes
                return await super().run(limit_body(request, limit, f"the limit of {limit} bytes"),
                                         context, root_value)
            except PayloadTooLarge as error:
                raise Refusal(413, error.message, code=error.code) from None
        check_csrf_header(request)
        try:
            limit = self.settings.max_upload_bytes
            request = limit_body(request, limit + BODY_OVERHEAD_BYTES, f"the upload limit of {limit} bytes")
            return await super().run(request, context, root_value)
        except PayloadTooLarge as error:
            raise Refusal(413, error.message, code=error.code) from None
        except OSError as error:
            # Starlette spools each file part to the temporary folder while it parses the body.
            if error.errno not in STORAGE_FULL:
                raise
            raise Refusal(507, "the server has no room to receive this upload now; try again later",
                          code="INSUFFICIENT_STORAGE") from None
        finally:
            # Closes the spooled upload files as soon as the response is ready.
            await request.close()

    async def execute_operation(self, request: Any, request_adapter: Any, request_data: Any,
                                context: Context, root_value: Any, sub_response: Any) -> Any:
        try:
            await self.persisted_queries.resolve(request_data)
        except DomainError as error:
            return self.refuse(request_data, error.message, error.code)
        subscription = False
        if isinstance(request_data, GraphQLRequestData) and request_data.protocol == SSETransport.protocol:
            operation = self.schema.operation_type(request_data.query, request_data.operation_name)  # type: ignore[attr-defined]
            request_data.protocol = answer_protocol(request_adapter.method, request.headers.get("accept"), operation)
            subscription = operation is OperationType.SUBSCRIPTION
        if context.auth_error is not None:
            # A token was presented and refused: answer nothing at all rather
            # than treat the caller as anonymous.
            return self.refuse(request_data, context.auth_error, "UNAUTHENTICATED")
        if subscription and context.viewer is None:
            # Refused before the stream opens: a 200 stream of one error would have an EventSource reconnect forever.
            return self.refuse(request_data, SIGN_IN_TO_STREAM, "UNAUTHENTICATED")
        if context.signed_in_by_ticket and not subscription:
            return self.refuse(request_data, TICKETS_SIGN_IN_STREAMS, "UNAUTHENTICATED")
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    def refuse(self, request_data: Any, message: str, code: str) -> ExecutionResult:
        """A request error, before execution."""
        if getattr(request_data, "protocol", None) == "sse":
            # Refused before the stream opens: an EventSource does not retry a 4xx.
            raise Refusal(REQUEST_ERROR_STATUS.get(code, 400), message, code=code)
        return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code, **request_reference()})])

    async def execute_single(self, request: Any, request_adapter: Any, sub_response: Any, context: Context,
                             root_value: Any, request_data: Any) -> ExecutionResult:
        # GET only reads; subscriptions stream (WebSocket or SSE), never one plain answer.
        method = request_adapter.method
        allowed = {OperationType.QUERY} if method == "GET" else {OperationType.QUERY, OperationType.MUTATION}
        try:
            result = await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            reason = WHICH_OPERATION if error.operation_name is None else error.as_http_error_reason()
            raise Refusal(400, reason) from None
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise Refusal(400, HOW_TO_SUBSCRIBE) from None
            raise Refusal(405, MUTATIONS_ARE_POSTED, headers={"allow": "POST"}) from None
        except MissingQueryError:
            raise Refusal(400, "no GraphQL query found in the request") from None
        # An error that says when to retry says it the HTTP way too, for clients and proxies that read only that.
        waits = [error.extensions["retryAfter"] for error in result.errors or []
                 if error.extensions and "retryAfter" in error.extensions]
        if waits:
            sub_response.headers["Retry-After"] = str(max(waits))
        return result

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        viewer, auth_error = None, None
        if not isinstance(request, Request):
            # A WebSocket authenticates in on_ws_connect; run() reads the context back when it closes.
            request.state.graphql_context = self.make_context(request, response, viewer, auth_error)
            return request.state.graphql_context
        session = None
        try:
            session = await self.authenticate_request(request)
        except Unauthenticated as error:
            auth_error = error.message
        except DatabaseUnavailable as error:
            raise unavailable.refusal(error) from None
        else:
            viewer = None if session is None else session.viewer
        context = self.make_context(request, response, viewer, auth_error)
        context.sign_in(session)
        context.last_event_id = request.headers.get("last-event-id")
        # Its queries read the replica, if there is one (graph/engine/replica_reads.py).
        context.replica_after, context.may_read_replica = getattr(request.state, "read_after", None), True
        # Read back by an SSE stream, which is handed the request but not the context.
        request.state.graphql_context = context
        return context

    def _stream_result(self, request: Any, result: Any, transport: Any) -> Any:
        if not isinstance(transport, SSETransport):
            return super()._stream_result(request, result, transport)
        context: Context = request.state.graphql_context
        return resumable_stream(self, request, result, transport, context.take_stream_position, self.stopping)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Authenticate a WebSocket from its connection_init payload; refuse it without a good token.

        The protocol then closes the socket (graphql-transport-ws: 4403;
        graphql-ws: connection_error, then close 1011) instead of leaving a
        client waiting on a subscription that could never be answered. While
        the database is unreachable the close code is 1013, try again later.
        """
        try:
            session = await authenticate(
                connection_token(context.connection_params, context.request), self.database, self.settings,
                self.roles, self.tokens,
            )
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message, "code": "UNAUTHENTICATED"}) from None
        except DatabaseUnavailable as error:
            context.request.state.close_with = (unavailable.TRY_AGAIN_LATER, "the database is unreachable")
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        if session is None:
            raise ConnectionRejectionError({"message": "sign in to subscribe", "code": "UNAUTHENTICATED"})
        viewer = session.viewer
        context.sign_in(session)
        limit = self.settings.max_connections_per_user
        if not self.broker.admit_connection(viewer.user_id, limit):
            raise ConnectionRejectionError({"message": f"at most {limit} live connections per user",
                                            "code": "RATE_LIMITED"})
        # Released when the socket closes (run); the viewer marks the connection as admitted.
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

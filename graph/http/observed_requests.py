"""Every request gets an id, one log line and its metrics: a pure ASGI middleware around the whole app.

The id is the client's `X-Request-ID` when it sent a usable one, else a new
one; it is returned in that header on every response (and on a WebSocket's
handshake), carried by every log record made while the request runs, and put
in every error's `extensions.requestId`, so what a client quotes leads to the
log line. The work done per request is a few attribute writes while it runs
and one log record and four metric updates when it ends.
"""

import asyncio
import logging
from time import perf_counter
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.errors import INTERNAL_MESSAGE
from graph.http.graphql_http import REFUSAL_CODES
from graph.http.unavailable import RETRY_AFTER_SECONDS
from graph.observability import metrics
from graph.observability.facts import OK, RequestFacts, current, request_id_from

logger = logging.getLogger("auditgraph.requests")
# Tracebacks go where the GraphQL layer's unexpected errors go (graph/errors.py).
errors_logger = logging.getLogger("auditgraph.errors")

REQUEST_ID_HEADER = b"x-request-id"
NOSNIFF = (b"x-content-type-options", b"nosniff")
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
UNAVAILABLE = "SERVICE_UNAVAILABLE"
BUSY_MESSAGE = "the server could not finish this request in time; retry shortly"
# A request's line is logged at the level its outcome deserves: what an operator acts on is a warning
# (someone is being refused: throttles, limits, CSRF, bad tokens) or an error (the server failed).
LEVELS = {
    INTERNAL_SERVER_ERROR: logging.ERROR,
    "SERVICE_UNAVAILABLE": logging.ERROR,
    "INSUFFICIENT_STORAGE": logging.ERROR,
    "RATE_LIMITED": logging.WARNING,
    "PAYLOAD_TOO_LARGE": logging.WARNING,
    "QUERY_TOO_COMPLEX": logging.WARNING,
    "FORBIDDEN": logging.WARNING,
    "UNAUTHENTICATED": logging.WARNING,
}
# Probes, scrapes and static files would drown the requests that matter: their successes are debug lines.
QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/graphiql/")


def _status_code(status: int) -> str:
    if status < 400:
        return OK
    return REFUSAL_CODES.get(status) or (INTERNAL_SERVER_ERROR if status >= 500 else "BAD_USER_INPUT")


def _route(path: str) -> str:
    """The operation label of a request that is not GraphQL: a few fixed names, never the path itself."""
    if path.startswith("/files/"):
        return "download"
    if path.startswith("/graphiql/"):
        return "graphiql"
    if path in ("/healthz", "/readyz", "/metrics"):
        return path[1:]
    return "other"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class ObservedRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The metrics of each set of labels, looked up once: prometheus-client validates the labels and
        # takes a lock on every lookup. As many entries as label sets, which the metrics bound already.
        self._labeled: dict[tuple[str, str, str, str], tuple[Any, Any, Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        started = perf_counter()
        facts = RequestFacts(request_id=request_id_from(_header(scope, REQUEST_ID_HEADER)))
        id_header = (REQUEST_ID_HEADER, facts.request_id.encode())
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            kind = message["type"]
            if kind == "http.response.start":
                status, responded = message["status"], True
                headers = list(message.get("headers", ()))
                if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                    # No response is ever to be read as another type than it says (a JSON error as HTML...).
                    headers.append(NOSNIFF)
                message = {**message, "headers": [*headers, id_header]}
            elif kind == "websocket.accept":
                status, responded = 101, True
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            elif kind == "websocket.close" and not responded:
                status, responded = 403, True
            await send(message)

        token = current.set(facts)
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if responded or scope["type"] != "http" or _stopping(scope) or task is None:
                raise
            # Not a shutdown: a timeout meant for something inside (a pool's wait) that reached the task itself.
            while task.uncancel():
                pass
            facts.code = UNAVAILABLE
            status = 503
            await _error(send_with_id, facts.request_id, 503, UNAVAILABLE, BUSY_MESSAGE,
                         [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
        except Exception:
            facts.code = INTERNAL_SERVER_ERROR
            errors_logger.exception("unhandled error", extra={"request_id": facts.request_id})
            if responded or scope["type"] != "http":
                raise
            status = 500
            await _error(send_with_id, facts.request_id, 500, INTERNAL_SERVER_ERROR, INTERNAL_MESSAGE)
        finally:
            current.reset(token)
            self.finish(scope, facts, status, perf_counter() - started)

    def finish(self, scope: Scope, facts: RequestFacts, status: int, seconds: float) -> None:
        path = scope["path"]
        code = facts.code if facts.code is not None and facts.code != OK else _status_code(status)
        kind = facts.operation_type or "none"
        if scope["type"] == "websocket":
            transport = "websocket"
        else:
            transport = "sse" if kind == "subscription" else "http"
        operation = metrics.operation_label(facts.operation_name) if facts.operation_type else _route(path)
        labels = (transport, operation, kind, code)
        labeled = self._labeled.get(labels)
        if labeled is None:
            labeled = self._labeled[labels] = (
                metrics.REQUESTS.labels(*labels), metrics.REQUEST_SECONDS.labels(transport, operation, kind),
                metrics.REQUEST_SQL_STATEMENTS.labels(kind), metrics.REQUEST_SQL_SECONDS.labels(kind))
        requests, request_seconds, sql_statements, sql_seconds = labeled
        requests.inc()
        request_seconds.observe(seconds)
        sql_statements.observe(facts.sql_statements)
        sql_seconds.observe(facts.sql_seconds)
        if code != OK and (_header(scope, b"content-type") or b"").startswith(b"multipart/"):
            metrics.UPLOAD_REFUSALS.labels(code).inc()

        level = LEVELS.get(code, logging.INFO)
        if code == OK and path.startswith(QUIET_PATHS):
            level = logging.DEBUG
        if not logger.isEnabledFor(level):
            return
        method = scope.get("method", "WEBSOCKET")
        client = scope.get("client")
        logger.log(
            level, "%s %s %s %s -> %s (%s) in %.1f ms, %d SQL",
            # The path escaped: decoded from the URL, it may hold a line break that would forge a log line.
            method, _printable(path), kind, facts.operation_name or "-", code, status, seconds * 1000,
            facts.sql_statements,
            extra={
                "request_id": facts.request_id,
                "method": method,
                "path": path,
                "status": status,
                "transport": transport,
                "operation_name": facts.operation_name,
                "operation_type": facts.operation_type,
                "viewer_id": None if facts.viewer_id is None else str(facts.viewer_id),
                "duration_ms": round(seconds * 1000, 2),
                "sql_statements": facts.sql_statements,
                "sql_ms": round(facts.sql_seconds * 1000, 2),
                "code": code,
                "client": client[0] if client else None,
            },
        )


def _printable(text: str) -> str:
    """`text` with every control character (a line break above all) written as an escape."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _stopping(scope: Scope) -> bool:
    """Whether the process is shutting down (graph/http/shutdown.py): a cancellation then is the server's own."""
    app = scope.get("app")
    view = getattr(getattr(app, "state", None), "graphql", None)
    stopping = getattr(view, "stopping", None)
    return stopping is None or stopping.is_set()


async def _error(send: Send, request_id: str, status: int, code: str, message: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code, "requestId": request_id}}]})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or ())]})
    await send({"type": "http.response.body", "body": body})

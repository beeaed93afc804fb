"""Learning that the process is asked to stop, so live streams end at once instead of holding the shutdown open.

On SIGTERM (or Ctrl-C) uvicorn stops accepting, closes every WebSocket with
1012 (service restart: graphql-ws clients reconnect, to another worker), and
then waits for HTTP responses in flight, up to SHUTDOWN_TIMEOUT_SECONDS (`serve`
passes it as uvicorn's timeout_graceful_shutdown). A Server-Sent Events stream
is such a response and would last until that bound; so each stream watches
`stopping` and ends as soon as it is set, without a `complete` event, which is
what makes an EventSource or a graphql-sse client reconnect (with
Last-Event-ID: it misses nothing).

uvicorn tells an application nothing before its lifespan shutdown, which comes
after that wait; the signal itself is the one place to learn it. The handler
installed here sets `stopping` and hands the signal on to whoever handled it
before (uvicorn), and the lifespan puts that handler back when it ends.

At the bound uvicorn cancels the requests still running, and would answer each
with a plain-text 500, even one whose write had committed. FinishRequests
stands between: each HTTP request runs in a task of its own that the
cancellation does not reach. A request whose transaction has begun to commit
is let finish and answered as usual, however long past the bound; any other
is cancelled (its transaction rolls back) and answered SERVICE_UNAVAILABLE
(503, Retry-After) as JSON, so a client knows to retry and that nothing was
done. The lifespan waits, up to the bound once more, for those answers before
it closes the database.
"""

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any

import orjson
from sqlalchemy import event
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.engine import Database
from graph.http.graphql_http import error_body, json_media_type
from graph.http.unavailable import CODE, RETRY_AFTER_SECONDS

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Shutdown:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()

    @contextmanager
    def on_stop_signals(self) -> Iterator[None]:
        # Python runs signal handlers in the main thread only; elsewhere (a server in a thread) there is none to chain.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {number: signal.getsignal(number) for number in STOP_SIGNALS}

        def handle(number: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.stopping.set)
            handed_on = previous[number]
            if callable(handed_on):
                handed_on(number, frame)
            elif handed_on == signal.SIG_DFL:
                signal.signal(number, signal.SIG_DFL)
                signal.raise_signal(number)

        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, handle)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


@dataclass(slots=True)
class _Request:
    committing: bool = False
    responded: bool = False


_current: ContextVar[_Request | None] = ContextVar("auditgraph_shutdown_request", default=None)
CUT_MESSAGE = "the server is shutting down and stopped this request before it changed anything; retry"


def _commit_begins(_connection: Any) -> None:
    request = _current.get()
    if request is not None:
        request.committing = True


def watch_commits(database: Database) -> None:
    """Tell FinishRequests when a request's transaction begins to commit (the event runs in the request's context)."""
    for engine in database.engines:
        if not event.contains(engine.sync_engine, "commit", _commit_begins):
            event.listen(engine.sync_engine, "commit", _commit_begins)


class InFlight:
    """The HTTP requests running now, for the lifespan to let finish before it closes the database."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def finish(self, seconds: float) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=seconds)


class FinishRequests:
    def __init__(self, app: ASGIApp, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = _Request()

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.responded = True
            await send(message)

        token = _current.set(request)
        try:
            # The task copies the context, request included; the commit event marks it from there.
            running = asyncio.ensure_future(self.app(scope, receive, tracked_send))
        finally:
            _current.reset(token)
        this = asyncio.current_task()
        assert this is not None
        self.in_flight.tasks.add(this)
        try:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                this.uncancel()
            if request.committing:
                return await asyncio.shield(running)
            running.cancel()
            with suppress(asyncio.CancelledError):
                await running
            if not request.responded:
                await _cut(scope, send)
        finally:
            self.in_flight.tasks.discard(this)


async def _cut(scope: Scope, send: Send) -> None:
    accept = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"accept"), None)
    body = orjson.dumps(error_body(CUT_MESSAGE, CODE))
    await send({
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", json_media_type(accept).encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            (b"connection", b"close"),
        ],
    })
    await send({"type": "http.response.body", "body": body})

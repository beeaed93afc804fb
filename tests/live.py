"""A real uvicorn serving the app on a local port, and a GraphQL WebSocket client for both protocols."""

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from db.settings import Settings
from graph.app import create_app
from tests.cli import free_port

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = (TRANSPORT_WS, LEGACY_WS)
TIMEOUT = 10.0
T = TypeVar("T")


@dataclass
class LiveServer:
    app: Starlette
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """uvicorn on the test's own loop: the test writes through the same Database (and broker) it serves."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), serving.result()
        await asyncio.sleep(0.01)
    try:
        yield LiveServer(app=app, port=port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=TIMEOUT)


@contextmanager
def live_server_in_thread(settings: Settings) -> Iterator[tuple[LiveServer, Callable[[Coroutine[Any, Any, T]], T]]]:
    """live_server on an event loop of its own thread, for synchronous clients (Hypothesis, requests).

    Yields the server and a function that runs a coroutine on the server's loop
    (where its Database lives) and returns the result.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-server", daemon=True)
    thread.start()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    serving = live_server(settings)
    try:
        server = run(serving.__aenter__())
        try:
            yield server, run
        finally:
            run(serving.__aexit__(None, None, None))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


class Refused(Exception):
    """The server refused the connection: `code` is the close code, `payload` a connection_error's."""

    def __init__(self, code: int | None, payload: Any = None) -> None:
        super().__init__(code, payload)
        self.code = code
        self.payload = payload


class GraphQLSocket:
    """Speaks graphql-transport-ws or the legacy graphql-ws over one connection."""

    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol
        self._ids = itertools.count(1)

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message that is not a keep-alive; a close raises Refused."""
        while True:
            try:
                raw = await asyncio.wait_for(self.connection.recv(), timeout)
            except ConnectionClosed as closed:
                raise Refused(closed.rcvd.code if closed.rcvd else None) from None
            # Strict like a browser client: JSON arrives in text frames only.
            assert isinstance(raw, str), f"binary frame from the server: {raw!r}"
            message = orjson.loads(raw)
            if message["type"] == "ka":
                continue
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def init(self, payload: dict[str, Any] | None) -> None:
        await self.send({"type": "connection_init", "payload": payload or {}})
        message = await self.receive()
        if message["type"] == "connection_error":
            raise Refused(None, message.get("payload"))
        assert message["type"] == "connection_ack", message

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        operation_id = str(next(self._ids))
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send({"id": operation_id, "type": kind, "payload": {"query": query, "variables": variables or {}}})
        return operation_id

    async def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next result payload ({"data": ...} or {"errors": [...]})."""
        message = await self.receive(timeout)
        if message["type"] in ("next", "data"):
            return message["payload"]
        if message["type"] == "error":
            errors = message["payload"]
            return {"errors": errors if isinstance(errors, list) else [errors]}
        raise AssertionError(f"unexpected message {message}")

    async def silent(self, timeout: float = 0.3) -> bool:
        """True when nothing arrives within the timeout."""
        try:
            message = await self.receive(timeout)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message {message}")

    async def close(self) -> None:
        await self.connection.close()


@asynccontextmanager
async def graphql_socket(
    url: str, protocol: str, payload: dict[str, Any] | None = None, *, origin: str | None = None
) -> AsyncIterator[GraphQLSocket]:
    headers = {"Origin": origin} if origin else None
    async with connect(url, subprotocols=[protocol], additional_headers=headers,  # type: ignore[list-item]
                       open_timeout=TIMEOUT) as connection:
        socket = GraphQLSocket(connection, protocol)
        await socket.init(payload)
        yield socket


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}

"""A TCP relay in front of a live server, so a test can drop its clients' connections as a network would."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Relay:
    """Forwards its port to the server's; cut() drops every connection and holds new ones until restore()."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._closed = False
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def cut(self) -> None:
        self._open.clear()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.restore()

    async def serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        await self._open.wait()
        if self._closed:
            client_writer.transport.abort()
            return
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self._writers -= {client_writer, server_writer}


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    writer.close()


@asynccontextmanager
async def relay(upstream_port: int) -> AsyncIterator[Relay]:
    forwarder = Relay(upstream_port)
    server = await asyncio.start_server(forwarder.serve, "127.0.0.1", 0)
    forwarder.port = server.sockets[0].getsockname()[1]
    async with server:
        try:
            yield forwarder
        finally:
            forwarder.close()

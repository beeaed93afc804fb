"""Every message the server sends over a WebSocket is a text frame, as browsers and graphql-ws require.

The raw connection shows each frame as it came: `websockets` hands a text frame over as str and a
binary one as bytes.
"""

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from graph.relay import to_global_id
from tests.live import LEGACY_WS, TIMEOUT, TRANSPORT_WS, LiveServer
from tests.seeding import account, queued_task

TASK_EVENTS = "subscription($taskId: ID!) { taskEvents(taskId: $taskId, afterSequence: 0) { sequence } }"
QUERY = "{ __typename }"
INVALID = "subscription { noSuchField }"


async def raw_socket(server: LiveServer, protocol: str) -> ClientConnection:
    return await connect(server.ws_url, subprotocols=[protocol], open_timeout=TIMEOUT)  # type: ignore[list-item]


async def send(connection: ClientConnection, *messages: dict[str, Any]) -> None:
    for message in messages:
        await connection.send(orjson.dumps(message).decode())


async def frames_until(connection: ClientConnection, types: set[str]) -> list[str | bytes]:
    """Every frame received until messages of all these types have arrived."""
    frames: list[str | bytes] = []
    while not types <= {orjson.loads(frame)["type"] for frame in frames}:
        frames.append(await asyncio.wait_for(connection.recv(), TIMEOUT))
    return frames


def binary(frames: list[str | bytes]) -> list[bytes]:
    return [frame for frame in frames if isinstance(frame, bytes)]


async def test_every_graphql_transport_ws_message_is_a_text_frame(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = to_global_id("Task", await queued_task(server, owner))

    async with await raw_socket(server, TRANSPORT_WS) as connection:
        # when: a conversation that draws every kind of message the server sends
        await send(
            connection,
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}},
            {"type": "ping"},
            {"id": "1", "type": "subscribe", "payload": {"query": TASK_EVENTS, "variables": {"taskId": task_id}}},
            {"id": "2", "type": "subscribe", "payload": {"query": QUERY}},
            {"id": "3", "type": "subscribe", "payload": {"query": INVALID}},
        )
        frames = await frames_until(connection, {"connection_ack", "pong", "next", "complete", "error"})

    # then
    assert binary(frames) == []


async def test_every_legacy_graphql_ws_message_is_a_text_frame(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = to_global_id("Task", await queued_task(server, owner))

    async with await raw_socket(server, LEGACY_WS) as connection:
        # when: a conversation that draws every kind of message the server sends
        await send(
            connection,
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}},
            {"id": "1", "type": "start", "payload": {"query": TASK_EVENTS, "variables": {"taskId": task_id}}},
            {"id": "2", "type": "start", "payload": {"query": INVALID}},
        )
        frames = await frames_until(connection, {"connection_ack", "ka", "data", "error"})
        await send(connection, {"id": "1", "type": "stop"})
        frames += await frames_until(connection, {"complete"})

    # then
    assert binary(frames) == []


async def test_a_legacy_connection_error_is_a_text_frame(server: LiveServer) -> None:
    async with await raw_socket(server, LEGACY_WS) as connection:
        await send(connection, {"type": "connection_init", "payload": {"token": "not-a-token"}})
        frames = await frames_until(connection, {"connection_error"})

    assert binary(frames) == []

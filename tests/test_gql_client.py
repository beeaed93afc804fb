"""Python's gql client, unmodified, against a live server: a query and an upload over HTTP, subscriptions over both
WebSocket protocols."""

import asyncio
import hashlib
import io
from typing import Any

import pytest
from gql import Client, FileVar, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from graph.relay import to_global_id
from tests.live import PROTOCOLS, TIMEOUT, LiveServer
from tests.seeding import account, analysed_task, progress, queued_task

NESTED = """
query($id: ID!) {
  task(id: $id) { id analysis { verdict findings { severity sources { pageNumber snippet } } } }
}
"""
UPLOAD = """
mutation($file: Upload!) { uploadDocument(file: $file) { deduplicated task { status fileSize fileHash } } }
"""
TASK_EVENTS = """
subscription($taskId: ID!, $after: Int) { taskEvents(taskId: $taskId, afterSequence: $after) { sequence type } }
"""


def http_transport(server: LiveServer, token: str, **headers: str) -> HTTPXAsyncTransport:
    return HTTPXAsyncTransport(url=f"http://127.0.0.1:{server.port}/graphql",
                               headers={"Authorization": f"Bearer {token}", **headers}, timeout=TIMEOUT)


async def test_gql_reads_a_task_and_its_nested_analysis_over_http(server: LiveServer) -> None:
    # given
    owner, token = await account(server)
    task_id = to_global_id("Task", await analysed_task(server, owner))

    # when
    async with Client(transport=http_transport(server, token)) as session:
        data = await session.execute(GraphQLRequest(NESTED, variable_values={"id": task_id}))

    # then
    assert data["task"] == {"id": task_id, "analysis": {"verdict": "REVIEW", "findings": [
        {"severity": "CRITICAL", "sources": [{"pageNumber": 2, "snippet": "12.5 ohm"}]},
        {"severity": "MINOR", "sources": []},
    ]}}


async def test_gql_uploads_a_file(server: LiveServer) -> None:
    # given: gql sends no CSRF header of its own; the server asks for Apollo's
    _, token = await account(server)
    content = b"insulation resistance: 550 megaohm\n" * 100
    upload = FileVar(io.BytesIO(content), filename="report.txt", content_type="text/plain")

    # when
    async with Client(transport=http_transport(server, token, **{"Apollo-Require-Preflight": "true"})) as session:
        data = await session.execute(GraphQLRequest(UPLOAD, variable_values={"file": upload}), upload_files=True)

    # then: a BigInt travels as a string
    assert data["uploadDocument"] == {"deduplicated": False, "task": {
        "status": "QUEUED", "fileSize": str(len(content)), "fileHash": hashlib.sha256(content).hexdigest()}}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_gql_receives_live_task_events_over_websocket(server: LiveServer, protocol: str) -> None:
    # given
    owner, token = await account(server)
    task_id = await queued_task(server, owner)
    transport = WebsocketsTransport(url=server.ws_url, init_payload={"Authorization": f"Bearer {token}"},
                                    subprotocols=[protocol])
    request = GraphQLRequest(TASK_EVENTS, variable_values={"taskId": to_global_id("Task", task_id), "after": 0})

    async with Client(transport=transport) as session:
        events = session.subscribe(request)
        received: list[dict[str, Any]] = [await asyncio.wait_for(anext(events), TIMEOUT)]

        # when
        await progress(server, task_id, 2)
        for _ in range(2):
            received.append(await asyncio.wait_for(anext(events), TIMEOUT))
        await events.aclose()

    # then: the stored CREATED event, then both live ones
    assert [(event["taskEvents"]["sequence"], event["taskEvents"]["type"]) for event in received] == [
        (1, "CREATED"), (2, "PROGRESS"), (3, "PROGRESS")]

"""Every GraphQL error carries `extensions.requestId`, the id the response's X-Request-ID names, whichever way the
request failed: refused before it was parsed, before it ran, while it ran, or as a stream's event."""

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from db.enums import Role
from db.settings import Settings
from graph.relay import to_global_id
from tests.api import Api
from tests.live import PROTOCOLS, bearer, graphql_socket, live_server
from tests.seeding import account
from tests.test_sse import parse_events

STREAM = "text/event-stream"
GRAPHQL_RESPONSE = "application/graphql-response+json"
MY_TASK_EVENTS = "subscription { myTaskEvents { sequence } }"
TASK = "query($id: ID!) { task(id: $id) { id } }"


def _hash(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(document.encode()).hexdigest()}}


def post(body: Any, **headers: str) -> Callable[[Api, str], Awaitable[httpx.Response]]:
    async def send(api: Api, token: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {"content-type": "application/json", "accept": GRAPHQL_RESPONSE, **headers}
        return await api.client.post("/graphql", content=content,
                                     headers={key: value.replace("$TOKEN", token) for key, value in sent.items()})
    return send


def get(params: dict[str, str], **headers: str) -> Callable[[Api, str], Awaitable[httpx.Response]]:
    async def send(api: Api, token: str) -> httpx.Response:
        return await api.client.get("/graphql", params=params, headers={
            key: value.replace("$TOKEN", token) for key, value in headers.items()})
    return send


async def _upload_without_csrf_header(api: Api, token: str) -> httpx.Response:
    return await api.upload("mutation($f: Upload!) { uploadDocument(file: $f) { deduplicated } }", {"f": None},
                            {"f": ("a.txt", b"a\n", "text/plain")}, token, headers={})


async def _put(api: Api, token: str) -> httpx.Response:
    return await api.client.put("/graphql", json={"query": "{ __typename }"})


async def _too_large(api: Api, token: str) -> httpx.Response:
    return await api.client.post("/graphql", content=b" " * (2 * 1024 * 1024),
                                 headers={"content-type": "application/json"})


SIGNED_IN = {"authorization": "Bearer $TOKEN"}
FAILURES: dict[str, Callable[[Api, str], Awaitable[httpx.Response]]] = {
    "a document that does not parse": post({"query": "{ me { id "}),
    "a field that does not exist": post({"query": "{ nothingLikeThis }"}),
    "a variable that does not fit": post({"query": TASK, "variables": {"id": [1]}}),
    "a refused token": post({"query": "{ me { id } }"}, authorization="Bearer not-a-token"),
    "a refused token, under application/json": post({"query": "{ me { id } }"}, authorization="Bearer nonsense",
                                                     accept="application/json"),
    "a refused token over SSE": post({"query": MY_TASK_EVENTS}, authorization="Bearer nonsense", accept=STREAM),
    "a subscription over SSE with no credential": post({"query": MY_TASK_EVENTS}, accept=STREAM),
    "a spent stream ticket": get({"query": MY_TASK_EVENTS, "ticket": "never-minted"}, accept=STREAM),
    "PERSISTED_QUERY_NOT_FOUND": post({"extensions": _hash("{ __typename }")}),
    "PERSISTED_QUERY_NOT_FOUND over GET": get({"extensions": orjson.dumps(_hash("{ me { id } }")).decode()}),
    "a persisted query whose hash does not match": post({"query": "{ __typename }",
                                                         "extensions": _hash("{ me { id } }")}),
    "JSON that does not parse": post(b'{"query": '),
    "a body that is not an object": post(b'"{ __typename }"'),
    "a batch": post([{"query": "{ __typename }"}]),
    "a content type the API does not take": post(b"{ __typename }", **{"content-type": "text/plain"}),
    "an upload without the CSRF header": _upload_without_csrf_header,
    "a method other than GET and POST": _put,
    "a body over the limit": _too_large,
    "a mutation over GET": get({"query": "mutation { createStreamTicket { ticket } }"}, **SIGNED_IN),
    "a mutation over GET that asks for a stream": get({"query": "mutation { createStreamTicket { ticket } }"},
                                                      accept=STREAM, **SIGNED_IN),
    "a subscription over plain HTTP": post({"query": MY_TASK_EVENTS}, **SIGNED_IN),
    "an operation name the document lacks": post({"query": "query A { __typename }", "operationName": "B"}),
    "several operations and no name": post({"query": "query A { __typename } query B { __typename }"}),
    "a resolver's NOT_FOUND": post({"query": '{ node(id: "bogus") { id } }'}, **SIGNED_IN),
    "an ADMIN field asked by a USER": post({"query": "{ users { edges { node { id } } } }"}, **SIGNED_IN),
    "a mutation that needs a viewer": post({"query": "mutation { createStreamTicket { ticket } }"}),
    "a document over the cost budget": post({"query": "{ tasks(first: 100) { edges { node { events(first: 100) {"
                                                      " edges { node { id } } } owner { tasks(first: 100) { edges {"
                                                      " node { events(first: 100) { edges { node { id } } } } } } }"
                                                      " } } } }"}, **SIGNED_IN),
    "a document too deep": post({"query": "{ me " + "{ tasks { edges { node { owner " * 4 + "{ id }"
                                          + " } } } }" * 4 + " }"}, **SIGNED_IN),
    "a stream's error event (a Last-Event-ID that is no position)": post(
        {"query": MY_TASK_EVENTS}, accept=STREAM, **{"last-event-id": "yesterday"}, **SIGNED_IN),
}


async def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith(STREAM):
        events = [event async for event in parse_events(response) if event.get("event") == "next"]
        return [error for event in events for error in orjson.loads(event["data"]).get("errors", [])]
    return list(response.json()["errors"])


@pytest.mark.parametrize("failure", FAILURES)
async def test_every_error_carries_the_request_id(api: Api, failure: str) -> None:
    # given
    token = await api.sign_up("ann@example.com", Role.USER)

    # when
    response = await FAILURES[failure](api, token)

    # then: at least one error, each naming the request by the id its response carries
    errors = await errors_of(response)
    assert errors, response.text
    assert {error["extensions"].get("requestId") for error in errors} == {response.headers["x-request-id"]}, errors
    assert all(error["extensions"].get("code") for error in errors)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("document", [
    "subscription { nothingLikeThis }",                                      # refused before it runs
    "subscription($id: ID!) { taskEvents(taskId: $id) { sequence } }",       # a resolver's NOT_FOUND
])
async def test_every_error_over_a_websocket_carries_the_connections_request_id(
        settings: Settings, protocol: str, document: str) -> None:
    async with live_server(settings) as server:
        _, token = await account(server)
        async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
            await socket.subscribe(document, {"id": to_global_id("Task", uuid.uuid4())})
            errors = (await socket.next())["errors"]
            handshake = socket.connection.response
            assert handshake is not None
            request_id = handshake.headers["x-request-id"]

    assert errors
    assert {error["extensions"].get("requestId") for error in errors} == {request_id}, errors

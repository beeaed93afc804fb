"""The answer follows the client's Accept by q-value and order: the exact headers of the clients people use.

Each header below is copied from the client's source as installed by tests/js
(package-lock.json) or as shipped with our GraphiQL: a query or mutation is
one JSON answer unless the client prefers a stream over both JSON types; a
subscription streams whenever the client can read a stream.
"""


import httpx
import pytest

from graph.access.tokens import issue_token
from tests.api import Api, error_codes
from tests.factories import make_user
from tests.live import TIMEOUT, LiveServer
from tests.node import SCRIPTS, node_or_skip

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
STREAM = "text/event-stream"

# @urql/core 6.0.3, dist/urql-core-chunk.mjs: makeFetchOptions, for queries and mutations.
URQL = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
# The same, for a subscription sent over fetch (fetchSubscriptions).
URQL_SUBSCRIPTION = "text/event-stream, multipart/mixed"
CLIENTS = {
    "urql": (URQL, GRAPHQL_RESPONSE),
    # @apollo/client 4.3.8, link/http/selectHttpOptionsAndBody.js
    "Apollo Client": ("application/graphql-response+json,application/json;q=0.9", GRAPHQL_RESPONSE),
    # graphql-request 7.4.0, build/legacy/helpers/runRequest.js
    "graphql-request": ("application/graphql-response+json, application/json", GRAPHQL_RESPONSE),
    # graphql-http 1.23.1, lib/client.js
    "graphql-http": ("application/graphql-response+json, application/json", GRAPHQL_RESPONSE),
    # graphql-sse 2.6.1, lib/client.js: every operation over the stream it asked for.
    "graphql-sse": (STREAM, STREAM),
    # Relay's documented network layer (relay.dev, "Network Layer") sets no Accept: fetch sends */*.
    "Relay": ("*/*", JSON),
    # GraphiQL's fetcher, in graph/http/graphiql/static: its plain one, and the one for incremental delivery.
    "GraphiQL": ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
    "GraphiQL, incremental": ("application/json, multipart/mixed", JSON),
    # The browser's EventSource.
    "EventSource": (STREAM, STREAM),
}
# Headers no client above sends, for what q-values and order decide.
PREFERENCES = {
    "no Accept": (None, JSON),
    "a stream at a lower q-value": ("application/json, text/event-stream;q=0.5", JSON),
    "a stream first, at equal q": ("text/event-stream, application/json", STREAM),
    "JSON at a lower q-value than a stream": ("application/json;q=0.5, text/event-stream", STREAM),
    "JSON first, at equal q": ("application/json, application/graphql-response+json", JSON),
    "the newer type at a higher q-value": ("application/json;q=0.8, application/graphql-response+json", GRAPHQL_RESPONSE),
    "a named type over a wildcard": ("*/*, application/graphql-response+json", GRAPHQL_RESPONSE),
    "a refused JSON type": ("application/graphql-response+json;q=0, application/json;q=0.1", JSON),
    "a range that does not parse": ("nonsense, application/graphql-response+json", GRAPHQL_RESPONSE),
    "a stream refused by its q-value": ("text/event-stream;q=0, application/json", JSON),
    "a wildcard's stream": ("text/*", JSON),
}
ME = "{ __typename }"
REGISTER = "mutation($email: String!) { register(email: $email, password: \"correct horse battery\") { token } }"
UPLOAD = "mutation($file: Upload!) { uploadDocument(file: $file) { deduplicated task { originalFilename } } }"
MY_TASK_EVENTS = "subscription { myTaskEvents { sequence } }"


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0]


async def post(client: httpx.AsyncClient, query: str, accept: str | None,
               variables: dict[str, object] | None = None, **headers: str) -> httpx.Response:
    sent = {"accept": accept} if accept is not None else {}
    return await client.post("/graphql", json={"query": query, "variables": variables or {}},
                             headers={**sent, **headers})


@pytest.mark.parametrize("client_name", CLIENTS)
async def test_a_query_is_answered_as_each_client_asks(client: httpx.AsyncClient, client_name: str) -> None:
    accept, expected = CLIENTS[client_name]

    response = await post(client, ME, accept)

    assert (response.status_code, media_type(response)) == (200, expected)
    if expected != STREAM:
        assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("case", PREFERENCES)
async def test_a_query_follows_the_q_values_then_the_order_of_accept(client: httpx.AsyncClient, case: str) -> None:
    accept, expected = PREFERENCES[case]

    response = await post(client, ME, accept)

    assert (response.status_code, media_type(response)) == (200, expected)


async def test_urqls_default_accept_gets_json_for_a_query_a_mutation_and_an_upload(api: Api) -> None:
    # given
    token = await api.sign_up("ann@example.com")

    # when
    query = await post(api.client, "{ me { email } }", URQL, authorization=f"Bearer {token}")
    mutation = await post(api.client, REGISTER, URQL, {"email": "bob@example.com"})
    upload = await api.upload(UPLOAD, {"file": None}, {"file": ("report.txt", b"550 megaohm\n", "text/plain")},
                              token, headers={"Apollo-Require-Preflight": "true", "Accept": URQL})

    # then: one JSON answer each, of the type urql names first
    assert [(r.status_code, media_type(r)) for r in (query, mutation, upload)] == [(200, GRAPHQL_RESPONSE)] * 3
    assert query.json()["data"] == {"me": {"email": "ann@example.com"}}
    assert "errors" not in mutation.json()
    assert upload.json()["data"]["uploadDocument"] == {"deduplicated": False,
                                                       "task": {"originalFilename": "report.txt"}}


async def test_a_request_error_under_urqls_accept_is_the_graphql_response_types_400(client: httpx.AsyncClient) -> None:
    response = await post(client, "{ nothingLikeThis }", URQL)

    assert (response.status_code, media_type(response)) == (400, GRAPHQL_RESPONSE)
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_subscription_refused_a_stream_by_its_q_value_is_told_how_to_subscribe(
        client: httpx.AsyncClient) -> None:
    response = await post(client, MY_TASK_EVENTS, "text/event-stream;q=0, application/json")

    assert response.status_code == 400
    assert "text/event-stream" in response.json()["errors"][0]["message"]


async def test_a_mutation_over_get_that_asks_for_a_stream_is_a_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": REGISTER, "variables": '{"email": "c@example.com"}'},
                                headers={"accept": STREAM, "x-request-id": "get-mutation-1"})

    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "requestId": "get-mutation-1"}


@pytest.mark.parametrize("accept", [URQL, URQL_SUBSCRIPTION])
async def test_a_subscription_streams_to_a_client_that_can_read_a_stream(server: LiveServer, accept: str) -> None:
    # given
    async with server.app.state.database.transaction() as session:
        owner = await make_user(session)
    token = issue_token(owner.id, server.app.state.settings)[0]

    # when
    async with httpx.AsyncClient(timeout=TIMEOUT) as http, http.stream(
            "POST", f"http://127.0.0.1:{server.port}/graphql", json={"query": MY_TASK_EVENTS},
            headers={"accept": accept, "authorization": f"Bearer {token}"}) as response:
        opened = (response.status_code, media_type(response))

    # then
    assert opened == (200, STREAM)


def test_every_client_header_above_is_quoted_from_the_installed_client() -> None:
    # Guards the constants against a client upgrade that changes what it sends.
    node_or_skip()
    modules = SCRIPTS / "node_modules"
    quoted = {
        "@urql/core/dist/urql-core-chunk.mjs": [URQL, URQL_SUBSCRIPTION],
        "@apollo/client/link/http/selectHttpOptionsAndBody.js": [CLIENTS["Apollo Client"][0]],
        "graphql-http/lib/client.js": [CLIENTS["graphql-http"][0]],
        "graphql-request/build/legacy/helpers/runRequest.js": ["[CONTENT_TYPE_GQL, CONTENT_TYPE_JSON].join(`, `)"],
        "graphql-sse/lib/client.js": [f"accept: '{STREAM}'"],
    }
    for path, headers in quoted.items():
        text = (modules / path).read_text()
        assert all(header in text for header in headers), path

"""GraphQL over HTTP to the letter: media types, statuses, and refusals that are JSON with a code."""

from typing import Any

import httpx
import pytest

from tests.api import Api, error_codes

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


async def post(client: httpx.AsyncClient, body: Any, accept: str | None = GRAPHQL_RESPONSE,
               **headers: str) -> httpx.Response:
    sent = {"accept": accept} if accept else {}
    return await client.post("/graphql", json=body, headers={**sent, **headers})


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0]


@pytest.mark.parametrize(("document", "variables"), [
    ("{ me { id ", None),                                    # parse error
    ("{ nothingLikeThis }", None),                           # validation error
    ("query($id: ID!) { task(id: $id) { id } }", {"id": [1]}),  # variable coercion
])
async def test_a_request_error_is_a_400_without_data_under_the_graphql_response_type(
    client: httpx.AsyncClient, document: str, variables: dict[str, Any] | None
) -> None:
    response = await post(client, {"query": document, "variables": variables})

    assert (response.status_code, media_type(response)) == (400, GRAPHQL_RESPONSE)
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_a_request_error_is_a_200_without_data_for_an_application_json_client(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, {"query": "{ nothingLikeThis }"}, accept=JSON)

    assert (response.status_code, media_type(response)) == (200, JSON)
    assert "data" not in response.json()


async def test_a_field_error_keeps_status_200_and_its_data(api: Api) -> None:
    # given
    token = await api.sign_up("ann@example.com")

    # when: one field fails, the other is answered
    response = await post(api.client, {"query": '{ me { email } node(id: "bogus") { id } }'},
                          authorization=f"Bearer {token}")

    # then
    assert (response.status_code, media_type(response)) == (200, GRAPHQL_RESPONSE)
    body = response.json()
    assert body["data"] == {"me": {"email": "ann@example.com"}, "node": None}
    assert error_codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(("accept", "expected"), [
    (None, JSON),
    ("*/*", JSON),
    (JSON, JSON),
    (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
    (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
])
async def test_the_response_media_type_follows_the_accept_header(
    client: httpx.AsyncClient, accept: str | None, expected: str
) -> None:
    response = await post(client, {"query": "{ __typename }"}, accept=accept)

    assert (response.status_code, media_type(response)) == (200, expected)


async def test_a_bad_token_is_a_401_under_the_graphql_response_type(client: httpx.AsyncClient) -> None:
    response = await post(client, {"query": "{ me { id } }"}, authorization="Bearer not-a-token")

    assert response.status_code == 401
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_several_operations_without_an_operation_name_are_refused(client: httpx.AsyncClient) -> None:
    document = "query A { __typename } mutation B { __typename }"

    refused = await post(client, {"query": document})
    named = await post(client, {"query": "query A { first: __typename } query B { second: __typename }",
                                "operationName": "B"})

    assert refused.status_code == 400
    assert "operationName" in refused.json()["errors"][0]["message"]
    assert named.json() == {"data": {"second": "Query"}}


@pytest.mark.parametrize(("content", "content_type", "status"), [
    (b'{"query": ', JSON, 400),            # malformed JSON
    (b'"{ __typename }"', JSON, 400),      # JSON, but not an object
    (b"null", JSON, 400),
    (b'[{"query": "{ __typename }"}]', JSON, 400),  # a batch
    (b"{ __typename }", "text/plain", 415),
])
async def test_a_malformed_request_is_refused_with_a_json_error_and_a_code(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    response = await client.post("/graphql", content=content,
                                 headers={"content-type": content_type, "accept": GRAPHQL_RESPONSE})

    assert (response.status_code, media_type(response)) == (status, GRAPHQL_RESPONSE)
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_subscription_over_plain_post_is_told_how_to_subscribe(client: httpx.AsyncClient) -> None:
    response = await post(client, {"query": "subscription { myTaskEvents { sequence } }"})

    assert response.status_code == 400
    message = response.json()["errors"][0]["message"]
    assert "WebSocket" in message and "text/event-stream" in message


async def test_a_mutation_over_get_is_a_405_that_names_post(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": 'mutation { login(email: "a@b.c", password: "x") '
                                                             "{ token } }"}, headers={"accept": JSON})

    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_query_over_get_runs(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ __typename }", "variables": "null"},
                                headers={"accept": GRAPHQL_RESPONSE})

    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


async def test_another_method_is_a_405_json_error(client: httpx.AsyncClient) -> None:
    response = await client.put("/graphql", json={"query": "{ __typename }"})

    assert (response.status_code, response.headers["allow"]) == (405, "GET, POST")
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_variable_that_does_not_coerce_is_named_with_the_scalar_s_reason(client: httpx.AsyncClient) -> None:
    response = await post(client, {"query": "query($s: DateTime) { tasks(filter: {createdAfter: $s}) { totalCount } }",
                                   "variables": {"s": "2020-01-01"}})

    message = response.json()["errors"][0]["message"]
    assert message.startswith("Variable '$s' has invalid value: ") and "offset" in message

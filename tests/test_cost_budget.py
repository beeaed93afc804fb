"""The cost budget: a document that asks for too much is refused before anything executes."""

import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from db.settings import Settings
from graph.app import create_app
from tests.api import Api, error_codes
from tests.conftest import make_settings
from tests.live import TRANSPORT_WS, bearer, graphql_socket, live_server

PAGE_OF_IDS = "{ tasks(first: 100) { edges { node { id } } } }"  # 1 + 100 × (edges 1 + node 1 + id 1) = 301
MILLION_NODES = (
    "{ tasks(first: 100) { edges { node { owner { tasks(first: 100) { edges { node { owner {"
    " tasks(first: 100) { edges { node { id } } } } } } } } } } } }"
)


@pytest.fixture
async def budget_api(database_url: str, data_dir: Path) -> AsyncIterator[Api]:
    """An API whose budget is exactly the cost of PAGE_OF_IDS."""
    app = create_app(make_settings(database_url, data_dir, max_query_cost=301))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client=client, database=app.state.database)


async def test_a_document_at_the_budget_runs(budget_api: Api) -> None:
    token = await budget_api.sign_up("ann@example.com")

    body = await budget_api.post(PAGE_OF_IDS, token=token)

    assert body == {"data": {"tasks": {"edges": []}}}


@pytest.mark.parametrize(("document", "variables"), [
    ("{ __typename tasks(first: 100) { edges { node { id } } } }", {}),
    ("query($n: Int) { __typename tasks(first: $n) { edges { node { id } } } }", {"n": 100}),
])
async def test_a_document_one_step_over_the_budget_is_refused_with_its_cost(
    budget_api: Api, document: str, variables: dict[str, int]
) -> None:
    token = await budget_api.sign_up("ann@example.com")

    response = await budget_api.client.post("/graphql", json={"query": document, "variables": variables},
                                            headers={"authorization": f"Bearer {token}",
                                                     "accept": "application/graphql-response+json"})

    assert response.status_code == 400
    body = response.json()
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"] and "data" not in body
    assert (body["errors"][0]["extensions"]["cost"], body["errors"][0]["extensions"]["maxCost"]) == (302, 301)


async def test_aliases_and_fragments_count_as_what_they_expand_to(budget_api: Api) -> None:
    token = await budget_api.sign_up("ann@example.com")
    aliased = "{ a: tasks(first: 50) { edges { node { id } } } b: tasks(first: 51) { edges { node { id } } } }"
    spread = "fragment Ids on TaskConnection { edges { node { id } } } { tasks(first: 100) { ...Ids totalCount } }"

    for document in (aliased, spread):
        body = await budget_api.post(document, token=token)
        assert error_codes(body) == ["QUERY_TOO_COMPLEX"], document


async def test_the_million_node_query_is_refused_without_the_server_allocating_for_it(api: Api) -> None:
    # given: a USER (whose tasks are what the query would multiply)
    token = await api.sign_up("ann@example.com")

    # when
    tracemalloc.start()
    try:
        body = await api.post(MILLION_NODES, token=token)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # then: refused, with the figures, and the request never held more than a few MiB
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] == 3_040_401
    assert peak < 8 * 1024 * 1024


async def test_a_client_can_ask_what_a_request_cost(api: Api) -> None:
    token = await api.sign_up("ann@example.com")

    response = await api.client.post("/graphql", json={"query": PAGE_OF_IDS, "extensions": {"cost": True}},
                                     headers={"authorization": f"Bearer {token}"})
    plain = await api.post(PAGE_OF_IDS, token=token)

    assert response.json()["extensions"] == {"cost": {"requested": 301, "maximum": 100_000}}
    assert "extensions" not in plain


async def test_aliases_inside_fragments_count_against_the_alias_limit(api: Api) -> None:
    token = await api.sign_up("ann@example.com")
    aliases = " ".join(f"a{n}: id" for n in range(31))

    body = await api.post(f"fragment Many on User {{ {aliases} }} {{ me {{ ...Many }} }}", token=token)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "aliases" in body["errors"][0]["message"]


# The same three-level page read, its page size given each way a client may write 100.
NESTED = ("tasks(first: $n) { edges { node { owner { tasks(first: $n) { edges { node { owner {"
          " tasks(first: $n) { edges { node { id } } } } } } } } } } }")
ENCODINGS = {
    "int": f'{{"query": "query($n: Int) {{ {NESTED} }}", "variables": {{"n": 100}}}}',
    "float": f'{{"query": "query($n: Int) {{ {NESTED} }}", "variables": {{"n": 100.0}}}}',
    "exponent": f'{{"query": "query($n: Int) {{ {NESTED} }}", "variables": {{"n": 1e2}}}}',
    "default": f'{{"query": "query($n: Int = 100) {{ {NESTED} }}"}}',
}
NESTED_COST = 3_040_401


async def refusal(client: httpx.AsyncClient, body: str, token: str) -> dict[str, object]:
    response = await client.post("/graphql", content=body,
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_the_budget_reads_the_page_size_as_execution_would(api: Api, encoding: str) -> None:
    token = await api.sign_up("ann@example.com")

    body = await refusal(api.client, ENCODINGS[encoding], token)

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"]["cost"] == NESTED_COST  # type: ignore[index]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_remembered_document_is_refused_for_a_page_size_over_the_budget(api: Api, encoding: str) -> None:
    # given: the document ran with a small page, twice (the second time from the HTTP body alone)
    token = await api.sign_up("ann@example.com")
    small = ENCODINGS[encoding].replace("100.0", "1.0").replace("1e2", "1e0").replace("= 100", "= 1") \
        .replace('"n": 100}', '"n": 1}')
    for _ in range(2):
        assert "errors" not in await refusal(api.client, small, token)

    # when: the same document with a page of 100, sent twice
    answers = [await refusal(api.client, ENCODINGS[encoding], token) for _ in range(2)]

    # then
    assert [error_codes(body) for body in answers] == [["QUERY_TOO_COMPLEX"]] * 2


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_websocket_query_is_refused_for_a_page_size_over_the_budget(settings: Settings, encoding: str) -> None:
    async with live_server(settings) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            token = await Api(client=client, database=server.app.state.database).sign_up("ann@example.com")
        async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
            # The request's own text as the payload: 1e2 stays an exponent on the wire.
            await socket.connection.send(f'{{"id": "1", "type": "subscribe", "payload": {ENCODINGS[encoding]}}}')
            answer = await socket.next()

    assert [error["extensions"]["code"] for error in answer["errors"]] == ["QUERY_TOO_COMPLEX"]
    assert answer["errors"][0]["extensions"]["cost"] == NESTED_COST


async def test_introspection_is_costed_like_any_other_read(api: Api) -> None:
    one = "__schema { types { name fields { name args { name type { name ofType { name } } } } } }"
    aliased = " ".join(f"a{number}: {one}" for number in range(30))

    single = (await api.client.post("/graphql", json={"query": f"{{ {one} }}", "extensions": {"cost": True}})).json()
    many = await api.post(f"{{ {aliased} }}")

    assert "errors" not in single and single["extensions"]["cost"]["requested"] > 5_000
    assert error_codes(many) == ["QUERY_TOO_COMPLEX"]


async def test_a_field_repeated_thousands_of_times_is_refused_before_validation(api: Api) -> None:
    repeated = " ".join(["id"] * 4900)

    body = await api.post(f"{{ me {{ {repeated} }} }}")

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "'id' is asked for 4900 times" in body["errors"][0]["message"]

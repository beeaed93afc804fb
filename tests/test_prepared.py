"""Prepared operations (graph/engine/prepared.py): a query document the server has run once is answered again past
Strawberry's machinery, and every request gets the very response the full path gives it."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from starlette.applications import Starlette

from db.models import User
from graph.app import create_app
from tests.api import Api
from tests.conftest import make_settings
from tests.factories import make_analysed_task, make_task
from tests.test_metrics import value

PAGE = """query Page($first: Int, $name: String) {
  tasks(first: $first, filter: {filenameContains: $name}) {
    edges { node { id status originalFilename analysis { verdict findings { severity ruleId } } } } } }"""
OTHER_OPERATION = "query Other { me { id } }"
GOOD = {"first": 2}
MAX_STRING_LENGTH = 40
# The page of 2 costs less, a page of 200 more.
MAX_QUERY_COST = 1000


@pytest.fixture
async def apps(database_url: str, data_dir: Path) -> AsyncIterator[tuple[Starlette, Starlette]]:
    """Two servers on one database: one answers prepared operations, the other takes the full path for all."""
    settings = make_settings(database_url, data_dir, metrics_enabled=True, max_string_length=MAX_STRING_LENGTH,
                             max_query_cost=MAX_QUERY_COST)
    prepared, full = create_app(settings), create_app(settings)
    async with LifespanManager(prepared), LifespanManager(full):
        full.state.graphql.prepared = None
        yield prepared, full


async def post(app: Starlette, body: Any, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await http.post("/graphql", content=content, headers={"content-type": "application/json", **headers})


def outcome(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """What a client sees, less what differs on every request (its id)."""
    headers = {name: value for name, value in response.headers.items() if name not in ("x-request-id", "content-length")}
    if "json" not in headers["content-type"]:
        return response.status_code, headers, response.text
    body = response.json()
    for error in body.get("errors", ()) if isinstance(body, dict) else ():
        error.get("extensions", {}).pop("requestId", None)
    return response.status_code, headers, body


async def prepared_count(app: Starlette, outcome: str) -> float:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        return value((await http.get("/metrics")).text, "auditgraph_prepared_requests_total", outcome=outcome)


async def seed(apps: tuple[Starlette, Starlette]) -> str:
    """Alice's token; she has two analysed tasks and one not yet analysed."""
    prepared, _ = apps
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=prepared), base_url="http://test") as http:
        api = Api(client=http, database=prepared.state.database)
        token = await api.sign_up("alice@example.com")
        async with api.database.transaction() as session:
            owner = await session.scalar(select(User).where(User.email == "alice@example.com"))
            assert owner is not None
            await make_analysed_task(session, owner)
            await make_analysed_task(session, owner)
            await make_task(session, owner)
        return token


REQUESTS: dict[str, tuple[Any, dict[str, str]]] = {
    "the same variables": ({"query": PAGE, "variables": GOOD}, {}),
    "other variables": ({"query": PAGE, "variables": {"first": 1, "name": "invoice"}}, {}),
    "no variables": ({"query": PAGE}, {}),
    "null variables": ({"query": PAGE, "variables": None}, {}),
    "the operation named": ({"query": PAGE, "variables": GOOD, "operationName": "Page"}, {}),
    "a variable of the wrong type": ({"query": PAGE, "variables": {"first": "two"}}, {}),
    "a negative page": ({"query": PAGE, "variables": {"first": -1}}, {}),
    "a page over the cost budget": ({"query": PAGE, "variables": {"first": 200}}, {}),
    "a NUL in a variable": ({"query": PAGE, "variables": {"first": 2, "name": "a\u0000b"}}, {}),
    "a string over the limit": ({"query": PAGE, "variables": {"first": 2, "name": "x" * (MAX_STRING_LENGTH + 1)}}, {}),
    "variables that are not an object": ({"query": PAGE, "variables": [1]}, {}),
    "an empty list of variables": ({"query": PAGE, "variables": []}, {}),
    "variables of false": ({"query": PAGE, "variables": False}, {}),
    "an empty query": ({"query": "", "variables": GOOD}, {}),
    "an operation name the document lacks": ({"query": PAGE, "variables": GOOD, "operationName": "Nope"}, {}),
    "extensions": ({"query": PAGE, "variables": GOOD, "extensions": {"cost": True}}, {}),
    "a batch": ([{"query": PAGE, "variables": GOOD}], {}),
    "not JSON": (b'{"query": ', {}),
    "no token": ({"query": PAGE, "variables": GOOD}, {"authorization": ""}),
    "a bad token": ({"query": PAGE, "variables": GOOD}, {"authorization": "Bearer nonsense"}),
    "not a bearer token": ({"query": PAGE, "variables": GOOD}, {"authorization": "Basic abc"}),
    "the graphql-response media type": ({"query": PAGE, "variables": GOOD},
                                        {"accept": "application/graphql-response+json"}),
    "an Accept of JSON": ({"query": PAGE, "variables": GOOD}, {"accept": "application/json"}),
    "an Accept of a stream": ({"query": PAGE, "variables": GOOD}, {"accept": "text/event-stream"}),
    "urql's default Accept, which names a stream after JSON": (
        {"query": PAGE, "variables": GOOD},
        {"accept": "application/graphql-response+json, application/graphql+json, application/json, "
                   "text/event-stream, multipart/mixed"}),
    "a charset": ({"query": PAGE, "variables": GOOD}, {"content-type": "application/json; charset=utf-8"}),
}


@pytest.mark.parametrize("name", REQUESTS)
async def test_a_request_of_a_prepared_document_is_answered_as_the_full_path_answers_it(
        apps: tuple[Starlette, Starlette], name: str) -> None:
    # given: the prepared server has run the document once
    token = await seed(apps)
    prepared, full = apps
    signed_in = {"authorization": f"Bearer {token}"}
    assert (await post(prepared, {"query": PAGE, "variables": GOOD}, signed_in)).status_code == 200
    body, headers = REQUESTS[name]

    # when
    answers = [await post(app, body, {**signed_in, **headers}) for app in (prepared, full)]

    # then
    assert outcome(answers[0]) == outcome(answers[1])


async def test_the_second_request_of_a_document_takes_the_prepared_path(apps: tuple[Starlette, Starlette]) -> None:
    # given
    token = await seed(apps)
    prepared, _ = apps
    signed_in = {"authorization": f"Bearer {token}"}
    first = await post(prepared, {"query": PAGE, "variables": GOOD}, signed_in)
    answered = await prepared_count(prepared, "answered")

    # when
    second = await post(prepared, {"query": PAGE, "variables": GOOD}, signed_in)

    # then
    assert await prepared_count(prepared, "answered") == answered + 1
    assert second.json() == first.json() and len(second.json()["data"]["tasks"]["edges"]) == 2


async def test_a_refused_request_goes_the_full_path_and_is_refused_there(apps: tuple[Starlette, Starlette]) -> None:
    # given
    token = await seed(apps)
    prepared, _ = apps
    signed_in = {"authorization": f"Bearer {token}"}
    await post(prepared, {"query": PAGE, "variables": GOOD}, signed_in)
    full_path = await prepared_count(prepared, "full_path")

    # when
    response = await post(prepared, {"query": PAGE, "variables": {"first": 200}}, signed_in)

    # then
    assert await prepared_count(prepared, "full_path") == full_path + 1
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_a_document_with_several_operations_is_prepared_for_the_one_named(
        apps: tuple[Starlette, Starlette]) -> None:
    # given
    token = await seed(apps)
    prepared, full = apps
    signed_in = {"authorization": f"Bearer {token}"}
    both = f"{PAGE}\n{OTHER_OPERATION}"
    await post(prepared, {"query": both, "variables": GOOD, "operationName": "Page"}, signed_in)

    # when: the other operation, and no operation named at all
    requests = [{"query": both, "operationName": "Other"}, {"query": both, "variables": GOOD}]
    answers = [[outcome(await post(app, body, signed_in)) for app in (prepared, full)] for body in requests]

    # then
    assert [pair[0] == pair[1] for pair in answers] == [True, True]
    assert answers[1][0][2]["errors"][0]["message"].startswith("This document has several operations")


async def test_the_same_body_from_another_viewer_answers_with_that_viewers_tasks(
        apps: tuple[Starlette, Starlette]) -> None:
    # given: alice's request has been answered twice, the second time on the prepared path
    alice = {"authorization": f"Bearer {await seed(apps)}"}
    prepared, _ = apps
    for _ in range(2):
        assert len((await post(prepared, {"query": PAGE, "variables": GOOD}, alice)).json()["data"]["tasks"]["edges"]) == 2
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=prepared), base_url="http://test") as http:
        bob = {"authorization": f"Bearer {await Api(client=http, database=prepared.state.database).sign_up('bob@example.com')}"}
    answered = await prepared_count(prepared, "answered")

    # when: bob sends the very same bytes
    response = await post(prepared, {"query": PAGE, "variables": GOOD}, bob)

    # then
    assert await prepared_count(prepared, "answered") == answered + 1
    assert response.json() == {"data": {"tasks": {"edges": []}}}

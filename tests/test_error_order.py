"""Errors come out in the order of the places they name in the response, whichever executor answers: a
resolver that fails at once does not jump ahead of one that failed after a read."""

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from db.settings import Settings
from graph.app import create_app
from tests.api import Api

# The nested page size is refused after the task and its owner were read; the malformed id at once, before any
# read.
QUERY = """query($a: ID!, $b: ID!) {
  a: node(id: $a) { ... on Task { owner { tasks(first: 100000) { totalCount } } } }
  task(id: "not an id") { id }
  b: node(id: $b) { ... on Task { owner { tasks(first: 100001) { totalCount } } } }
}"""


@pytest.fixture(params=[True, False], ids=["compiled", "graphql-core"])
async def any_executor(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Api]:
    application = create_app(settings.model_copy(update={"compiled_execution": request.param}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client=client, database=application.state.database)


async def test_errors_are_listed_in_response_order(any_executor: Api) -> None:
    api = any_executor
    token = await api.sign_up("ann@example.com")
    ids = [(await api.data("mutation($u: String!) { submitUrl(url: $u) { task { id } } }",
                           {"u": f"https://example.com/{number}"}, token))["submitUrl"]["task"]["id"]
           for number in range(2)]

    for _ in range(3):  # the second and third times, the compiled run has warmed what graphql-core reads
        body = await api.post(QUERY, {"a": ids[0], "b": ids[1]}, token)
        assert body["data"] == {"a": None, "task": None, "b": None}
        assert [error["path"] for error in body["errors"]] == [
            ["a", "owner", "tasks"], ["task"], ["b", "owner", "tasks"]]

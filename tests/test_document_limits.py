"""The document limits: depth, aliases, tokens, page size and ids; one step below passes, one above is refused."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graph.app import create_app
from tests.api import Api, error_codes
from tests.conftest import make_settings


@pytest.fixture
async def limited(database_url: str, data_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(database_url, data_dir, max_query_depth=4, max_aliases=3, max_query_tokens=40,
                             max_page_size=5)
    app = create_app(settings)
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield Api(client=client, database=app.state.database)


@pytest.mark.parametrize(("passes", "refused", "code"), [
    ("{ me { tasks { edges { node { id } } } } }",                       # depth 4
     "{ me { tasks { edges { node { owner { id } } } } } }", "QUERY_TOO_COMPLEX"),  # depth 5
    ("{ a: me { id } b: me { id } c: me { id } }",
     "{ a: me { id } b: me { id } c: me { id } d: me { id } }", "QUERY_TOO_COMPLEX"),
    ("fragment F on User { a: id b: id c: id } { me { ...F } }",
     "fragment F on User { a: id b: id c: id d: id } { me { ...F } }", "QUERY_TOO_COMPLEX"),
    ("{ tasks(first: 5) { totalCount } }", "{ tasks(first: 6) { totalCount } }", "BAD_USER_INPUT"),
    ("{ me { id email role isActive createdAt updatedAt } }" + " " * 10,
     "{ me { id email role isActive createdAt updatedAt } }" + " __typename" * 40, "BAD_USER_INPUT"),
])
async def test_a_document_one_step_over_a_limit_is_refused_with_its_code(
    limited: Api, passes: str, refused: str, code: str
) -> None:
    token = await limited.sign_up("ann@example.com")

    allowed = await limited.post(passes, token=token)
    over = await limited.post(refused, token=token)

    assert "errors" not in allowed, allowed
    assert error_codes(over) == [code], over


async def test_nodes_takes_at_most_a_hundred_ids(api: Api) -> None:
    token = await api.sign_up("ann@example.com")
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    missing = "VGFzazowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA="  # a Task id no row has

    allowed = await api.post(query, {"ids": [missing] * 100}, token)
    over = await api.post(query, {"ids": [missing] * 101}, token)

    assert allowed == {"data": {"nodes": [None] * 100}}
    assert error_codes(over) == ["BAD_USER_INPUT"]

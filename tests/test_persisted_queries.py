"""Automatic persisted queries are shared: a document registered through one server process runs by its hash
on every other process of the same database, and a hash only ever runs the document it is the hash of."""

import hashlib
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from db.engine import Database
from db.models import PersistedQuery
from db.persisted_queries import store_document, stored_size
from db.settings import Settings
from graph.app import create_app
from tests.api import error_codes
from tests.cli import serve_processes
from tests.sql_counter import count_statements

KIND = "query Kind { __typename }"
TYPENAME = "{ __typename }"


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(document.encode()).hexdigest()}}


async def by_hash(http: httpx.AsyncClient, url: str, document: str) -> dict[str, Any]:
    """The answer to a GET that names the document by its hash alone."""
    params = {"extensions": orjson.dumps(persisted(document)).decode(), "variables": "{}"}
    response = await http.get(f"{url}/graphql", params=params, headers={"accept": "application/json"})
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def servers(settings: Settings) -> Any:
    """Two `auditgraph serve` processes on one database (a SQLite file, or PostgreSQL)."""
    environment = {"DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir),
                   "SECRET_KEY": settings.secret_key, "LOG_LEVEL": "warning"}
    with serve_processes(environment, environment) as urls:
        yield urls


async def test_a_query_registered_through_one_process_runs_by_its_hash_on_another(servers: list[str]) -> None:
    # given
    first, second = servers
    async with httpx.AsyncClient(timeout=30) as http:
        registered = (await http.post(f"{first}/graphql", json={"query": KIND, "extensions": persisted(KIND)})).json()

        # when
        answer = await by_hash(http, second, KIND)

    # then
    assert registered == {"data": {"__typename": "Query"}}
    assert answer == {"data": {"__typename": "Query"}}


async def test_a_hash_another_process_registered_costs_one_read_at_first_sight_and_none_after(
    settings: Settings,
) -> None:
    # given: two processes' apps on one database; KIND registered through the first
    first, second = create_app(settings), create_app(settings)
    async with LifespanManager(first), LifespanManager(second):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://first") as http:
            await http.post("/graphql", json={"query": KIND, "extensions": persisted(KIND)})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://second") as http:
            # when
            with count_statements(second.state.database) as first_sight:
                answer = await by_hash(http, "", KIND)
            with count_statements(second.state.database) as after:
                again = await by_hash(http, "", KIND)

    # then
    assert answer == again == {"data": {"__typename": "Query"}}
    assert len(first_sight) == 1 and "persisted_queries" in first_sight[0]
    assert after == []


async def test_a_hash_sent_with_another_document_is_refused_and_no_process_learns_it(servers: list[str]) -> None:
    # given
    first, second = servers
    async with httpx.AsyncClient(timeout=30) as http:
        # when: a client sends KIND's hash with a document of its own
        refused = (await http.post(f"{first}/graphql",
                                   json={"query": "{ me { id } }", "extensions": persisted(KIND)})).json()
        on_first, on_second = await by_hash(http, first, KIND), await by_hash(http, second, KIND)

    # then
    assert error_codes(refused) == ["BAD_USER_INPUT"]
    assert error_codes(on_first) == error_codes(on_second) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_stored_document_that_is_not_its_hashs_never_runs(
    db: Database, client: httpx.AsyncClient
) -> None:
    # given: a row written behind the server's back, naming KIND's hash with another document
    async with db.transaction() as session:
        await store_document(session, persisted(KIND)["persistedQuery"]["sha256Hash"], "{ me { id } }")

    # when
    answer = await by_hash(client, "", KIND)

    # then
    assert error_codes(answer) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_the_database_keeps_the_newest_registrations_within_the_bound(
    db: Database, settings: Settings
) -> None:
    # given: a bound that holds the two newest of these documents with their rows' overhead, not all three
    bound = 1024
    large = "query Large { __typename }".ljust(400)
    assert sum(map(stored_size, (large, TYPENAME))) <= bound < sum(map(stored_size, (KIND, large, TYPENAME)))
    app = create_app(settings.model_copy(update={"persisted_queries_max_bytes": bound}))

    # when
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://test") as client:
        for document in (KIND, large, TYPENAME):
            response = await client.post("/graphql", json={"query": document, "extensions": persisted(document)})
            assert response.json() == {"data": {"__typename": "Query"}}

    # then: KIND, the oldest, went
    stored = await db.rows(select(PersistedQuery.document).order_by(PersistedQuery.created_at))
    assert [document for document, in stored] == [large, TYPENAME]

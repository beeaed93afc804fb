"""Queries read REPLICA_DATABASE_URL; mutations, and everything they read, the primary; a write's response names
the primary's WAL position, and a query that carries it never reads behind it (db/replica.py).

The "replica" of the PostgreSQL tests here is a second database on the same server, copied before the test
wrote anything: what a query finds there shows where it read. Replay lag on a real streaming replica is
tests/test_topology.py's.
"""

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError
from sqlalchemy import func, select

from db.models import User
from db.settings import Settings
from graph.app import create_app
from tests.api import Api
from tests.cli import free_port
from tests.conftest import _create_postgres_database, _drop_postgres_database, make_settings, run_in_thread
from tests.throwaway_postgres import PostgresServer

UPLOAD = "mutation($file: Upload!) { uploadDocument(file: $file) { task { id originalFilename } } }"
TASK = "query($id: ID!) { task(id: $id) { id } }"
ME = "query { me { email } }"
REGISTER = "mutation { register(email: \"new@example.com\", password: \"correct horse battery staple\") { token } }"
POSITION = re.compile(r"[0-9A-F]+/[0-9A-F]+")


async def user_count(api: Api) -> int:
    async with api.database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(User)) or 0


async def test_a_malformed_read_position_is_refused_with_a_code_and_changes_nothing(api: Api) -> None:
    # given
    before = await user_count(api)
    # when
    response = await api.client.post("/graphql", json={"query": REGISTER}, headers={"X-Read-After": "yesterday"})
    # then
    assert response.status_code == 400
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["BAD_USER_INPUT"]
    assert await user_count(api) == before


async def test_without_a_replica_a_write_names_no_read_position(api: Api) -> None:
    response = await api.client.post("/graphql", json={"query": REGISTER})
    assert response.json()["data"]["register"]["token"]
    assert "X-Read-After" not in response.headers


def test_transaction_pooling_needs_a_listen_connection_straight_to_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="LISTEN_DATABASE_URL"):
        make_settings("postgresql://app@pgbouncer/auditgraph", tmp_path, database_pooler="transaction")
    settings = make_settings("postgresql://app@pgbouncer/auditgraph", tmp_path, database_pooler="transaction",
                             listen_database_url="postgresql://app@db/auditgraph")
    assert settings.listen_url == "postgresql+asyncpg://app@db/auditgraph"


def test_a_replica_is_one_of_a_postgresql_primary(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="REPLICA_DATABASE_URL"):
        make_settings(None, tmp_path, replica_database_url="postgresql://app@replica/auditgraph")


@pytest.fixture
def stale_copy(postgres_server: PostgresServer, postgres_template: str) -> Iterator[str]:
    """A database at the head revision that no write of the test reaches: the replica, as far as the app knows."""
    name = run_in_thread(_create_postgres_database(postgres_server, postgres_template))
    yield postgres_server.url(name)
    run_in_thread(_drop_postgres_database(postgres_server, name))


async def api_reading(replica_url: str, postgres_server: PostgresServer, postgres_template: str,
                      data_dir: Path) -> AsyncIterator[Api]:
    primary = run_in_thread(_create_postgres_database(postgres_server, postgres_template))
    settings: Settings = make_settings(postgres_server.url(primary), data_dir, replica_database_url=replica_url,
                                       replica_wait_seconds=0.1)
    application = create_app(settings)
    try:
        async with LifespanManager(application), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application), base_url="http://test") as client:
            yield Api(client=client, database=application.state.database)
    finally:
        run_in_thread(_drop_postgres_database(postgres_server, primary))


@pytest.fixture
async def replica_api(stale_copy: str, postgres_server: PostgresServer, postgres_template: str,
                      data_dir: Path) -> AsyncIterator[Api]:
    async for api in api_reading(stale_copy, postgres_server, postgres_template, data_dir):
        yield api


@pytest.fixture
async def unreachable_replica_api(postgres_server: PostgresServer, postgres_template: str,
                                  data_dir: Path) -> AsyncIterator[Api]:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/auditgraph"
    async for api in api_reading(nowhere, postgres_server, postgres_template, data_dir):
        yield api


async def upload(api: Api, token: str) -> httpx.Response:
    return await api.upload(UPLOAD, {"file": None}, {"file": ("report.txt", b"a report\n")}, token=token)


async def test_queries_read_the_replica_while_a_mutation_reads_what_it_wrote_on_the_primary(
        replica_api: Api) -> None:
    # given
    token = await replica_api.sign_up("owner@example.com")
    # when
    uploaded = await upload(replica_api, token)
    # then: the mutation's payload comes from the primary, and names the position after its commit
    task = uploaded.json()["data"]["uploadDocument"]["task"]
    assert task["originalFilename"] == "report.txt"
    assert POSITION.fullmatch(uploaded.headers["X-Read-After"])
    # and a query reads the replica, which has neither the task nor the account
    assert (await replica_api.data(TASK, {"id": task["id"]}, token)) == {"task": None}
    assert (await replica_api.data(ME, token=token)) == {"me": None}


async def test_a_query_carrying_a_write_position_reads_the_primary_when_the_replica_cannot_say_it_has_replayed_it(
        unreachable_replica_api: Api) -> None:
    # given
    api = unreachable_replica_api
    token = await api.sign_up("owner@example.com")
    uploaded = await upload(api, token)
    task_id = uploaded.json()["data"]["uploadDocument"]["task"]["id"]
    headers = {"Authorization": f"Bearer {token}", "X-Read-After": uploaded.headers["X-Read-After"]}
    # when
    carried = await api.client.post("/graphql", json={"query": TASK, "variables": {"id": task_id}}, headers=headers)
    # then: the write is seen
    assert carried.json() == {"data": {"task": {"id": task_id}}}
    # and without the position, the query reads the replica: unreachable, it is told to retry
    bare = await api.client.post("/graphql", json={"query": TASK, "variables": {"id": task_id}},
                                 headers={"Authorization": f"Bearer {token}"})
    assert bare.status_code == 503
    assert [error["extensions"]["code"] for error in bare.json()["errors"]] == ["SERVICE_UNAVAILABLE"]

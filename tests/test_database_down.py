"""While the database is unreachable every request gets a retryable SERVICE_UNAVAILABLE, and service
resumes by itself when the database is back.

On PostgreSQL the test's own cluster is really stopped and started again. On
SQLite, "down" means the database file cannot be opened (its folder or volume
is missing): the file is a part of the process, so that is the only way it
goes away.
"""

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from graph.access.tokens import issue_token
from tests.api import Api
from tests.conftest import _migrate, make_settings, run_in_thread
from tests.live import LEGACY_WS, PROTOCOLS, TIMEOUT, TRANSPORT_WS, LiveServer, bearer, graphql_socket, live_server
from tests.throwaway_postgres import PostgresCluster, PostgresUnavailable, postgres_cluster

GRAPHQL_RESPONSE = "application/graphql-response+json"
ME = "{ me { email } }"
MY_TASK_EVENTS = "subscription { myTaskEvents { position } }"
LOGIN = 'mutation { login(email: "nobody@example.com", password: "whatever it is") { token } }'


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A cluster of this module's own, so stopping it disturbs no other test."""
    try:
        with postgres_cluster() as running:
            yield running
    except PostgresUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL tests must run under CI: {error}")
        pytest.skip(f"PostgreSQL unavailable: {error}")


@pytest.fixture(scope="module")
def postgres_url(cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    async def create() -> None:
        connection = await asyncpg.connect(cluster.server.dsn("postgres"))
        try:
            await connection.execute("CREATE DATABASE auditgraph")
        finally:
            await connection.close()

    run_in_thread(create())
    url = cluster.server.url("auditgraph")
    run_in_thread(_migrate(make_settings(url, tmp_path_factory.mktemp("pg"))))
    return url


@pytest.fixture
async def server(cluster: PostgresCluster, postgres_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    if not cluster.is_ready():
        cluster.start()
    async with live_server(make_settings(postgres_url, tmp_path / "data")) as running:
        yield running


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=TIMEOUT) as client:
        yield client


async def signed_up(http: httpx.AsyncClient, server: LiveServer, email: str) -> str:
    return await Api(client=http, database=server.app.state.database).sign_up(email)


async def stop(cluster: PostgresCluster) -> None:
    await asyncio.to_thread(cluster.stop)


async def start(cluster: PostgresCluster) -> None:
    await asyncio.to_thread(cluster.start)


async def post(http: httpx.AsyncClient, query: str, token: str | None = None,
               accept: str = GRAPHQL_RESPONSE) -> httpx.Response:
    headers = {"accept": accept, **({"authorization": f"Bearer {token}"} if token else {})}
    return await http.post("/graphql", json={"query": query}, headers=headers)


def assert_unavailable(response: httpx.Response, media_type: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == media_type
    body = response.json()
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["SERVICE_UNAVAILABLE"]


async def refusal(url: str, protocol: str, payload: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """The messages a connection_init is answered with, and the close code that ends the socket."""
    messages = []
    async with connect(url, subprotocols=[protocol], open_timeout=TIMEOUT) as connection:  # type: ignore[list-item]
        await connection.send(orjson.dumps({"type": "connection_init", "payload": payload}).decode())
        try:
            while True:
                messages.append(orjson.loads(await asyncio.wait_for(connection.recv(), TIMEOUT)))
        except ConnectionClosed as closed:
            return messages, closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
async def test_a_signed_in_request_while_postgres_is_down_gets_503_and_retry_after(
    server: LiveServer, http: httpx.AsyncClient, cluster: PostgresCluster, accept: str
) -> None:
    # given
    token = await signed_up(http, server, f"down-{accept[12:16]}@example.com")
    await stop(cluster)

    # when
    response = await post(http, ME, token, accept)

    # then
    assert_unavailable(response, accept)


async def test_a_download_while_postgres_is_down_gets_a_coded_503_and_retry_after(
    server: LiveServer, http: httpx.AsyncClient, cluster: PostgresCluster
) -> None:
    # given
    token = await signed_up(http, server, "download-down@example.com")
    await stop(cluster)

    # when
    response = await http.get(f"/files/tasks/{uuid.uuid4()}", headers={"authorization": f"Bearer {token}"})

    # then
    assert_unavailable(response, "application/json")


async def test_a_resolver_that_meets_the_dead_database_says_service_unavailable(
    http: httpx.AsyncClient, cluster: PostgresCluster
) -> None:
    # given
    await stop(cluster)

    # when
    response = await post(http, LOGIN)

    # then
    assert_unavailable(response, GRAPHQL_RESPONSE)
    assert response.json()["errors"][0]["path"] == ["login"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_websocket_opened_while_postgres_is_down_is_closed_with_try_again_later(
    server: LiveServer, http: httpx.AsyncClient, cluster: PostgresCluster, protocol: str
) -> None:
    # given
    token = await signed_up(http, server, f"socket-{protocol}@example.com")
    await stop(cluster)

    # when
    messages, close_code = await refusal(server.ws_url, protocol, bearer(token))

    # then
    assert close_code == 1013
    if protocol == LEGACY_WS:
        assert [message["payload"]["code"] for message in messages] == ["SERVICE_UNAVAILABLE"]
    else:
        assert messages == []


async def test_service_resumes_when_postgres_is_back(
    server: LiveServer, http: httpx.AsyncClient, cluster: PostgresCluster
) -> None:
    # given
    token = await signed_up(http, server, "resumes@example.com")
    await stop(cluster)
    assert (await http.get("/readyz")).status_code == 503
    assert (await post(http, ME, token)).status_code == 503

    # when
    await start(cluster)

    # then: ready once its event listener is back too (it retries on its own)
    async with asyncio.timeout(TIMEOUT):
        while (await http.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.05)
    response = await post(http, ME, token)
    assert (response.status_code, response.json()) == (200, {"data": {"me": {"email": "resumes@example.com"}}})
    async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)):
        pass


async def test_the_first_read_after_a_restart_nobody_saw_is_answered(
    server: LiveServer, http: httpx.AsyncClient, cluster: PostgresCluster
) -> None:
    # given: the read pool holds connections from before a restart that no request met
    token = await signed_up(http, server, "restart@example.com")
    assert (await post(http, ME, token)).status_code == 200
    await stop(cluster)
    await start(cluster)
    async with asyncio.timeout(TIMEOUT):
        while not server.app.state.broker.listening:
            await asyncio.sleep(0.05)

    # when
    response = await post(http, ME, token)

    # then: the pool skipped the connections the server had closed, without pinging each one
    assert (response.status_code, response.json()) == (200, {"data": {"me": {"email": "restart@example.com"}}})


async def test_a_sqlite_file_that_cannot_be_opened_is_unavailable_until_it_can(
    sqlite_template: Path, tmp_path: Path
) -> None:
    # given: the database's folder (a volume, say) is missing
    folder = tmp_path / "volume"
    settings = make_settings(f"sqlite+aiosqlite:///{folder / 'auditgraph.db'}", tmp_path / "data")
    async with live_server(settings) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=TIMEOUT) as http:
            # when
            down = await post(http, ME, issue_token(uuid.uuid4(), settings)[0])
            folder.mkdir()
            shutil.copyfile(sqlite_template, folder / "auditgraph.db")
            token = await signed_up(http, server, "sqlite-back@example.com")
            back = await post(http, ME, token)

    # then
    assert_unavailable(down, GRAPHQL_RESPONSE)
    assert back.json() == {"data": {"me": {"email": "sqlite-back@example.com"}}}


def test_a_server_shutting_down_counts_as_unreachable_when_the_driver_adapter_wraps_it() -> None:
    # The soak benchmark met this during a PostgreSQL restart: INTERNAL_SERVER_ERROR instead of SERVICE_UNAVAILABLE.
    from asyncpg.exceptions import CannotConnectNowError

    from db.availability import is_unreachable

    class AdaptedError(Exception):
        pass

    try:
        try:
            raise CannotConnectNowError("the database system is shutting down")
        except CannotConnectNowError as error:
            raise AdaptedError("wrapped by the dialect") from error
    except AdaptedError as adapted:
        assert is_unreachable(adapted)
    assert not is_unreachable(ValueError("a bug, not an outage"))


async def test_the_lease_loop_logs_one_line_when_postgres_goes_and_one_when_it_is_back(
    cluster: PostgresCluster, postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a server that looks for lapsed leases every 50 ms
    caplog.set_level(logging.INFO, logger="auditgraph.housekeeping")
    if not cluster.is_ready():
        cluster.start()
    settings = make_settings(postgres_url, tmp_path / "data", lease_check_seconds=0.05)
    async with live_server(settings):
        # when: the database is away for some twenty of those intervals, then back
        await stop(cluster)
        await asyncio.sleep(1)
        await start(cluster)
        async with asyncio.timeout(TIMEOUT):
            while not any("works again" in record.getMessage() for record in caplog.records):
                await asyncio.sleep(0.05)

    # then
    lines = [record for record in caplog.records if "expired leases" in record.getMessage()]
    assert [record.levelno for record in lines] == [logging.WARNING, logging.INFO], [r.getMessage() for r in lines]
    assert "unreachable" in lines[0].getMessage()
    assert not lines[0].exc_info


async def test_a_live_subscription_ends_with_service_unavailable_only_when_the_outage_outlasts_its_window(
    cluster: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    # given: subscriptions over both WebSocket protocols and SSE that wait one second for the database
    if not cluster.is_ready():
        cluster.start()
    settings = make_settings(postgres_url, tmp_path / "data", subscription_outage_seconds=1)
    async with live_server(settings) as server, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", timeout=TIMEOUT) as http:
        token = await signed_up(http, server, "outlasted@example.com")
        async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as modern, \
                graphql_socket(server.ws_url, LEGACY_WS, bearer(token)) as legacy, \
                http.stream("POST", "/graphql", json={"query": MY_TASK_EVENTS},
                            headers={"accept": "text/event-stream", "authorization": f"Bearer {token}"}) as sse:
            for socket in (modern, legacy):
                await socket.subscribe(MY_TASK_EVENTS)
            assert await modern.silent() and await legacy.silent()

            # when: the database goes away for longer than that
            await stop(cluster)
            try:
                endings = [(await socket.next())["errors"][0]["extensions"]["code"] for socket in (modern, legacy)]
                lines = [line async for line in sse.aiter_lines() if line.startswith("data: {")]
            finally:
                await start(cluster)

    # then: each ends, saying why
    assert endings == ["SERVICE_UNAVAILABLE", "SERVICE_UNAVAILABLE"]
    assert [orjson.loads(line[6:])["errors"][0]["extensions"]["code"] for line in lines] == ["SERVICE_UNAVAILABLE"]

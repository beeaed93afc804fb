"""Graceful shutdown of `auditgraph serve`: on SIGTERM, WebSocket subscribers are told to reconnect (1012), SSE
streams end without `complete` (so clients reconnect), and a stalled upload holds the process up only until
SHUTDOWN_TIMEOUT_SECONDS, when it is answered with a coded 503; a write whose commit began by then finishes and
is answered."""

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import event, select
from sqlalchemy.util import await_only
from starlette.applications import Starlette

from db.engine import Database
from db.models import Task
from db.settings import Settings
from graph.app import create_app
from graph.relay import to_global_id
from tests.api import Api
from tests.cli import free_port, run_cli, start_cli, wait_until_ready
from tests.live import TRANSPORT_WS, Refused, bearer, graphql_socket
from tests.test_sse import parse_events

PASSWORD = "correct horse battery"
MY_TASK_EVENTS = "subscription { myTaskEvents { sequence } }"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
# Bounds a test that would otherwise hang on a server that never stops.
EXIT_WAIT_SECONDS = 60


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    data_dir = str(tmp_path / "data")
    assert run_cli("migrate", DATA_DIR=data_dir).returncode == 0
    created = run_cli("create-user", "--email", "ann@example.com", input=PASSWORD + "\n", DATA_DIR=data_dir)
    assert created.returncode == 0, created.stderr
    port = free_port()
    process = start_cli("serve", "--port", str(port), DATA_DIR=data_dir, SHUTDOWN_TIMEOUT_SECONDS="2")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", process)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def stalled_upload(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A multipart request that announces a megabyte and sends a few bytes of it, then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nApollo-Require-Preflight: true\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1048576\r\n\r\n--xyz\r\n"
    )
    await writer.drain()
    return reader, writer


async def test_sigterm_ends_live_streams_at_once_and_a_stalled_upload_only_until_the_bound(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    # given: a WebSocket subscriber, an SSE subscriber and an upload that stalled half way
    process, port = server
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=EXIT_WAIT_SECONDS) as http:
        token = (await http.post("/graphql", json={"query": LOGIN, "variables": {"e": "ann@example.com",
                                                                                 "p": PASSWORD}})).json()
        headers = {"accept": "text/event-stream", "authorization": f"Bearer {token['data']['login']['token']}"}
        async with graphql_socket(f"ws://127.0.0.1:{port}/graphql", TRANSPORT_WS,
                                  bearer(token["data"]["login"]["token"])) as socket, \
                http.stream("POST", "/graphql", headers=headers, json={"query": MY_TASK_EVENTS}) as sse:
            await socket.subscribe(MY_TASK_EVENTS)
            _, upload = await stalled_upload(port)
            # Answered only after the server's loop has read what arrived before it: the upload is in flight.
            assert (await http.get("/healthz")).status_code == 200

            # when
            process.send_signal(signal.SIGTERM)
            with pytest.raises(Refused) as closed:
                await socket.receive(timeout=EXIT_WAIT_SECONDS)
            sse_events = [event async for event in parse_events(sse)]
            exit_code = await asyncio.to_thread(process.wait, EXIT_WAIT_SECONDS)
            upload.close()
    log = process.stdout.read() if process.stdout else ""

    # then
    assert closed.value.code == 1012
    # It ended cleanly (a stream cut off at the bound would have raised): no `complete`, so clients reconnect.
    assert [event for event in sse_events if event.get("event") == "complete"] == []
    assert "timeout graceful shutdown exceeded" in log  # the stalled upload, cut off at the bound
    assert "Finished server process" in log
    # uvicorn hands the signal it stopped on back to the process once it has shut down.
    assert exit_code == -signal.SIGTERM


SUBMIT_URL = 'mutation { submitUrl(url: "https://example.com/late") { task { id } } }'


@asynccontextmanager
async def bounded_server(settings: Settings) -> AsyncIterator[tuple[uvicorn.Server, Starlette, int]]:
    """uvicorn in this process with a one-second shutdown bound; the caller sets should_exit when it wants."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=1))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), serving.result()
        await asyncio.sleep(0.01)
    try:
        yield server, app, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=EXIT_WAIT_SECONDS)


async def test_a_write_whose_commit_began_before_the_bound_is_answered_and_stays(settings: Settings) -> None:
    async with bounded_server(settings) as (server, app, port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=EXIT_WAIT_SECONDS) as http:
            # given: a write whose commit takes two seconds, under way as the server is told to stop
            token = await Api(client=http, database=app.state.database).sign_up("owner@example.com")
            committing = asyncio.Event()

            def slow_commit(_connection: object) -> None:
                committing.set()
                await_only(asyncio.sleep(2))

            for engine in app.state.database.engines:
                event.listen(engine.sync_engine, "commit", slow_commit)
            write = asyncio.create_task(
                http.post("/graphql", json={"query": SUBMIT_URL}, headers={"Authorization": f"Bearer {token}"}))
            await committing.wait()

            # when: the one-second bound passes while the commit is in flight
            server.should_exit = True
            response = await write

    # then: answered with what it did, and what it did is there
    assert response.status_code == 200, response.text
    task_id = response.json()["data"]["submitUrl"]["task"]["id"]
    database = Database.from_settings(settings)
    try:
        stored = await database.rows(select(Task.id))
    finally:
        await database.dispose()
    assert [to_global_id("Task", row[0]) for row in stored] == [task_id]


async def test_a_request_cut_at_the_bound_gets_a_coded_503_and_changes_nothing(settings: Settings) -> None:
    async with bounded_server(settings) as (server, _, port):
        # given: an upload that stalled half way
        reader, writer = await stalled_upload(port)

        # when: the server stops, and the bound passes
        server.should_exit = True
        answer = await asyncio.wait_for(reader.read(), EXIT_WAIT_SECONDS)
        writer.close()

    # then
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().lower().split("\r\n")
    assert lines[0] == "http/1.1 503 service unavailable", answer
    assert "retry-after: 5" in lines and "content-type: application/json" in lines
    assert [error["extensions"]["code"] for error in orjson.loads(body)["errors"]] == ["SERVICE_UNAVAILABLE"]

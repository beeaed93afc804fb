"""Graceful shutdown of `auditgraph serve`: on SIGTERM, WebSocket subscribers are told to reconnect (1012), SSE
streams end without `complete` (so clients reconnect), and a stalled upload holds the process up only until
SHUTDOWN_TIMEOUT_SECONDS."""

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


async def stalled_upload(port: int) -> asyncio.StreamWriter:
    """A multipart request that announces a megabyte and sends a few bytes of it, then nothing."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nApollo-Require-Preflight: true\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1048576\r\n\r\n--xyz\r\n"
    )
    await writer.drain()
    return writer


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
            upload = await stalled_upload(port)
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

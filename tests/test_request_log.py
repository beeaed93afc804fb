"""One log line per request, and a request id shared by the response header, its errors and the log."""

import base64
import logging
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from db.settings import Settings
from tests.api import Api, error_codes
from tests.cli import free_port, start_cli, wait_until_ready

ME = "query Me { me { id email } }"
REQUEST_LOGGER = "auditgraph.requests"


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The request lines' fields, as a JSON formatter would write them."""
    return [vars(record) for record in caplog.records if record.name == REQUEST_LOGGER]


@pytest.fixture
def caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="auditgraph")
    return caplog


async def test_a_query_is_logged_once_with_its_operation_viewer_sql_and_code(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    token = await api.sign_up("ann@example.com")
    me = (await api.data("{ me { id } }", token=token))["me"]["id"]
    caplog.clear()

    # when
    response = await api.client.post("/graphql", json={"query": ME, "operationName": "Me"},
                                     headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-42"})

    # then
    assert response.headers["x-request-id"] == "req-42"
    [line] = request_lines(caplog)
    assert line["levelno"] == logging.INFO
    assert (line["request_id"], line["operation_name"], line["operation_type"], line["code"], line["status"]) == (
        "req-42", "Me", "query", "OK", 200)
    assert line["viewer_id"] == base64.b64decode(me).decode().split(":", 1)[1]
    # The user; on SQLite the token's account before it, each in its transaction (PostgreSQL
    # remembers the account: tests/test_viewer_roles.py)
    assert line["sql_statements"] == 1 if api.database.dialect == "postgresql" else line["sql_statements"] >= 2
    assert isinstance(line["duration_ms"], float)


async def test_a_request_without_an_id_gets_a_new_one(api: Api) -> None:
    # when
    first = await api.client.post("/graphql", json={"query": "{ __typename }"})
    second = await api.client.get("/healthz")

    # then
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_an_unusable_request_id_is_replaced(api: Api) -> None:
    response = await api.client.post("/graphql", json={"query": "{ __typename }"},
                                      headers={"X-Request-ID": "x" * 500})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_an_internal_error_shares_its_request_id_with_the_client_and_the_traceback(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    token = await api.sign_up("ann@example.com")

    async def fail(self: object, keys: Sequence[object]) -> None:
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr("graph.users.loaders.UserByIdLoader.batch_load_fn", fail)
    caplog.clear()

    # when
    response = await api.client.post("/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"})

    # then
    body = response.json()
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "disk" not in response.text
    request_id = body["errors"][0]["extensions"]["requestId"]
    assert response.headers["x-request-id"] == request_id
    [line] = request_lines(caplog)
    assert (line["request_id"], line["code"], line["levelno"]) == (request_id, "INTERNAL_SERVER_ERROR", logging.ERROR)
    [traceback] = [vars(record) for record in caplog.records if record.name == "auditgraph.errors"]
    assert traceback["request_id"] == request_id
    assert "the disk caught fire" in caplog.text


async def test_every_error_carries_the_request_id(api: Api) -> None:
    response = await api.client.post("/graphql", json={"query": "{ me { id } }"}, headers={"X-Request-ID": "r-1"})
    assert [error["extensions"] for error in response.json()["errors"]] == [
        {"code": "UNAUTHENTICATED", "requestId": "r-1"}]


async def test_a_refusal_before_execution_is_logged_as_a_warning_with_its_code(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # when: a multipart request without the CSRF header
    response = await api.upload("mutation($file: Upload!) { uploadDocument(file: $file) { deduplicated } }",
                                {"file": None}, {"file": ("a.txt", b"text")}, headers={"X-Request-ID": "r-2"})

    # then
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"] == {"code": "FORBIDDEN", "requestId": "r-2"}
    [line] = request_lines(caplog)
    assert (line["code"], line["status"], line["levelno"]) == ("FORBIDDEN", 403, logging.WARNING)


async def test_a_throttled_login_is_logged_as_a_warning(
    api: Api, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    await api.sign_up("ann@example.com")
    login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
    for _ in range(settings.login_max_failures):
        await api.post(login, {"e": "ann@example.com", "p": "wrong password"})
    caplog.clear()

    # when
    body = await api.post(login, {"e": "ann@example.com", "p": "wrong password"})

    # then
    assert error_codes(body) == ["RATE_LIMITED"]
    [line] = request_lines(caplog)
    assert (line["operation_type"], line["code"], line["levelno"]) == ("mutation", "RATE_LIMITED", logging.WARNING)


def test_the_server_writes_one_json_line_per_request(tmp_path: Path) -> None:
    # given
    port = free_port()
    server = start_cli("serve", "--port", str(port), DATA_DIR=str(tmp_path), LOG_FORMAT="json")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", server)

        # when
        httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "query Anyone { __typename }"},
                   headers={"X-Request-ID": "from-the-client"})
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    # then
    lines = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(lines) == len(output.splitlines())
    [line] = [line for line in lines if line.get("request_id") == "from-the-client"]
    assert line | {"duration_ms": 0, "sql_ms": 0, "timestamp": "", "client": ""} == {
        "level": "INFO", "logger": "auditgraph.requests", "message": line["message"], "timestamp": "",
        "request_id": "from-the-client", "method": "POST", "path": "/graphql", "status": 200, "transport": "http",
        "operation_name": "Anyone", "operation_type": "query", "viewer_id": None, "duration_ms": 0,
        "sql_statements": 0, "sql_ms": 0, "code": "OK", "client": "",
    }


async def test_a_crash_outside_graphql_answers_json_with_the_request_id(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: reading a download's row fails in a way nothing expected
    async def fail(*args: object) -> None:
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr("graph.http.downloads._visible_row", fail)

    # when
    response = await api.client.get(f"/files/tasks/{uuid.uuid4()}", headers={"X-Request-ID": "r-3"})

    # then
    assert response.status_code == 500
    assert response.json() == {"errors": [{"message": "An unexpected error occurred.",
                                           "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "r-3"}}]}
    assert response.headers["x-request-id"] == "r-3"
    [line] = request_lines(caplog)
    assert (line["request_id"], line["code"], line["status"]) == ("r-3", "INTERNAL_SERVER_ERROR", 500)
    assert "the disk caught fire" in caplog.text

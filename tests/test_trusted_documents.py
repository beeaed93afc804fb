"""Apollo's automatic persisted queries, and the allow-list mode that runs only trusted documents."""

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from db.enums import Role
from db.settings import Settings
from db.users import register_user
from graph.access.tokens import issue_token
from graph.app import create_app
from tests.api import PASSWORD, error_codes
from tests.cli import run_cli
from tests.live import TRANSPORT_WS, bearer, graphql_socket, live_server

GRAPHQL_RESPONSE = "application/graphql-response+json"
TYPENAME = "{ __typename }"
KIND = "query Kind { __typename }"
EVENTS = "subscription { myTaskEvents { position } }"
INTROSPECTION = "{ __schema { queryType { name } } }"


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


async def post(client: httpx.AsyncClient, body: dict[str, Any], accept: str = "application/json") -> httpx.Response:
    return await client.post("/graphql", json=body, headers={"accept": accept})


async def get(client: httpx.AsyncClient, extensions: dict[str, Any]) -> httpx.Response:
    params = {"extensions": orjson.dumps(extensions).decode(), "variables": "{}"}
    return await client.get("/graphql", params=params, headers={"accept": "*/*"})


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def write_manifest(path: Path, *documents: str) -> Path:
    path.write_bytes(orjson.dumps({sha256(document): document for document in documents}))
    return path


@pytest.fixture
def backend() -> str:
    """These tests are about documents, not storage: one backend is enough."""
    return "sqlite"


@pytest.fixture
def allow_list(settings: Settings, tmp_path: Path) -> Settings:
    manifest = write_manifest(tmp_path / "trusted.json", KIND, EVENTS)
    return settings.model_copy(update={"trusted_documents_file": manifest})


# Automatic persisted queries


async def test_an_unknown_hash_is_persisted_query_not_found(client: httpx.AsyncClient) -> None:
    # when
    response = await post(client, {"extensions": persisted(KIND)})

    # then: the message Apollo's link looks for, and the request id every error carries
    assert response.status_code == 200
    assert response.json() == {"errors": [{"message": "PersistedQueryNotFound", "extensions": {
        "code": "PERSISTED_QUERY_NOT_FOUND", "requestId": response.headers["x-request-id"]}}]}


async def test_an_unknown_hash_is_a_404_under_the_graphql_response_media_type(client: httpx.AsyncClient) -> None:
    response = await post(client, {"extensions": persisted(KIND)}, accept=GRAPHQL_RESPONSE)

    assert response.status_code == 404
    assert error_codes(response.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_query_sent_once_with_its_hash_then_runs_by_hash_alone(client: httpx.AsyncClient) -> None:
    # given
    first = await post(client, {"query": KIND, "extensions": persisted(KIND)})

    # when
    by_post = await post(client, {"extensions": persisted(KIND), "operationName": "Kind"})
    by_get = await get(client, persisted(KIND))

    # then
    assert first.json() == by_post.json() == by_get.json() == {"data": {"__typename": "Query"}}


async def test_a_query_by_hash_over_get_may_be_kept_only_by_the_clients_own_cache(
    client: httpx.AsyncClient,
) -> None:
    # given
    await post(client, {"query": TYPENAME, "extensions": persisted(TYPENAME)})

    # when
    response = await get(client, persisted(TYPENAME))

    # then
    assert response.json() == {"data": {"__typename": "Query"}}
    assert response.headers["cache-control"] == "private, max-age=0"
    assert response.headers["vary"] == "Authorization, Accept"


async def test_an_error_over_get_is_not_cached(client: httpx.AsyncClient) -> None:
    response = await get(client, persisted("{ me { id } }"))

    assert error_codes(response.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert response.headers["cache-control"] == "no-store"


async def test_the_least_recently_used_document_is_forgotten_when_the_store_is_full(settings: Settings) -> None:
    # given: room for one of the two documents
    small = settings.model_copy(update={"persisted_queries_max_bytes": len(KIND) + len(TYPENAME) - 1})

    # when
    async with serving(small) as client:
        await post(client, {"query": KIND, "extensions": persisted(KIND)})
        await post(client, {"query": TYPENAME, "extensions": persisted(TYPENAME)})
        first = await post(client, {"extensions": persisted(KIND)})
        second = await post(client, {"extensions": persisted(TYPENAME)})

    # then
    assert error_codes(first.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert second.json() == {"data": {"__typename": "Query"}}


async def test_a_hash_that_is_not_the_querys_is_refused(client: httpx.AsyncClient) -> None:
    # when
    response = await post(client, {"query": KIND, "extensions": persisted(TYPENAME)})
    later = await post(client, {"extensions": persisted(TYPENAME)})

    # then
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]
    assert "data" not in response.json()
    assert error_codes(later.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_persisted_query_of_another_version_is_refused(client: httpx.AsyncClient) -> None:
    response = await post(client, {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha256(KIND)}}})

    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


# The allow-list


async def test_a_listed_document_runs(allow_list: Settings) -> None:
    async with serving(allow_list) as client:
        response = await post(client, {"query": KIND})

    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_listed_hash_alone_runs(allow_list: Settings) -> None:
    async with serving(allow_list) as client:
        response = await get(client, persisted(KIND))

    assert response.json() == {"data": {"__typename": "Query"}}


async def test_an_unlisted_document_is_refused_with_forbidden(allow_list: Settings) -> None:
    # when
    async with serving(allow_list) as client:
        response = await post(client, {"query": TYPENAME}, accept=GRAPHQL_RESPONSE)

    # then
    assert response.status_code == 403
    assert response.json() == {"errors": [{
        "message": "This server runs only trusted documents, and this one is not among them.",
        "extensions": {"code": "FORBIDDEN", "requestId": ANY},
    }]}


async def test_introspection_is_refused_unless_listed(allow_list: Settings) -> None:
    async with serving(allow_list) as client:
        response = await post(client, {"query": INTROSPECTION})

    assert error_codes(response.json()) == ["FORBIDDEN"]


async def test_an_unlisted_document_sent_with_its_hash_is_refused_and_not_learned(allow_list: Settings) -> None:
    # when
    async with serving(allow_list) as client:
        registered = await post(client, {"query": TYPENAME, "extensions": persisted(TYPENAME)})
        by_hash = await post(client, {"extensions": persisted(TYPENAME)})

    # then
    assert error_codes(registered.json()) == ["FORBIDDEN"]
    assert error_codes(by_hash.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_an_unlisted_subscription_over_a_websocket_is_refused(allow_list: Settings) -> None:
    # given
    async with live_server(allow_list) as server:
        async with server.app.state.database.transaction() as session:
            user = await register_user(session, "ws@example.com", PASSWORD, Role.USER)
        token, _ = issue_token(user.id, allow_list)

        # when
        async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as socket:
            await socket.subscribe("subscription { myTaskEvents { sequence } }")
            payload = await socket.next()

    # then
    assert error_codes(payload) == ["FORBIDDEN"]


# The CLI


def test_the_cli_builds_the_allow_list_from_a_folder_of_graphql_files(tmp_path: Path) -> None:
    # given
    folder = tmp_path / "documents"
    (folder / "tasks").mkdir(parents=True)
    (folder / "me.graphql").write_text("query Me {\n    me { email }\n}\n")
    (folder / "tasks" / "count.graphql").write_text("{ tasks { totalCount } }")
    (folder / "tasks" / "fields.graphql").write_text("fragment TaskFields on Task { id status }")
    output = tmp_path / "trusted.json"

    # when
    result = run_cli("trusted-documents", "build", str(folder), "-o", str(output), DATA_DIR=str(tmp_path))

    # then
    assert result.returncode == 0, result.stderr
    manifest = orjson.loads(output.read_bytes())
    printed_me = "query Me {\n  me {\n    email\n  }\n}"
    assert set(manifest.values()) == {
        "query Me {\n    me { email }\n}\n", printed_me,
        "{ tasks { totalCount } }", "{\n  tasks {\n    totalCount\n  }\n}",
    }
    assert all(key == sha256(document) for key, document in manifest.items())


async def test_a_server_runs_the_documents_the_cli_listed(settings: Settings, tmp_path: Path) -> None:
    # given
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "kind.graphql").write_text("query Kind { __typename }")
    output = tmp_path / "trusted.json"
    assert run_cli("trusted-documents", "build", str(folder), "-o", str(output), DATA_DIR=str(tmp_path)).returncode == 0

    # when: a client sends it as graphql-js prints it, as Apollo Client does
    async with serving(settings.model_copy(update={"trusted_documents_file": output})) as client:
        response = await post(client, {"query": "query Kind {\n  __typename\n}"})

    # then
    assert response.json() == {"data": {"__typename": "Query"}}


def test_the_cli_refuses_a_missing_folder_in_one_line(tmp_path: Path) -> None:
    result = run_cli("trusted-documents", "build", str(tmp_path / "missing"), DATA_DIR=str(tmp_path))

    assert result.returncode == 2
    assert result.stderr == f"no such folder: {tmp_path / 'missing'}\n"


def test_the_cli_names_the_file_and_place_of_an_invalid_document(tmp_path: Path) -> None:
    # given
    (tmp_path / "bad.graphql").write_text("{\n  tasks { nope }\n}")

    # when
    result = run_cli("trusted-documents", "build", str(tmp_path), DATA_DIR=str(tmp_path / "data"))

    # then
    assert result.returncode == 2
    assert result.stderr == f"{tmp_path / 'bad.graphql'}:2:11: Cannot query field 'nope' on type 'TaskConnection'.\n"


def test_serve_refuses_an_allow_list_whose_hashes_do_not_match_in_one_line(tmp_path: Path) -> None:
    # given
    manifest = tmp_path / "trusted.json"
    manifest.write_bytes(orjson.dumps({sha256(KIND): TYPENAME}))

    # when
    result = run_cli("serve", DATA_DIR=str(tmp_path), TRUSTED_DOCUMENTS_FILE=str(manifest))

    # then
    assert result.returncode == 1
    assert result.stderr == f"TRUSTED_DOCUMENTS_FILE {manifest}: {sha256(KIND)} is not the sha256 of its document\n"

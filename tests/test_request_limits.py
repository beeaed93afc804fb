"""Bounded requests: one step below each limit passes, one step above is refused with its code."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from db.enums import Role
from graph.app import create_app
from graph.relay import to_global_id
from tests.api import Api, error_codes
from tests.conftest import make_settings
from tests.factories import make_processing_task, make_user

BODY_LIMIT = 2000
TASKS = "query($f: TaskFilter) { tasks(filter: $f) { totalCount } }"


@pytest.fixture
async def limited(database_url: str, data_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(database_url, data_dir, max_request_bytes=BODY_LIMIT, max_string_length=60,
                             max_list_length=3, max_input_depth=3)
    app = create_app(settings)
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield Api(client=client, database=app.state.database)


def body_of_size(size: int) -> bytes:
    """A valid GraphQL request of exactly `size` bytes (the query padded with spaces)."""
    empty = orjson.dumps({"query": "{ __typename }"})
    return orjson.dumps({"query": "{ __typename }" + " " * (size - len(empty))})


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_json_body_at_the_limit_runs_and_one_byte_over_is_a_413(limited: Api, chunked: bool) -> None:
    async def post(content: bytes) -> httpx.Response:
        sent: Any = content
        if chunked:  # no Content-Length: counted as it arrives

            async def stream() -> AsyncIterator[bytes]:
                for start in range(0, len(content), 512):
                    yield content[start:start + 512]

            sent = stream()
        return await limited.client.post("/graphql", content=sent, headers={"content-type": "application/json"})

    at_limit = await post(body_of_size(BODY_LIMIT))
    over = await post(body_of_size(BODY_LIMIT + 1))

    assert (at_limit.status_code, at_limit.json()) == (200, {"data": {"__typename": "Query"}})
    assert over.status_code == 413
    assert error_codes(over.json()) == ["PAYLOAD_TOO_LARGE"]


@pytest.mark.parametrize(("at_limit", "over_limit"), [
    ({"filenameContains": "a" * 60}, {"filenameContains": "a" * 61}),                 # string length
    ({"status": ["QUEUED"] * 3}, {"status": ["QUEUED"] * 4}),                         # list length
    ({"status": ["QUEUED"] * 3}, {"status": [0] * 300}),                              # walked in a thread
])
async def test_variables_one_step_over_a_bound_are_refused(
    limited: Api, at_limit: dict[str, Any], over_limit: dict[str, Any]
) -> None:
    token = await limited.sign_up("ann@example.com")

    passes = await limited.post(TASKS, {"f": at_limit}, token)
    refused = await limited.post(TASKS, {"f": over_limit}, token)

    assert passes == {"data": {"tasks": {"totalCount": 0}}}
    assert error_codes(refused) == ["BAD_USER_INPUT"] and "data" not in refused
    assert "too large" in refused["errors"][0]["message"]


async def test_literal_arguments_are_bounded_too(limited: Api) -> None:
    token = await limited.sign_up("ann@example.com")

    literal = '{ tasks(filter: {filenameContains: "%s"}) { totalCount } }'
    passes = await limited.post(literal % ("a" * 60), token=token)
    refused = await limited.post(literal % ("a" * 61), token=token)

    assert "errors" not in passes
    assert error_codes(refused) == ["BAD_USER_INPUT"]


RECORD = "mutation($input: RecordAnalysisInput!) { recordAnalysis(input: $input) { analysis { verdict } } }"


async def test_input_nested_deeper_than_the_bound_is_refused(limited: Api) -> None:
    # given: a worker recording an analysis whose JSON sits at the bound (3 levels), then one deeper
    token = await limited.sign_up("worker@example.com", Role.WORKER)
    async with limited.database.transaction() as session:
        task = await make_processing_task(session, await make_user(session))
    record = {"taskId": to_global_id("Task", task.id), "claimId": str(task.claim_id), "verdict": "APPROVED"}

    refused = await limited.post(RECORD, {"input": {**record, "extractionResult": {"a": {"b": 1}}}}, token)
    passes = await limited.post(RECORD, {"input": {**record, "extractionResult": {"a": 1}}}, token)

    assert error_codes(refused) == ["BAD_USER_INPUT"]
    assert "nested deeper than 3" in refused["errors"][0]["message"]
    assert passes == {"data": {"recordAnalysis": {"analysis": {"verdict": "APPROVED"}}}}

"""Smaller protections: LIKE patterns within SQLite's limit, nosniff on every response, a CSP and no framing
for GraphiQL, request paths that cannot forge a line of the text log, and submitUrl throttled per user."""

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from db.settings import Settings
from graph.app import create_app
from tests.api import Api, error_codes

SEARCH = "query($s: String!) { tasks(filter: {filenameContains: $s}) { totalCount } }"


@pytest.mark.parametrize("search", ["x" * 50_001, "%" * 25_001], ids=["long", "percent signs"])
async def test_a_filename_search_past_the_pattern_limit_is_a_coded_refusal(api: Api, search: str) -> None:
    token = await api.sign_up("ann@example.com")

    body = await api.post(SEARCH, {"s": search}, token=token)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "filenameContains" in body["errors"][0]["message"]


async def test_every_response_says_nosniff(api: Api) -> None:
    responses = [await api.client.post("/graphql", json={"query": "{ __typename }"}),
                 await api.client.post("/graphql", content=b"{", headers={"content-type": "application/json"}),
                 await api.client.get("/healthz"),
                 await api.client.get("/nowhere")]

    assert [response.headers.get("x-content-type-options") for response in responses] == ["nosniff"] * 4


async def test_graphiql_may_not_be_framed_and_loads_only_its_own_files(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"accept": "text/html"})

    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy


async def test_a_line_break_in_a_path_cannot_forge_a_log_line(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auditgraph.requests")

    await api.client.get("/nowhere%0a2026-12-06 INFO forged line")

    lines = [record.getMessage() for record in caplog.records if record.name == "auditgraph.requests"]
    assert lines and all("\n" not in line for line in lines)
    assert any("\\n2026-12-06 INFO forged line" in line for line in lines)


SUBMIT = "mutation($u: String!) { submitUrl(url: $u) { task { id } } }"


@pytest.fixture
async def throttled_api(settings: Settings) -> AsyncIterator[Api]:
    application = create_app(settings.model_copy(update={"submit_url_max_per_minute": 2}))
    async with LifespanManager(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as client:
            yield Api(client=client, database=application.state.database)


async def test_submit_url_is_throttled_per_user(throttled_api: Api) -> None:
    ann, bob = await throttled_api.sign_up("ann@example.com"), await throttled_api.sign_up("bob@example.com")

    anns = [await throttled_api.post(SUBMIT, {"u": f"https://example.com/{number}"}, token=ann) for number in range(3)]
    bobs = await throttled_api.post(SUBMIT, {"u": "https://example.com/bob"}, token=bob)

    assert [error_codes(body) for body in anns] == [[], [], ["RATE_LIMITED"]]
    assert anns[2]["errors"][0]["extensions"]["retryAfter"] >= 1
    assert error_codes(bobs) == []

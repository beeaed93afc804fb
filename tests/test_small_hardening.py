"""Smaller protections: LIKE patterns within SQLite's limit, nosniff on every response, a CSP and no framing
for GraphiQL, and request paths that cannot forge a line of the text log."""

import logging

import pytest

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

"""The cost budget measures what will run: for any nesting of pages and any way a client writes a page size
(an int, a float with no fraction, an exponent, a default, a literal), the cost the server reports equals the
cost of the same document with the values execution sees written in as literals."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.settings import Settings
from tests.live import live_server_in_thread

WAYS = ("int", "float", "exponent", "default", "literal", "absent")


@st.composite
def pages(draw: st.DrawFn) -> list[tuple[str, int]]:
    """One to three nested pages of tasks, each with its size and the way it is written."""
    return [(draw(st.sampled_from(WAYS)), draw(st.integers(0, 150))) for _ in range(draw(st.integers(1, 3)))]


def written(levels: list[tuple[str, int]]) -> tuple[str, str]:
    """The request body as a client sends it, and the body with the executed values as literals."""
    definitions, values, selection, literal = [], [], "id", "id"
    for number, (way, size) in reversed(list(enumerate(levels))):
        name = f"p{number}"
        if way == "absent":
            argument = literal_argument = ""
        elif way == "literal":
            argument = literal_argument = f"(first: {size})"
        else:
            argument, literal_argument = f"(first: ${name})", f"(first: {size})"
            definitions.append(f"${name}: Int = {size}" if way == "default" else f"${name}: Int")
            if way != "default":
                values.append(f'"{name}": ' + {"int": f"{size}", "float": f"{size}.0", "exponent": f"{size}e0"}[way])
        selection = f"tasks{argument} {{ totalCount edges {{ node {{ id owner {{ {selection} }} }} }} }}"
        literal = f"tasks{literal_argument} {{ totalCount edges {{ node {{ id owner {{ {literal} }} }} }} }}"
    header = f"query({', '.join(definitions)})" if definitions else "query"
    extensions = '"extensions": {"cost": true}'
    return (f'{{"query": "{header} {{ {selection} }}", "variables": {{{", ".join(values)}}}, {extensions}}}',
            f'{{"query": "{{ {literal} }}", {extensions}}}')


def reported_cost(body: dict[str, Any]) -> int:
    if "extensions" in body and "cost" in body["extensions"]:
        return int(body["extensions"]["cost"]["requested"])
    error = body["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", error
    return int(error["extensions"]["cost"])


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx.Client]:
    with live_server_in_thread(settings) as (server, _), \
            httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client:
        yield client


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(levels=pages())
def test_the_cost_of_a_request_is_the_cost_of_what_it_executes(http: httpx.Client, levels: list[tuple[str, int]]
                                                                ) -> None:
    sent, executed = written(levels)
    headers = {"content-type": "application/json"}

    as_sent = http.post("/graphql", content=sent, headers=headers).json()
    as_executed = http.post("/graphql", content=executed, headers=headers).json()

    assert reported_cost(as_sent) == reported_cost(as_executed)

"""OpenTelemetry spans, when an OTLP endpoint is configured: the request, the operation, parsing,
validation, resolvers and each SQL statement, in one trace, with no password in any attribute."""

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graph.app import create_app
from tests.api import PASSWORD, Api
from tests.conftest import make_settings

ME = "query Me { me { id email } }"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    # The process's provider can be set once; the app uses whichever is set, as it would the OTLP one.
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


@pytest.fixture
async def traced(database_url: str, data_dir: Path, exporter: InMemorySpanExporter) -> AsyncIterator[Api]:
    # The standard executor, whose resolvers pass through the tracing middleware (compiled plans do not).
    settings = make_settings(database_url, data_dir, otel_exporter_otlp_endpoint="http://127.0.0.1:4318",
                             compiled_execution=False)
    app = create_app(settings)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://test") as client:
        yield Api(client=client, database=app.state.database)


def attributes(spans: Sequence[ReadableSpan]) -> str:
    return " ".join(f"{key}={value!s}" for span in spans for key, value in (span.attributes or {}).items())


async def test_a_query_is_one_trace_from_the_request_down_to_each_statement(
    traced: Api, exporter: InMemorySpanExporter
) -> None:
    # given
    token = await traced.sign_up("ann@example.com")
    exporter.clear()

    # when
    await traced.data(ME, token=token)

    # then
    spans = exporter.get_finished_spans()
    names = [span.name for span in spans]
    assert "POST /graphql" in names
    assert {"GraphQL Query: Me", "GraphQL Parsing", "GraphQL Validation", "GraphQL Resolving: me"} <= set(names)
    statements = [span for span in spans if {"db.statement", "db.query.text"} & set(span.attributes or {})]
    assert len(statements) >= 2  # the token's account, then the user (a DataLoader batch)
    assert len({span.context.trace_id for span in spans}) == 1


async def test_no_password_reaches_a_span(traced: Api, exporter: InMemorySpanExporter) -> None:
    # given
    await traced.sign_up("ann@example.com")
    exporter.clear()

    # when
    await traced.login("ann@example.com")

    # then
    spans = exporter.get_finished_spans()
    assert "GraphQL Resolving: login" in [span.name for span in spans]
    assert PASSWORD not in attributes(spans)


async def test_a_repeated_query_is_traced_through_parsing_and_validation_with_compiled_execution_on(
    database_url: str, data_dir: Path, exporter: InMemorySpanExporter
) -> None:
    # given: compiled plans on, and a document the server has already run from its plan
    settings = make_settings(database_url, data_dir, otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    app = create_app(settings)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://test") as client:
        api = Api(client=client, database=app.state.database)
        token = await api.sign_up("ann@example.com")
        await api.data(ME, token=token)
        exporter.clear()

        # when
        await api.data(ME, token=token)

    # then: the full path ran it, not the prepared one that would skip both
    names = {span.name for span in exporter.get_finished_spans()}
    assert {"GraphQL Query: Me", "GraphQL Parsing", "GraphQL Validation"} <= names

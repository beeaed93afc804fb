"""OpenTelemetry traces, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (and the `otel` extra installed).

Spans come from the libraries' own instrumentation: the ASGI middleware's for
each request, Strawberry's extension for the operation, parsing, validation
and each resolver, and SQLAlchemy's for each statement (so each DataLoader
batch shows as its one SELECT). Queries run from compiled plans
(graph/engine/compiled.py) do not pass through graphql-core's resolver middleware:
they show the request, parsing, validation and SQL spans, without resolver spans.

OpenTelemetry is imported only when tracing is on: it is an optional extra.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware
from strawberry.extensions import SchemaExtension

from db.settings import Settings

SERVICE_NAME = "auditgraph"
# Resolver arguments are span attributes: never these (login and register take a password).
SECRET_ARGUMENT = re.compile(r"password|secret|token", re.IGNORECASE)


def tracing_enabled(settings: Settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def without_secrets(arguments: dict[str, Any], _info: Any) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if not SECRET_ARGUMENT.search(name)}


def tracing_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    if not tracing_enabled(settings):
        return []
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return [lambda: OpenTelemetryExtension(arg_filter=without_secrets)]


def tracing_middleware(settings: Settings) -> list[Middleware]:
    if not tracing_enabled(settings):
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    # Without spans for each chunk sent or received: one span per request is what a reader wants.
    return [Middleware(OpenTelemetryMiddleware, exclude_spans=["receive", "send"])]


@contextmanager
def traced_statements(settings: Settings, engines: tuple[AsyncEngine, ...]) -> Iterator[None]:
    """A span for each SQL statement on these engines while the app runs."""
    if not tracing_enabled(settings):
        yield
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    # The instrumentation declares SQLAlchemy below 2.1 and so refuses 2.1, whose cursor events it
    # uses are unchanged (tests/test_tracing.py holds it to that).
    instrumentor.instrument(engines=[engine.sync_engine for engine in engines], skip_dep_check=True)
    try:
        yield
    finally:
        instrumentor.uninstrument()


def install_exporter(settings: Settings) -> None:
    """The process's tracer provider, exporting over OTLP/HTTP in batches (OTEL_* variables tune it)."""
    if not tracing_enabled(settings):
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    endpoint = f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"  # type: ignore[union-attr]
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)

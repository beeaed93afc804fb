"""The ASGI application: create_app(settings) builds everything in its lifespan."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from db import migrations
from db.engine import Database
from db.replica import READ_AFTER_HEADER
from db.settings import Settings
from graph.access.throttle import AccountThrottle
from graph.access.trusted_documents import PersistedQueries, trusted_documents
from graph.http.downloads import download_artifact, download_task_file
from graph.http.graphiql.files import graphiql_routes
from graph.http.health import healthz, readyz
from graph.http.multipart import PREFLIGHT_HEADERS
from graph.http.observed_requests import ObservedRequests
from graph.http.shutdown import FinishRequests, InFlight, Shutdown, watch_commits
from graph.http.view import AuditGraphView
from graph.live.broker import create_broker
from graph.live.housekeeping import Housekeeping
from graph.observability.metrics import forget_this_process, metrics_routes
from graph.observability.sql import count_statements
from graph.observability.tracing import install_exporter, traced_statements, tracing_middleware
from graph.schema import build_schema

logger = logging.getLogger("auditgraph")
WEBSOCKET_KEEP_ALIVE_SECONDS = 15.0
# What a page on another origin may send: its token, a JSON body, an SSE resume, its own request id,
# and the header that lets an upload past the CSRF check (graph/http/multipart.py).
CORS_REQUEST_HEADERS = ["authorization", "content-type", "last-event-id", "x-request-id", READ_AFTER_HEADER,
                        *PREFLIGHT_HEADERS]
# What its code may read: the id to quote, when to retry, and a write's position to send back with its next query.
CORS_EXPOSED_HEADERS = ["x-request-id", "retry-after", READ_AFTER_HEADER]
GC_YOUNG_THRESHOLD = 20_000
# Young collections whose survivors the middle generation gathers before it is
# scanned, in one pause. At 20, a burst of 1,000 connecting subscribers left
# 350,000 objects there, and the scan (236 ms of CPU) stalled every delivery.
GC_MIDDLE_THRESHOLD = 2
# Full collections no more often than before: at most one per 603 young collections (was 441).
GC_OLD_THRESHOLD = 200


class GraphQLEndpoint:
    """Hands HTTP and WebSocket requests to the view the lifespan built."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["app"].state.graphql(scope, receive, send)


def settle_garbage_collector() -> None:
    """Keep full collections rare and short once everything long-lived exists.

    A request allocates thousands of short-lived objects; with the default
    thresholds that triggers a full collection every few requests, each
    walking every module, type and plan in memory (tens of milliseconds of
    p99). Freezing moves what start-up built out of the collector's sight.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, GC_OLD_THRESHOLD)


def create_app(settings: Settings) -> Starlette:
    settings.check_production_ready()
    trusted = trusted_documents(settings)
    schema = build_schema(settings, trusted)
    in_flight = InFlight()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database.from_settings(settings)
        count_statements(database)
        watch_commits(database)
        broker = create_broker(database, settings)
        await broker.start()
        housekeeping = Housekeeping(database, settings)
        await housekeeping.start()
        shutdown = Shutdown()
        app.state.broker = broker
        app.state.settings = settings
        app.state.database = database
        app.state.schema_head = migrations.head_revision()
        app.state.graphql = AuditGraphView(
            schema=schema,
            settings=settings,
            database=database,
            throttle=AccountThrottle(settings),
            broker=broker,
            stopping=shutdown.stopping,
            persisted_queries=PersistedQueries(trusted, database, settings.persisted_queries_max_bytes),
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            allowed_origins=settings.websocket_origins,
            # Uploads only together with the CSRF check in AuditGraphView.run.
            multipart_uploads_enabled=True,
            # graphql-ws "ka" messages; graphql-transport-ws answers client pings.
            keep_alive=True,
            keep_alive_interval=WEBSOCKET_KEEP_ALIVE_SECONDS,
            # Counted by the subscriptions themselves (graph/access/live_access.py), with a coded error.
            max_subscriptions_per_connection=None,
        )
        settle_garbage_collector()
        try:
            with shutdown.on_stop_signals(), traced_statements(settings, database.engines):
                yield
        finally:
            # Requests cut at the shutdown bound: a commit finishing, or a 503 on its way.
            await in_flight.finish(settings.shutdown_timeout_seconds)
            await housekeeping.stop()
            await broker.stop()
            await database.dispose()
            forget_this_process()

    # Outermost the request's span (when tracing), then its id: every response, a CORS refusal too, carries it.
    middleware = [*tracing_middleware(settings), Middleware(ObservedRequests)]
    if settings.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                                     allow_methods=["GET", "POST", "OPTIONS"],
                                     allow_headers=CORS_REQUEST_HEADERS, expose_headers=CORS_EXPOSED_HEADERS))
    middleware.append(Middleware(FinishRequests, in_flight=in_flight))
    return Starlette(
        routes=[
            # First: the router tries each route in turn, and nearly every request is for this one.
            Route("/graphql", GraphQLEndpoint()),
            WebSocketRoute("/graphql", GraphQLEndpoint()),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/files/tasks/{task_id:uuid}", download_task_file),
            Route("/files/artifacts/{artifact_id:uuid}", download_artifact),
            *graphiql_routes(settings),
            *metrics_routes(settings),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )


def create_app_from_environment() -> Starlette:
    """The factory uvicorn workers call: settings come from the environment."""
    settings = Settings()
    install_exporter(settings)
    return create_app(settings)

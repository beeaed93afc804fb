"""Prometheus metrics: what every worker records, and the exposition that adds the queue, read at scrape time.

With several uvicorn workers `auditgraph serve` points PROMETHEUS_MULTIPROC_DIR
at a folder before any worker starts; each worker then writes its figures to
files there and whichever worker answers a scrape reads them all. The metric
objects are module-level, as prometheus-client requires: one per process.
"""

import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.engine import Database
from db.queue_stats import QueueStats, queue_stats
from db.settings import Settings
from graph.observability.workers import MULTIPROCESS_DIR

logger = logging.getLogger("auditgraph.metrics")

# Operation names come from clients: past this many distinct ones a process counts the rest as "other",
# so a client inventing names cannot make the metrics grow without bound.
MAX_OPERATION_NAMES = 200
OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "auditgraph_requests", "Requests (a WebSocket connection is one), by operation and the first error code (OK).",
    ["transport", "operation", "type", "code"],
)
REQUEST_SECONDS = Histogram(
    "auditgraph_request_duration_seconds", "Time from the request's first byte to its last response byte.",
    ["transport", "operation", "type"], buckets=LATENCY_BUCKETS,
)
REQUEST_SQL_STATEMENTS = Histogram(
    "auditgraph_request_sql_statements", "SQL statements one request ran.",
    ["type"], buckets=(0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128),
)
REQUEST_SQL_SECONDS = Histogram(
    "auditgraph_request_sql_seconds", "Time one request spent waiting on SQL statements.",
    ["type"], buckets=LATENCY_BUCKETS,
)
PREPARED_REQUESTS = Counter(
    "auditgraph_prepared_requests",
    "POST requests shaped for a prepared operation (graph/engine/prepared.py): answered past Strawberry's machinery, "
    "or left to the full path (a document not yet run, a check or an execution that failed).",
    ["outcome"],
)
HEAVY_REQUESTS = Gauge(
    "auditgraph_heavy_requests",
    "JSON requests over HEAVY_REQUEST_BYTES, waiting for their turn or running (graph/http/view.py).",
    ["state"], multiprocess_mode="livesum",
)
DATALOADER_BATCH_SIZE = Histogram(
    "auditgraph_dataloader_batch_size", "Keys per DataLoader batch (one SQL statement each).",
    ["loader"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
SUBSCRIPTIONS_OPEN = Gauge(
    "auditgraph_subscriptions_open", "Live subscriptions (WebSocket or SSE) now open.",
    multiprocess_mode="livesum",
)
SUBSCRIPTION_LAG_SECONDS = Histogram(
    "auditgraph_subscription_delivery_lag_seconds",
    "From an event's creation to its delivery to a subscriber that was already listening.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
BROKER_RECONNECTS = Counter(
    "auditgraph_broker_reconnects", "Times the PostgreSQL event listener lost its connection and got it back.",
)
UPLOAD_BYTES = Counter("auditgraph_upload_bytes", "Bytes received in file uploads (documents and artifacts).")
UPLOAD_REFUSALS = Counter("auditgraph_upload_refusals", "Upload requests refused, by error code.", ["code"])

_operation_names: set[str] = set()


def operation_label(name: str | None) -> str:
    if name is None:
        return "anonymous"
    if name in _operation_names:
        return name
    if len(_operation_names) >= MAX_OPERATION_NAMES or not OPERATION_NAME.fullmatch(name):
        return "other"
    _operation_names.add(name)
    return name


@contextmanager
def open_subscription() -> Iterator[Callable[[object], None]]:
    """Counts a subscription as open while it lasts; the callable it gives records an item's delivery lag.

    Only events created after the subscription opened count: a replay of stored events
    after a reconnect is history, not lag.
    """
    opened = datetime.now(UTC)

    def delivered(item: object) -> None:
        created = getattr(item, "created_at", None)
        if isinstance(created, datetime) and created >= opened:
            SUBSCRIPTION_LAG_SECONDS.observe((datetime.now(UTC) - created).total_seconds())

    SUBSCRIPTIONS_OPEN.inc()
    try:
        yield delivered
    finally:
        SUBSCRIPTIONS_OPEN.dec()


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


class QueueCollector(Collector):
    """The queue as it stands now, read from the database on each scrape (the same on every worker)."""

    def __init__(self, stats: QueueStats, now: datetime) -> None:
        self.stats = stats
        self.now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily("auditgraph_tasks", "Tasks by status.", labels=["status"])
        for status, count in self.stats.tasks_by_status.items():
            tasks.add_metric([status.value], count)
        yield tasks
        oldest = self.stats.oldest_queued_at
        age = 0.0 if oldest is None else max(0.0, (self.now - oldest).total_seconds())
        yield GaugeMetricFamily(
            "auditgraph_oldest_queued_task_age_seconds",
            "How long the oldest QUEUED task has waited (0 when none waits).", value=age,
        )
        yield GaugeMetricFamily(
            "auditgraph_expired_leases",
            "PROCESSING tasks whose claim's lease has run out and that are not requeued yet.",
            value=self.stats.expired_leases,
        )


def recorded_metrics() -> bytes:
    """This process's metrics, or with several workers every worker's, merged."""
    if not is_multiprocess():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry)


async def queue_metrics(database: Database) -> bytes:
    try:
        async with database.read() as connection:
            stats = await queue_stats(connection)
    except (SQLAlchemyError, OSError) as error:
        # The rest of the metrics still say what the workers see; the 5xx rate tells the outage.
        logger.warning("metrics: cannot read the queue (%s)", type(error).__name__)
        return b""
    registry = CollectorRegistry()
    registry.register(QueueCollector(stats, datetime.now(UTC)))
    return generate_latest(registry)


async def metrics_endpoint(request: Request) -> Response:
    body = recorded_metrics() + await queue_metrics(request.app.state.database)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_routes(settings: Settings) -> list[Route]:
    return [Route("/metrics", metrics_endpoint)] if settings.metrics_enabled else []


def forget_this_process() -> None:
    """A worker that stops takes its live gauges (open subscriptions) with it."""
    if is_multiprocess():
        mark_process_dead(os.getpid())

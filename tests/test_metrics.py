"""Prometheus metrics at /metrics: off by default, and with several workers every worker's figures in one scrape."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from db.base import utcnow
from db.models import Task
from graph.app import create_app
from tests.cli import free_port, run_cli, start_cli, wait_until_ready
from tests.conftest import make_settings
from tests.factories import make_processing_task, make_user
from tests.live import TRANSPORT_WS, bearer, graphql_socket

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
SUBMIT = "mutation($url: String!) { submitUrl(url: $url) { task { id } } }"
EVENTS = "subscription { myTaskEvents { type } }"
PASSWORD = "correct horse battery"


def value(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_metrics_are_not_served_unless_enabled(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 404


@pytest.fixture
async def metrics_client(database_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url, data_dir, metrics_enabled=True))
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield http


async def test_a_query_and_an_error_are_counted_by_operation_and_code(metrics_client: httpx.AsyncClient) -> None:
    # given
    before = (await metrics_client.get("/metrics")).text

    # when
    await metrics_client.post("/graphql", json={"query": "query Probe { __typename }"})
    await metrics_client.post("/graphql", json={"query": "query Mine { me { id } }"})

    # then
    after = (await metrics_client.get("/metrics")).text
    ok = {"operation": "Probe", "type": "query", "code": "OK"}
    refused = {"operation": "Mine", "type": "query", "code": "UNAUTHENTICATED"}
    assert value(after, "auditgraph_requests_total", **ok) - value(before, "auditgraph_requests_total", **ok) == 1
    assert value(after, "auditgraph_requests_total", **refused) - value(
        before, "auditgraph_requests_total", **refused) == 1
    assert value(after, "auditgraph_request_duration_seconds_count", operation="Probe") >= 1


async def test_the_queue_is_read_from_the_database_at_scrape_time(metrics_client: httpx.AsyncClient) -> None:
    # given: an account with one queued task
    await metrics_client.post("/graphql", json={"query": "mutation { register(email: \"ann@example.com\", "
                                                         f"password: \"{PASSWORD}\") {{ token }} }}"})
    token = (await metrics_client.post("/graphql", json={"query": LOGIN, "variables": {
        "e": "ann@example.com", "p": PASSWORD}})).json()["data"]["login"]["token"]
    await metrics_client.post("/graphql", json={"query": SUBMIT, "variables": {"url": "https://example.com/"}},
                              headers=bearer(token))

    # when
    exposition = (await metrics_client.get("/metrics")).text

    # then
    assert value(exposition, "auditgraph_tasks", status="QUEUED") == 1
    assert value(exposition, "auditgraph_tasks", status="COMPLETED") == 0
    assert value(exposition, "auditgraph_oldest_queued_task_age_seconds") >= 0


def requests_recorded_by_each_worker(folder: Path) -> list[float]:
    """Per worker process, the requests it counted (from its own file in the multiprocess folder)."""
    counts = []
    for path in sorted(folder.glob("counter_*.db")):
        families = MultiProcessCollector.merge([str(path)])
        counts.append(sum(sample.value for family in families for sample in family.samples
                          if sample.name == "auditgraph_requests_total"))
    return counts


async def scraped_until(http: httpx.AsyncClient, condition: Callable[[str], bool]) -> str:
    """The first scrape that satisfies `condition` (the server does what the test asked in its own time)."""
    deadline = time.monotonic() + 10
    while not condition(exposition := (await http.get("/metrics")).text):
        assert time.monotonic() < deadline, exposition
        await asyncio.sleep(0.05)
    return exposition


@pytest.fixture
def two_workers(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "metrics"
    port = free_port()
    settings = {"DATABASE_URL": database_url, "DATA_DIR": str(data_dir), "METRICS_ENABLED": "true",
                "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    created = run_cli("create-user", "--email", "ann@example.com", input=PASSWORD + "\n", **settings)
    assert created.returncode == 0, created.stderr
    server = start_cli("serve", "--port", str(port), "--workers", "2", **settings)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}", folder
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_workers_count_a_query_an_error_and_a_subscription_in_one_scrape(
    two_workers: tuple[str, Path],
) -> None:
    base_url, folder = two_workers
    async with httpx.AsyncClient(base_url=base_url) as http:
        token = (await http.post("/graphql", json={"query": LOGIN, "variables": {
            "e": "ann@example.com", "p": PASSWORD}})).json()["data"]["login"]["token"]

    # when: queries on fresh connections until both workers have served some, one error, one subscription
    sent, deadline = 0, time.monotonic() + 60
    while sum(count > 0 for count in requests_recorded_by_each_worker(folder)) < 2:
        assert time.monotonic() < deadline, "the requests all went to one worker"
        async with httpx.AsyncClient(base_url=base_url) as fresh:
            await fresh.post("/graphql", json={"query": "query Probe { __typename }"})
        sent += 1
    async with httpx.AsyncClient(base_url=base_url) as http:
        await http.post("/graphql", json={"query": "query Mine { me { id } }"})
        async with graphql_socket(base_url.replace("http", "ws") + "/graphql", TRANSPORT_WS,
                                  bearer(token)) as socket:
            await socket.subscribe(EVENTS)
            await scraped_until(http, lambda text: value(text, "auditgraph_subscriptions_open") == 1)
            await http.post("/graphql", json={"query": SUBMIT, "variables": {"url": "https://example.com/"}},
                            headers=bearer(token))
            assert (await socket.next())["data"]["myTaskEvents"]["type"] == "CREATED"
            during = (await http.get("/metrics")).text
        after = await scraped_until(http, lambda text: value(
            text, "auditgraph_requests_total", transport="websocket", type="subscription") == 1)

    # then
    assert value(during, "auditgraph_requests_total", operation="Probe", code="OK") == sent
    assert value(during, "auditgraph_requests_total", operation="Mine", code="UNAUTHENTICATED") == 1
    assert value(during, "auditgraph_subscriptions_open") == 1
    assert value(during, "auditgraph_subscription_delivery_lag_seconds_count") == 1
    assert value(after, "auditgraph_subscriptions_open") == 0
    assert value(after, "auditgraph_tasks", status="QUEUED") == 1


async def test_claims_past_their_lease_are_counted_at_scrape_time(database_url: str, data_dir: Path) -> None:
    # given: a task claimed by a worker whose lease ran out (the requeuing sweep has not run yet)
    app = create_app(make_settings(database_url, data_dir, metrics_enabled=True))
    async with LifespanManager(app):
        async with app.state.database.transaction() as session:
            task = await make_processing_task(session, await make_user(session))
            await session.execute(update(Task).where(Task.id == task.id)
                                  .values(lease_expires_at=utcnow() - timedelta(minutes=5)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            # when
            exposition = (await http.get("/metrics")).text

    # then
    assert value(exposition, "auditgraph_expired_leases") == 1

"""Past one machine: three API processes behind HAProxy, PgBouncer in transaction mode, queries on a streaming
replica (tests/topology.py: every server real, started and stopped here).

Several clients upload, a pipeline of two workers claims, records and completes, dashboards are read after
each write, and every client watches its events live over a WebSocket, while the faults of a multi-host
deployment strike one after another: the replica's replay paused (so it lags) and resumed, an API process
killed and restarted, PgBouncer restarted. Through it all: no event lost or delivered twice, every read
after a write sees it, and nothing fails but what the README calls retryable (a 502/503/504, a cut
connection, SERVICE_UNAVAILABLE), each retried.

PostgreSQL only, by nature: a replica, a pooler and a LISTEN shared by processes have no SQLite form.
"""

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.exceptions import WebSocketException

from tests.cli import run_cli
from tests.live import TRANSPORT_WS, Refused, graphql_socket
from tests.throwaway_postgres import PostgresUnavailable
from tests.topology import SECRET_KEY, ServerUnavailable, Topology, topology

PASSWORD = "correct horse battery staple"
UPLOADERS = 3
# Each uploader goes on until every fault has been injected, and uploads at least this many files.
MIN_UPLOADS = 8
# Uploads (all clients together) made between two steps of the fault sequence, so each fault meets traffic.
UPLOADS_PER_FAULT = 6
SUBSCRIPTIONS_PER_ACCOUNT = 2
RETRYABLE_STATUSES = frozenset({502, 503, 504})
RETRYABLE_CODES = frozenset({"SERVICE_UNAVAILABLE"})
# A mutation retried after its first attempt's answer was lost may find the first attempt's work done.
DONE_BEFORE = frozenset({"CONFLICT", "INVALID_TRANSITION", "ALREADY_EXISTS"})
# Close codes a client answers by reconnecting: the process went away, or asks to be tried again later.
GOING_AWAY = frozenset({None, 1001, 1006, 1011, 1012, 1013})
MAX_ATTEMPTS = 60

REGISTER = "mutation($email: String!, $password: String!) { register(email: $email, password: $password) { token } }"
LOGIN = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }"
UPLOAD = "mutation($file: Upload!) { uploadDocument(file: $file) { task { id } deduplicated } }"
TASK = "query($id: ID!) { task(id: $id) { id status } }"
DASHBOARD = "query { dashboard { totalTasks tasksByStatus { status count } } }"
CLAIM = "mutation { claimNextTask { claimId task { id } } }"
RECORD = """mutation($input: RecordAnalysisInput!) { recordAnalysis(input: $input) { task { id } } }"""
COMPLETE = """mutation($id: ID!, $claim: ID!) {
  updateTaskStatus(taskId: $id, status: COMPLETED, claimId: $claim) { task { id status } } }"""
# The table and index scans the replica ran: the reads of queries it answered (its replay checks read no table).
REPLICA_SCANS = ("SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0)::bigint "
                 "FROM pg_stat_user_tables")
EVENTS = "subscription($after: BigInt) { myTaskEvents(afterPosition: $after) { position } }"


def wal_position(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class Counts:
    requests: int = 0
    retried: int = 0
    done_before: int = 0
    uploads: int = 0
    completed: int = 0
    read_after_write_checks: int = 0
    events_delivered: int = 0
    reconnects: int = 0
    faults: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)


class Client:
    """One account's HTTP client, through HAProxy; it sends back the last write position it was given."""

    def __init__(self, base_url: str, counts: Counts) -> None:
        # A new connection per request: HAProxy then balances every request, not every client.
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        self.counts = counts
        self.token: str | None = None
        self.position: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Apollo-Require-Preflight": "true"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.position:
            headers["X-Read-After"] = self.position
        return headers

    def note(self, position: str | None) -> None:
        if position and (self.position is None or wal_position(position) > wal_position(self.position)):
            self.position = position

    async def call(self, query: str, variables: dict[str, Any] | None = None,
                   file: tuple[str, bytes, str] | None = None) -> dict[str, Any] | None:
        """The data; None when a retry found the work done before, or on an error (counted in `errors`)."""
        retried = False
        for _ in range(MAX_ATTEMPTS):
            if retried:
                await asyncio.sleep(0.2)
            self.counts.requests += 1
            try:
                if file is None:
                    response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                                    headers=self.headers())
                else:
                    operations = {"query": query, "variables": {**(variables or {}), "file": None}}
                    response = await self.http.post(
                        "/graphql", headers=self.headers(), files={"0": file},
                        data={"operations": orjson.dumps(operations).decode(),
                              "map": orjson.dumps({"0": ["variables.file"]}).decode()})
            except httpx.TransportError:
                retried = True
                self.counts.retried += 1
                continue
            if response.status_code in RETRYABLE_STATUSES:
                retried = True
                self.counts.retried += 1
                continue
            self.note(response.headers.get("X-Read-After"))
            body = response.json()
            codes = {error.get("extensions", {}).get("code") for error in body.get("errors", [])}
            if codes and codes <= RETRYABLE_CODES:
                retried = True
                self.counts.retried += 1
                continue
            if codes and retried and codes <= DONE_BEFORE:
                self.counts.done_before += 1
                return None
            if codes:
                self.counts.errors.append(f"{query.split('(')[0][:40]}: {body['errors']}")
                return None
            return body["data"]
        self.counts.errors.append(f"{query[:40]}: no answer after {MAX_ATTEMPTS} attempts")
        return None

    async def close(self) -> None:
        await self.http.aclose()


async def sign_in(client: Client, email: str, register: bool = True) -> None:
    """Registers the account (or finds a lost answer's attempt did) and keeps its token."""
    data = await client.call(REGISTER, {"email": email, "password": PASSWORD}) if register else None
    if data is not None:
        client.token = data["register"]["token"]
        return
    assert client.counts.errors == []
    data = await client.call(LOGIN, {"email": email, "password": PASSWORD})
    assert data is not None, client.counts.errors
    client.token = data["login"]["token"]


async def uploader(client: Client, number: int, counts: Counts, faults_done: asyncio.Event) -> None:
    uploaded: set[str] = set()
    while len(uploaded) < MIN_UPLOADS or not faults_done.is_set():
        content = f"uploader {number}, report {len(uploaded)}\n".encode()
        data = await client.call(UPLOAD, file=(f"report-{len(uploaded)}.txt", content, "text/plain"))
        if data is None:
            continue
        task_id = data["uploadDocument"]["task"]["id"]
        uploaded.add(task_id)
        counts.uploads += 1
        # Read after write, through whichever process and server answers: the task, then the dashboard.
        seen = await client.call(TASK, {"id": task_id})
        counts.read_after_write_checks += 1
        if seen is not None and seen["task"] is None:
            counts.stale_reads.append(f"uploader {number}: task {task_id} not found after its upload")
        dashboard = await client.call(DASHBOARD)
        counts.read_after_write_checks += 1
        if dashboard is not None and dashboard["dashboard"]["totalTasks"] < len(uploaded):
            counts.stale_reads.append(f"uploader {number}: the dashboard counts {dashboard['dashboard']['totalTasks']}"
                                      f" tasks after {len(uploaded)} uploads")


async def pipeline_worker(client: Client, counts: Counts, all_done: Callable[[], Any]) -> None:
    while True:
        data = await client.call(CLAIM)
        claim = None if data is None else data["claimNextTask"]
        if claim is None:
            if await all_done():
                return
            await asyncio.sleep(0.1)
            continue
        task_id, claim_id = claim["task"]["id"], claim["claimId"]
        await client.call(RECORD, {"input": {"taskId": task_id, "claimId": claim_id, "verdict": "APPROVED",
                                             "complianceScore": 90, "summary": "checked"}})
        await client.call(COMPLETE, {"id": task_id, "claim": claim_id})
        counts.completed += 1
        seen = await client.call(TASK, {"id": task_id})
        counts.read_after_write_checks += 1
        if seen is not None and (seen["task"] is None or seen["task"]["status"] != "COMPLETED"):
            counts.stale_reads.append(f"worker: task {task_id} reads {seen['task']} after its completion")


async def subscriber(ws_url: str, token: str, delivered: list[int], counts: Counts) -> None:
    """Watches every event of the account, resuming after the last one it got whenever its socket goes."""
    after = "0"
    while True:
        try:
            async with graphql_socket(ws_url, TRANSPORT_WS, {"authorization": f"Bearer {token}"}) as socket:
                await socket.subscribe(EVENTS, {"after": after})
                while True:
                    payload = await socket.next(timeout=3600)
                    if "errors" in payload:
                        codes = {error.get("extensions", {}).get("code") for error in payload["errors"]}
                        if codes <= RETRYABLE_CODES:
                            break
                        counts.errors.append(f"subscription: {payload['errors']}")
                        return
                    after = payload["data"]["myTaskEvents"]["position"]
                    delivered.append(int(after))
                    counts.events_delivered += 1
        except Refused as refused:
            if refused.code not in GOING_AWAY:
                counts.errors.append(f"subscription refused: {refused.code} {refused.payload}")
                return
        except (OSError, TimeoutError, WebSocketException):
            pass
        counts.reconnects += 1
        await asyncio.sleep(0.2)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.05)


async def inject_faults(servers: Topology, counts: Counts) -> None:
    """Each fault in turn, each met by a few uploads (and their reads) while it lasts. The API process dies
    while the replica lags, so its subscribers catch up, on another process, while the replica is behind."""

    async def traffic() -> None:
        target = counts.uploads + UPLOADS_PER_FAULT
        await until(lambda: counts.uploads >= target)

    await traffic()
    replica = await asyncpg.connect(servers.replica_dsn())
    primary = await asyncpg.connect(servers.primary_dsn())
    try:
        await replica.execute("SELECT pg_wal_replay_pause()")
        counts.faults.append("replica replay paused")
        await traffic()
        victim = servers.apis[1]
        await asyncio.to_thread(victim.kill)
        counts.faults.append("API process killed")
        await traffic()
        await asyncio.to_thread(victim.start)
        counts.faults.append("API process restarted")
        await traffic()
        replayed = await replica.fetchval("SELECT pg_last_wal_replay_lsn()::text")
        written = await primary.fetchval("SELECT pg_current_wal_insert_lsn()::text")
        # The writes made meanwhile are on the primary alone: their reads were answered past the lag.
        assert wal_position(replayed) < wal_position(written)
        await replica.execute("SELECT pg_wal_replay_resume()")
        counts.faults.append("replica replay resumed")
    finally:
        await replica.close()
        await primary.close()
    await traffic()
    await asyncio.to_thread(servers.pgbouncer.stop)
    counts.faults.append("PgBouncer stopped")
    await asyncio.to_thread(servers.pgbouncer.start)
    counts.faults.append("PgBouncer started")
    await traffic()


@pytest.fixture(scope="module")
def servers() -> Iterator[Topology]:
    try:
        with topology(3, LEASE_SECONDS="10", LEASE_CHECK_SECONDS="1", REPLICA_WAIT_SECONDS="0.3",
                      LOG_LEVEL="warning") as started:
            yield started
    except (ServerUnavailable, PostgresUnavailable) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the topology test must run under CI: {error}")
        pytest.skip(f"the topology cannot be started here: {error}")


async def test_nothing_is_lost_duplicated_or_read_stale_through_a_multi_host_topology_under_faults(
        servers: Topology, capsys: pytest.CaptureFixture[str]) -> None:
    # given: accounts (the pipeline's made by an operator), each with a live subscription
    counts = Counts()
    base_url = servers.haproxy.base_url
    ws_url = base_url.replace("http://", "ws://") + "/graphql"
    made = run_cli("create-user", "--email", "pipeline@example.com", "--role", "WORKER", input=PASSWORD + "\n",
                   DATABASE_URL=servers.primary_dsn(), DATA_DIR=str(servers.data_dir), SECRET_KEY=SECRET_KEY)
    assert made.returncode == 0, made.stderr
    uploaders = [Client(base_url, counts) for _ in range(UPLOADERS)]
    for number, client in enumerate(uploaders):
        await sign_in(client, f"uploader{number}@example.com")
    workers = [Client(base_url, counts) for _ in range(2)]
    for client in workers:
        await sign_in(client, "pipeline@example.com", register=False)
    # Two live subscriptions per account, spread by HAProxy across the processes.
    watchers = [*uploaders, workers[0]] * SUBSCRIPTIONS_PER_ACCOUNT
    delivered: list[list[int]] = [[] for _ in watchers]
    subscriptions = [asyncio.create_task(subscriber(ws_url, client.token or "", seen, counts))
                     for client, seen in zip(watchers, delivered, strict=True)]
    database = await asyncpg.connect(servers.primary_dsn())
    replica = await asyncpg.connect(servers.replica_dsn())
    replica_reads_before = await replica.fetchval(REPLICA_SCANS)
    uploads_done = asyncio.Event()

    asking = asyncio.Lock()  # the two pipeline workers share the one connection

    async def all_done() -> bool:
        async with asking:
            open_tasks = await database.fetchval("SELECT count(*) FROM tasks WHERE status <> 'COMPLETED'")
        return uploads_done.is_set() and open_tasks == 0

    try:
        # when: uploads, the pipeline and the faults, all at once
        faults_done = asyncio.Event()
        pipeline = [asyncio.create_task(pipeline_worker(client, counts, all_done)) for client in workers]

        async def faults() -> None:
            await inject_faults(servers, counts)
            faults_done.set()

        injector = asyncio.create_task(faults())
        await asyncio.gather(*(uploader(client, number, counts, faults_done)
                               for number, client in enumerate(uploaders)), injector)
        uploads_done.set()
        await asyncio.gather(*pipeline)

        # then: each subscriber got exactly the log of the tasks it may see, in order, once each
        expected = []
        for number in range(UPLOADERS):
            rows = await database.fetch(
                "SELECT position FROM task_events JOIN users ON users.id = task_events.user_id "
                "WHERE users.email = $1 ORDER BY position", f"uploader{number}@example.com")
            expected.append([row["position"] for row in rows])
        expected.append([row["position"] for row in await database.fetch(
            "SELECT position FROM task_events ORDER BY position")])
        expected *= SUBSCRIPTIONS_PER_ACCOUNT
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until(lambda: all(len(got) >= len(wanted) for got, wanted
                                                     in zip(delivered, expected, strict=True))), 60)
        # A server session reports its statistics when idle, within PostgreSQL's 10 s at most.
        for _ in range(25):
            replica_reads = await replica.fetchval(REPLICA_SCANS) - replica_reads_before
            if replica_reads > UPLOADS_PER_FAULT:
                break
            await asyncio.sleep(1)
    finally:
        for task in subscriptions:
            task.cancel()
        await asyncio.gather(*subscriptions, return_exceptions=True)
        await database.close()
        await replica.close()
        for client in [*uploaders, *workers]:
            await client.close()

    with capsys.disabled():
        print(f"\ntopology: {counts.requests} requests ({counts.retried} retried, {counts.done_before} found done "
              f"before), {counts.uploads} uploads, {counts.completed} tasks completed, "
              f"{counts.events_delivered} events delivered over {counts.reconnects} reconnects, "
              f"{counts.read_after_write_checks} read-after-write checks, {replica_reads} table scans on the "
              f"replica, {len(counts.faults)} faults injected "
              f"({', '.join(counts.faults)})")
    assert counts.errors == []
    assert counts.stale_reads == []
    assert len(counts.faults) == 6
    # The queries did read the replica. At least three steps' uploads (each followed by two queries, each query
    # a scan or more) happen while it replays; a replica that lags past REPLICA_WAIT_SECONDS sends some elsewhere.
    assert replica_reads > UPLOADS_PER_FAULT
    for got, wanted in zip(delivered, expected, strict=True):
        assert got == wanted
    assert sum(len(wanted) for wanted in expected[:UPLOADERS]) == len(expected[UPLOADERS])

"""`python -m bench.notify`: the NOTIFY ceiling. Events committed per second and delivered to live subscribers
with 1, 2 and 4 API processes on one PostgreSQL, and PostgreSQL's CPU per event.

    python -m bench.notify [--processes 1,2,4] [--seconds 20] [--subscribers 2] [--pipeline 8] [--progress 2]
                           [--record]

For each count of processes: that many `auditgraph serve` processes (real uvicorn, one worker each) on one
throwaway PostgreSQL (tests/throwaway_postgres.py: fsync and synchronous_commit off, so a commit costs no disk
wait and the ceiling is CPU). Each process holds --subscribers `myTaskEvents` subscriptions
(graphql-transport-ws, signed in as a WORKER: each sees every event), in a client process of their own. The
load generator (this process) runs --pipeline loops of real mutations, each request to the next process in
turn as a load balancer would: `submitUrl` (a CREATED event), `claimNextTask` (STATUS_CHANGED), --progress
`reportProgress` (PROGRESS each) and `updateTaskStatus COMPLETED` (STATUS_CHANGED): one event, one
transaction and one NOTIFY per mutation, as fast as the servers answer (closed loop).

Measured over the window of --seconds, after 3 s of warm-up:
  committed/s   events written to the log (its head moved by that much) per second
  delivered/s   those events divided by the time until the slowest subscriber held the last of them
  lag p50/p99   from an event's createdAt (inside its transaction) to a subscriber holding it
  PG CPU/event  user + system CPU of every PostgreSQL process (/proc/<pid>/stat) per committed event: the
                mutations' statements, the NOTIFY queue and its delivery to each LISTEN connection, and the
                subscribers' reads of the log
  API CPU/event the same for the API processes together
  ... cores     CPU seconds per second of PostgreSQL, the API processes, the load generator, the subscribers'
                client process
  ceiling/s     the events per second this machine's CPUs would carry if PostgreSQL and the API had them all
                (CPUs / (PG + API CPU per event)): the load generator and the clients run elsewhere in
                production, and on a shared machine the measured rate says more about the neighbours
  machine busy  all CPUs (/proc/stat: anything else running on the machine counts too)

Then the floor: the NOTIFY path alone, with no API in the way. --pipeline asyncpg connections commit, as fast
as they can, transactions that hold nothing but one `pg_notify` on the events' channel with a payload of the
size the API sends (db/events.py: EventNotice), while 1, 2 and 4 LISTEN connections (one per API process
there would be) hear them in a process of their own. Its rows are PostgreSQL's own ceiling for notifications
on this machine, which the API's rows can be held against.
"""

import argparse
import asyncio
import io
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.machine import background_load, cpu_times
from bench.processes import ServerProcess, process_tree_cpu_seconds
from bench.soak_load import CLAIM, COMPLETE, PROGRESS, SUBMIT_URL
from db.events import EVENT_CHANNEL, EventNotice
from tests.cli import free_port, wait_until_ready
from tests.throwaway_postgres import postgres_cluster

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
DATABASE = "auditgraph_notify"
PASSWORD = "notify password 12345"
SECRET = "notify-secret-key-that-is-long-enough-0123456789"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
EVENTS = "subscription { myTaskEvents { position createdAt } }"
WARM_UP_SECONDS = 3.0
# What the API notifies per event (db/events.py), with a position of the size a busy log reaches.
NOTICE_PAYLOAD = EventNotice(uuid.UUID(int=1), 1, uuid.UUID(int=2), 10_000_000).encode()
DRAIN_TIMEOUT_SECONDS = 60.0


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__.split("\n")[0])
    parser.add_argument("--processes", default="1,2,4", help="API process counts to measure (default 1,2,4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per count (default 20)")
    parser.add_argument("--subscribers", type=int, default=2, help="myTaskEvents subscribers per process (default 2)")
    parser.add_argument("--pipeline", type=int, default=8, help="concurrent pipeline loops (default 8)")
    parser.add_argument("--progress", type=int, default=2, help="reportProgress calls per task (default 2)")
    parser.add_argument("--record", action="store_true", help="append the printout to bench/RESULTS.md")
    args = parser.parse_args(argv)
    args.counts = [int(part) for part in args.processes.split(",")]
    return args


def server_environment(url: str, data_dir: Path) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "DATA_DIR", "SECRET_KEY", "ENVIRONMENT", "METRICS_ENABLED"}}
    # The pipeline submits as fast as it can, and every subscriber signs in as the one watcher.
    return keep | {"DATABASE_URL": url, "DATA_DIR": str(data_dir), "SECRET_KEY": SECRET, "LOG_LEVEL": "warning",
                   "SUBMIT_URL_MAX_PER_MINUTE": "1000000000", "MAX_CONNECTIONS_PER_USER": "1000"}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "graph.cli", *args], env=env, input=stdin, text=True, check=True,
                   capture_output=True, cwd=PROJECT_ROOT)


# The subscribers' process -------------------------------------------------------------------------------------

async def _subscribe(url: str, token: str) -> ClientConnection:
    connection = await connect(url, subprotocols=["graphql-transport-ws"], max_queue=None,  # type: ignore[list-item]
                               open_timeout=60, ping_interval=None)
    await connection.send(orjson.dumps({"type": "connection_init", "payload": {"token": token}}).decode())
    assert orjson.loads(await connection.recv())["type"] == "connection_ack"
    await connection.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}).decode())
    return connection


async def _receive(connection: ClientConnection, held: list[tuple[int, float, str]], newest: list[int],
                   index: int) -> None:
    async for message in connection:
        received = time.time()
        event = orjson.loads(message)["payload"]["data"]["myTaskEvents"]
        held.append((int(event["position"]), received, event["createdAt"]))
        newest[index] = int(event["position"])


async def _follow(urls: list[str], token: str, per_process: int, inbox: Any, outbox: Any) -> None:
    connections = [await _subscribe(url.replace("http", "ws", 1) + "/graphql", token)
                   for url in urls for _ in range(per_process)]
    held: list[list[tuple[int, float, str]]] = [[] for _ in connections]
    newest = [0] * len(connections)
    receivers = [asyncio.create_task(_receive(c, held[i], newest, i)) for i, c in enumerate(connections)]
    await asyncio.sleep(1)  # every subscription reaches its wait
    outbox.put(len(connections))
    last = await asyncio.get_running_loop().run_in_executor(None, inbox.get)
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while min(newest, default=last) < last and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for receiver in receivers:
        receiver.cancel()
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    outbox.put(held)


def subscribers_process(urls: list[str], token: str, per_process: int, inbox: Any, outbox: Any) -> None:
    asyncio.run(_follow(urls, token, per_process, inbox, outbox))


# The load generator -------------------------------------------------------------------------------------------

@dataclass
class Pipeline:
    urls: list[str]
    owner: str
    worker: str
    progress: int
    http: httpx.AsyncClient
    requests: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self._next = count()

    async def call(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any] | None:
        url = self.urls[next(self._next) % len(self.urls)] + "/graphql"
        self.requests += 1
        body = (await self.http.post(url, json={"query": query, "variables": variables},
                                     headers={"Authorization": f"Bearer {token}"})).json()
        if body.get("errors"):
            self.errors += 1
            return None
        return body["data"]  # type: ignore[no-any-return]

    async def loop(self, stop: asyncio.Event, seed: int) -> None:
        for serial in count():
            if stop.is_set():
                return
            await self.call(SUBMIT_URL, {"u": f"https://notify.example/{seed}/{serial}"}, self.owner)
            data = await self.call(CLAIM, {}, self.worker)
            claim = data and data["claimNextTask"]
            if not claim:
                continue
            task, claim_id = claim["task"]["id"], claim["claimId"]
            for percent in range(1, self.progress + 1):
                await self.call(PROGRESS, {"t": task, "c": claim_id, "p": percent * 10}, self.worker)
            await self.call(COMPLETE, {"t": task, "c": claim_id}, self.worker)


@dataclass
class Row:
    processes: int
    subscribers: int
    committed: int
    seconds: float
    delivered_seconds: float
    lost: int
    lag: list[float]
    pg_cpu: float
    api_cpu: float
    load_cpu: float
    client_cpu: float
    busy: float
    requests: int
    errors: int


async def log_head(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM task_events"))
    finally:
        await connection.close()


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(args: argparse.Namespace, processes: int, env: dict[str, str], dsn: str, postgres_pid: int,
                  tokens: dict[str, str]) -> Row:
    servers = [ServerProcess(f"api{index}", [], env, free_port(), BENCH_DIR / ".work" / "notify" / f"api{index}.log",
                             PROJECT_ROOT) for index in range(processes)]
    for server in servers:
        server.argv = [sys.executable, "-m", "graph.cli", "serve", "--port", str(server.port)]
    spawn = multiprocessing.get_context("spawn")
    inbox, outbox = spawn.Queue(), spawn.Queue()
    client: multiprocessing.process.BaseProcess | None = None
    try:
        for server in servers:
            await server.start()
            assert server.process is not None
            await asyncio.to_thread(wait_until_ready, server.base_url, server.process)
        urls = [server.base_url for server in servers]
        client = spawn.Process(target=subscribers_process, daemon=True,
                               args=(urls, tokens["watcher"], args.subscribers, inbox, outbox))
        client.start()
        loop = asyncio.get_running_loop()
        subscribed = await loop.run_in_executor(None, outbox.get, True, 120)

        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=args.pipeline * 2)) as http:
            pipeline = Pipeline(urls, tokens["owner"], tokens["pipeline"], args.progress, http)
            stop = asyncio.Event()
            loops = [asyncio.create_task(pipeline.loop(stop, index)) for index in range(args.pipeline)]
            await asyncio.sleep(WARM_UP_SECONDS)

            def cpu() -> tuple[float, float, float, float]:
                return (process_tree_cpu_seconds(postgres_pid),
                        sum(process_tree_cpu_seconds(server.pid) for server in servers),
                        own_cpu_seconds(), process_tree_cpu_seconds(client.pid or 0))

            requests_before, errors_before = pipeline.requests, pipeline.errors
            head_before, cpu_before, busy_before = await log_head(dsn), cpu(), cpu_times()
            started_wall, started = time.time(), time.monotonic()
            await asyncio.sleep(args.seconds)
            head_after, cpu_after, busy_after = await log_head(dsn), cpu(), cpu_times()
            seconds = time.monotonic() - started
            requests, errors = pipeline.requests - requests_before, pipeline.errors - errors_before
            stop.set()
            await asyncio.gather(*loops)
        final = await log_head(dsn)
        inbox.put(final)
        held: list[list[tuple[int, float, str]]] = await loop.run_in_executor(
            None, outbox.get, True, DRAIN_TIMEOUT_SECONDS + 60)
        client.join(timeout=30)
    finally:
        if client is not None and client.is_alive():
            client.terminate()
        for server in servers:
            server.stop()

    window = range(head_before + 1, head_after + 1)
    committed = len(window)
    lag: list[float] = []
    finished = started_wall
    lost = 0
    for deliveries in held:
        in_window = {position: (received, created) for position, received, created in deliveries
                     if position in window}
        lost += committed - len(in_window)
        for received, created in in_window.values():
            lag.append(received - datetime.fromisoformat(created).timestamp())
            finished = max(finished, received)
    pg, api, load, clients = (after - before for after, before in zip(cpu_after, cpu_before, strict=True))
    busy = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1])
    return Row(processes, subscribed, committed, seconds, finished - started_wall, lost, sorted(lag), pg, api, load,
               clients, busy, requests, errors)


# The floor: NOTIFY and LISTEN alone ----------------------------------------------------------------------------

async def _hear(dsn: str, listeners: int, inbox: Any, outbox: Any) -> None:
    heard = [0] * listeners
    finished = [0.0] * listeners

    def listener(index: int) -> Any:
        def count(*_: object) -> None:
            heard[index] += 1
            finished[index] = time.time()
        return count

    connections = [await asyncpg.connect(dsn) for _ in range(listeners)]
    for index, connection in enumerate(connections):
        await connection.add_listener(EVENT_CHANNEL, listener(index))
    outbox.put("listening")
    expected = await asyncio.get_running_loop().run_in_executor(None, inbox.get)
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while min(heard) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    outbox.put((heard, max(finished)))
    # Open until PostgreSQL's CPU is read: an ended backend's CPU leaves /proc with it.
    await asyncio.get_running_loop().run_in_executor(None, inbox.get)
    for connection in connections:
        await connection.close()


def listeners_process(dsn: str, listeners: int, inbox: Any, outbox: Any) -> None:
    asyncio.run(_hear(dsn, listeners, inbox, outbox))


async def _notify(connection: asyncpg.Connection, stop: asyncio.Event, committed: list[int]) -> None:
    while not stop.is_set():
        async with connection.transaction():
            await connection.execute("SELECT pg_notify($1, $2)", EVENT_CHANNEL, NOTICE_PAYLOAD)
        committed[0] += 1


@dataclass
class FloorRow:
    listeners: int
    committed: int
    seconds: float
    heard_seconds: float
    unheard: int
    pg_cpu: float
    busy: float


async def floor(args: argparse.Namespace, listeners: int, dsn: str, postgres_pid: int) -> FloorRow:
    """--seconds of notifications from --pipeline connections, heard by `listeners` LISTEN connections."""
    spawn = multiprocessing.get_context("spawn")
    inbox, outbox = spawn.Queue(), spawn.Queue()
    client = spawn.Process(target=listeners_process, daemon=True, args=(dsn, listeners, inbox, outbox))
    client.start()
    loop = asyncio.get_running_loop()
    connections: list[asyncpg.Connection] = []
    try:
        await loop.run_in_executor(None, outbox.get, True, 60)
        connections = [await asyncpg.connect(dsn) for _ in range(args.pipeline)]
        stop, committed = asyncio.Event(), [0]
        pg_before, busy_before = process_tree_cpu_seconds(postgres_pid), cpu_times()
        started_wall, started = time.time(), time.monotonic()
        writers = [asyncio.create_task(_notify(connection, stop, committed)) for connection in connections]
        await asyncio.sleep(args.seconds)
        stop.set()
        await asyncio.gather(*writers)
        seconds = time.monotonic() - started
        inbox.put(committed[0])
        heard, last_heard = await loop.run_in_executor(None, outbox.get, True, DRAIN_TIMEOUT_SECONDS + 60)
        pg, busy_after = process_tree_cpu_seconds(postgres_pid) - pg_before, cpu_times()
        inbox.put("close")
        client.join(timeout=30)
    finally:
        for connection in connections:
            await connection.close()
        if client.is_alive():
            client.terminate()
    busy = (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1])
    return FloorRow(listeners, committed[0], seconds, last_heard - started_wall,
                    sum(committed[0] - count for count in heard), pg, busy)


def floor_table(rows: list[FloorRow]) -> list[str]:
    lines = [f"{'LISTEN connections':>18} {'notified/s':>10} {'heard/s':>8} {'unheard':>7} "
             f"{'PG CPU/notification':>19} {'machine busy':>12} {'ceiling/s':>9}"]
    for row in rows:
        lines.append(f"{row.listeners:>18} {row.committed / row.seconds:>10.0f} "
                     f"{row.committed / row.heard_seconds:>8.0f} {row.unheard:>7} "
                     f"{row.pg_cpu / max(row.committed, 1) * 1e6:>17.0f}µs {row.busy:>11.0%} "
                     f"{len(os.sched_getaffinity(0)) * row.committed / row.pg_cpu:>9.0f}")
    return lines


def table(rows: list[Row]) -> list[str]:
    lines = [f"{'API processes':>13} {'subscribers':>11} {'committed/s':>11} {'delivered/s':>11} {'lost':>4} "
             f"{'lag p50':>8} {'lag p99':>8} {'PG CPU/event':>12} {'API CPU/event':>13} {'PG cores':>8} "
             f"{'API cores':>9} {'load gen cores':>14} {'client cores':>12} {'machine busy':>12} {'errors':>6} "
             f"{'ceiling/s':>9}"]
    for row in rows:
        per_event = max(row.committed, 1)
        p50 = f"{statistics.median(row.lag) * 1000:.1f}ms" if row.lag else "-"
        p99 = f"{row.lag[max(int(len(row.lag) * 0.99) - 1, 0)] * 1000:.1f}ms" if row.lag else "-"
        delivered = f"{row.committed / row.delivered_seconds:.0f}" if row.subscribers else "-"
        lines.append(
            f"{row.processes:>13} {row.subscribers:>11} {row.committed / row.seconds:>11.0f} "
            f"{delivered:>11} {row.lost:>4} {p50:>8} {p99:>8} "
            f"{row.pg_cpu / per_event * 1e6:>10.0f}µs {row.api_cpu / per_event * 1e6:>11.0f}µs "
            f"{row.pg_cpu / row.seconds:>8.2f} {row.api_cpu / row.seconds:>9.2f} {row.load_cpu / row.seconds:>14.2f} "
            f"{row.client_cpu / row.seconds:>12.2f} {row.busy:>11.0%} {row.errors:>6} "
            f"{len(os.sched_getaffinity(0)) * per_event / (row.pg_cpu + row.api_cpu):>9.0f}")
    return lines


async def bench(args: argparse.Namespace, out: io.StringIO) -> None:
    def say(line: str = "") -> None:
        print(line, flush=True)
        out.write(line + "\n")

    with postgres_cluster() as cluster, tempfile.TemporaryDirectory(prefix="auditgraph-notify-") as folder:
        postgres = cluster.server
        admin = await asyncpg.connect(postgres.dsn("postgres"))
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        await admin.close()
        assert cluster.process is not None
        env = server_environment(postgres.url(DATABASE), Path(folder))
        cli(env, "migrate")
        users = {"owner": "owner@notify.example", "pipeline": "pipeline@notify.example",
                 "watcher": "watcher@notify.example"}
        for name, email in users.items():
            role = [] if name == "owner" else ["--role", "WORKER"]
            cli(env, "create-user", "--email", email, *role, stdin=PASSWORD + "\n")
        login = ServerProcess("login", [], env, free_port(), BENCH_DIR / ".work" / "notify" / "login.log", PROJECT_ROOT)
        login.argv = [sys.executable, "-m", "graph.cli", "serve", "--port", str(login.port)]
        try:
            await login.start()
            async with httpx.AsyncClient(base_url=login.base_url, timeout=30) as http:
                tokens = {name: (await http.post("/graphql", json={"query": LOGIN, "variables": {
                    "e": email, "p": PASSWORD}})).json()["data"]["login"]["token"] for name, email in users.items()}
        finally:
            login.stop()

        say(f"bench.notify: {args.seconds:.0f} s per row after {WARM_UP_SECONDS:.0f} s of warm-up; "
            f"{args.pipeline} pipeline loops (submitUrl, claimNextTask, {args.progress} x reportProgress, "
            f"updateTaskStatus: one event each); {args.subscribers} myTaskEvents subscribers per API process; "
            f"{os.cpu_count()} CPUs, {background_load():.0%} busy before the run")
        rows = []
        for processes in args.counts:
            rows.append(await measure(args, processes, env, postgres.dsn(DATABASE), cluster.process.pid, tokens))
            say(table(rows)[-1] if len(rows) > 1 else "\n".join(table(rows)))
        say()
        say(f"the floor: {args.pipeline} connections committing one pg_notify each per transaction "
            f"({len(NOTICE_PAYLOAD)}-byte payload), for {args.seconds:.0f} s per row")
        floors = []
        for listeners in args.counts:
            floors.append(await floor(args, listeners, postgres.dsn(DATABASE), cluster.process.pid))
            say(floor_table(floors)[-1] if len(floors) > 1 else "\n".join(floor_table(floors)))


def record(text: str, args: argparse.Namespace) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python -m bench.notify", *sys.argv[1:]]).replace(" --record", "")
    with open(BENCH_DIR / "RESULTS.md", "a") as results:
        results.write(f"\n## {stamp} — the NOTIFY ceiling (`{command}`)\n\n```\n{text}```\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    out = io.StringIO()
    asyncio.run(bench(args, out))
    if args.record:
        record(out.getvalue(), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hold many concurrent subscribers on one uvicorn worker, fire events, report latency and memory.

    python -m bench.subscribers [--subscribers 1000] [--tasks 10] [--events 50]

The server is a real `auditgraph serve` child process (one worker, through
bench/observed_serve.py, which reports its GC pauses and, with --heap, its
traced Python heap) on the embedded SQLite default, or on PostgreSQL when
DATABASE_URL is set. A WORKER reports progress over HTTP; every subscriber
(graphql-transport-ws) follows one task's events. The subscribers are spread
over --clients processes, so that the latency measures the server and not one
client process reading a thousand sockets in turn. Latency runs from the
event's createdAt, taken inside the writing transaction just before it
commits, to the moment a client holds the message (same host, same clock): an
upper bound of commit-to-receipt. Server CPU is the worker's user + system
time while the events fan out (the writes included); memory per idle
subscriber is the growth of the worker's RSS (and traced heap) as they connect.
"""

import argparse
import asyncio
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.cli import wait_until_ready

PASSWORD = "benchmark password 123"
SECRET = "benchmark-secret-key-that-is-long-enough-0123456789"
KIB, MIB = 1024, 1024 * 1024
SUBSCRIPTION = "subscription($taskId: ID!) { taskEvents(taskId: $taskId) { sequence createdAt } }"


def environment(data_dir: Path, subscribers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATA_DIR", "SECRET_KEY", "ENVIRONMENT"}}
    # Every subscriber signs in as the one WORKER: allow it that many live connections.
    return env | {"DATA_DIR": str(data_dir), "SECRET_KEY": SECRET, "LOG_LEVEL": "warning",
                  "MAX_CONNECTIONS_PER_USER": str(subscribers)}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "graph.cli", *args], env=env, input=stdin, text=True,
                   check=True, capture_output=True)


def memory(pid: int) -> int:
    """The process's resident set, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            return int(value.split()[0])
    raise LookupError("no VmRSS")


def observe(pid: int, report: Path) -> dict[str, Any]:
    """The server's report on itself (bench/observed_serve.py): GC pauses since the last one, traced heap."""
    report.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while not report.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the server wrote no report")
        time.sleep(0.05)
    return orjson.loads(report.read_bytes())  # type: ignore[no-any-return]


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = (await http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)).json()
    assert "errors" not in body, body
    return body["data"]


async def login(http: httpx.AsyncClient, email: str) -> str:
    data = await graphql(http, "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                         {"e": email, "p": PASSWORD})
    return data["login"]["token"]


async def open_subscriber(url: str, token: str, task_id: str) -> ClientConnection:
    connection = await connect(url, subprotocols=["graphql-transport-ws"], max_queue=None,  # type: ignore[list-item]
                               open_timeout=60, ping_interval=None)
    await connection.send(orjson.dumps({"type": "connection_init", "payload": {"token": token}}).decode())
    assert orjson.loads(await connection.recv())["type"] == "connection_ack"
    await connection.send(orjson.dumps({"id": "1", "type": "subscribe",
                                        "payload": {"query": SUBSCRIPTION, "variables": {"taskId": task_id}}}).decode())
    return connection


async def collect(connection: ClientConnection, expected: int, latencies: list[float]) -> None:
    for _ in range(expected):
        message = orjson.loads(await connection.recv())
        received = time.time()
        created = datetime.fromisoformat(message["payload"]["data"]["taskEvents"]["createdAt"]).timestamp()
        latencies.append(received - created)


async def subscribe_and_collect(url: str, token: str, task_ids: list[str], expected: int, outbox: Any) -> None:
    connections: list[ClientConnection] = []
    for offset in range(0, len(task_ids), 100):
        connections += await asyncio.gather(*(open_subscriber(url, token, t) for t in task_ids[offset:offset + 100]))
    outbox.put(len(connections))
    latencies: list[float] = []
    await asyncio.gather(*(collect(c, expected, latencies) for c in connections))
    outbox.put(latencies)
    await asyncio.gather(*(c.close() for c in connections))


def client_process(url: str, token: str, task_ids: list[str], expected: int, outbox: Any) -> None:
    asyncio.run(subscribe_and_collect(url, token, task_ids, expected, outbox))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def run(args: argparse.Namespace, port: int, pid: int, env: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        worker = await login(http, "worker@bench.example")
        user = await login(http, "user@bench.example")
        for index in range(args.tasks):
            await graphql(http, "mutation($u: String!) { submitUrl(url: $u) { task { id } } }",
                          {"u": f"https://bench.example/page/{index}"}, user)
        claims = [
            (await graphql(http, "mutation { claimNextTask { claimId task { id } } }", {}, worker))["claimNextTask"]
            for _ in range(args.tasks)
        ]
        task_ids = [claim["task"]["id"] for claim in claims]
        await asyncio.sleep(1)
        idle, idle_heap = memory(pid), (await asyncio.to_thread(observe, pid, args.report))["heap"]

        per_task = args.events // args.tasks
        followed = [task_ids[i % args.tasks] for i in range(args.subscribers)]
        started = time.monotonic()
        # Clients in processes of their own, so that the latency measures the
        # server, not one client process parsing a thousand sockets' messages in turn.
        spawn = multiprocessing.get_context("spawn")
        outbox = spawn.Queue()
        clients = [spawn.Process(target=client_process, daemon=True,
                                 args=(f"ws://127.0.0.1:{port}/graphql", worker, followed[i::args.clients],
                                       per_task, outbox))
                   for i in range(args.clients)]
        for client in clients:
            client.start()
        loop = asyncio.get_running_loop()
        opened = sum([await loop.run_in_executor(None, outbox.get, True, 120) for _ in clients])
        assert opened == args.subscribers
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(1)  # every subscription reaches its wait
        subscribed, subscribed_heap = memory(pid), (await asyncio.to_thread(observe, pid, args.report))["heap"]

        profiler = None
        if args.profile:
            # Sampled while events fan out only, not while subscribers connect.
            profiler = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid),
                                         "-f", "raw", "-r", "200", "--nonblocking", "-o", args.profile],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1)
        await asyncio.to_thread(observe, pid, args.report)  # GC pauses are counted from here
        cpu_before = cpu_seconds(pid)
        fire_started = time.monotonic()
        for round_ in range(per_task):
            for claim in claims:
                await graphql(http, "mutation($t: ID!, $c: ID!, $p: Int!) "
                                    "{ reportProgress(taskId: $t, claimId: $c, percent: $p) { event { sequence } } }",
                              {"t": claim["task"]["id"], "c": claim["claimId"], "p": round_ % 101}, worker)
            await asyncio.sleep(args.interval)
        latencies = [x for _ in clients for x in await loop.run_in_executor(None, outbox.get, True, 120)]
        fire_seconds = time.monotonic() - fire_started
        cpu = cpu_seconds(pid) - cpu_before
        pauses = (await asyncio.to_thread(observe, pid, args.report))["gc"]
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=30)
        after = memory(pid)
        for client in clients:
            client.join(timeout=30)

    latencies.sort()
    database = "PostgreSQL" if env.get("DATABASE_URL") else "SQLite (embedded)"
    print(f"database: {database}; one uvicorn worker (pid {pid}); {args.clients} client processes")
    print(f"subscribers: {args.subscribers} over {args.tasks} tasks, opened in {connect_seconds:.2f}s")
    print(f"events fired: {per_task * args.tasks} ({per_task} per task); deliveries: {len(latencies)} in "
          f"{fire_seconds:.2f}s; server CPU {cpu:.2f}s ({cpu / len(latencies) * 1e6:.0f} µs per delivery, "
          "the writes included)")
    longest = max(pauses, key=lambda pause: pause[1], default=(0, 0.0, 0.0))
    print(f"server GC while events fan out: {len(pauses)} collections, {sum(p[1] for p in pauses) * 1000:.0f} ms "
          f"({sum(p[2] for p in pauses) * 1000:.0f} ms CPU) in all, the longest {longest[1] * 1000:.0f} ms "
          f"({longest[2] * 1000:.0f} ms CPU, generation {longest[0]})")
    print(f"latency createdAt->receipt: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    print(f"server RSS idle {idle / KIB:.1f} MiB; with subscribers {subscribed / KIB:.1f} MiB "
          f"({(subscribed - idle) / args.subscribers:.1f} KiB per idle subscriber); after events {after / KIB:.1f} MiB")
    if args.heap:
        print(f"server Python heap (tracemalloc) idle {idle_heap / MIB:.1f} MiB; with subscribers "
              f"{subscribed_heap / MIB:.1f} MiB ({(subscribed_heap - idle_heap) / args.subscribers / KIB:.1f} KiB "
              "per idle subscriber); tracing slows the server: take latencies from a run without --heap")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--events", type=int, default=50, help="events in all, spread over the tasks")
    parser.add_argument("--interval", type=float, default=0.05, help="pause between rounds of events")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--clients", type=int, default=4, help="client processes the subscribers are spread over")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the server while events fan out (raw stacks)")
    parser.add_argument("--heap", action="store_true",
                        help="run the server under tracemalloc and report its Python heap per subscriber")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="auditgraph-bench-") as folder:
        env = environment(Path(folder), args.subscribers)
        args.report = Path(folder) / "report.json"
        env["OBSERVED_REPORT"] = str(args.report)
        if args.heap:
            env["OBSERVED_HEAP"] = "1"
        cli(env, "migrate", "upgrade")
        cli(env, "create-user", "--email", "worker@bench.example", "--role", "WORKER", stdin=PASSWORD + "\n")
        cli(env, "create-user", "--email", "user@bench.example", stdin=PASSWORD + "\n")
        server = subprocess.Popen([sys.executable, "-m", "bench.observed_serve", "serve", "--port", str(args.port)], env=env)
        try:
            wait_until_ready(f"http://127.0.0.1:{args.port}", server)
            asyncio.run(run(args, args.port, server.pid, env))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

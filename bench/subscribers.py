"""Hold many concurrent subscribers on one uvicorn worker, fire events, report latency and memory.

    python -m bench.subscribers [--subscribers 1000] [--tasks 10] [--events 50]

The server is a real `auditgraph serve` child process (one worker) on the
embedded SQLite default, or on PostgreSQL when DATABASE_URL is set. A WORKER
reports progress over HTTP; every subscriber (graphql-transport-ws) follows
one task's events. Latency runs from the event's createdAt, taken inside the
writing transaction just before it commits, to the moment a client holds the
message (same host, same clock): an upper bound of commit-to-receipt.
"""

import argparse
import asyncio
import os
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
SUBSCRIPTION = "subscription($taskId: ID!) { taskEvents(taskId: $taskId) { sequence createdAt } }"


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATA_DIR", "SECRET_KEY", "ENVIRONMENT"}}
    return env | {"DATA_DIR": str(data_dir), "SECRET_KEY": SECRET, "LOG_LEVEL": "warning"}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "graph.cli", *args], env=env, input=stdin, text=True,
                   check=True, capture_output=True)


def memory(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = value.strip()
    return fields


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
        idle = memory(pid)

        started = time.monotonic()
        connections: list[ClientConnection] = []
        for offset in range(0, args.subscribers, 100):
            connections += await asyncio.gather(*(
                open_subscriber(f"ws://127.0.0.1:{port}/graphql", worker, task_ids[i % args.tasks])
                for i in range(offset, min(offset + 100, args.subscribers))
            ))
        connect_seconds = time.monotonic() - started
        await asyncio.sleep(1)  # every subscription reaches its wait
        subscribed = memory(pid)

        latencies: list[float] = []
        per_task = args.events // args.tasks
        collectors = asyncio.gather(*(collect(c, per_task, latencies) for c in connections))
        fire_started = time.monotonic()
        for round_ in range(per_task):
            for claim in claims:
                await graphql(http, "mutation($t: ID!, $c: ID!, $p: Int!) "
                                    "{ reportProgress(taskId: $t, claimId: $c, percent: $p) { event { sequence } } }",
                              {"t": claim["task"]["id"], "c": claim["claimId"], "p": round_ % 101}, worker)
            await asyncio.sleep(args.interval)
        await asyncio.wait_for(collectors, timeout=120)
        fire_seconds = time.monotonic() - fire_started
        after = memory(pid)
        await asyncio.gather(*(c.close() for c in connections))

    latencies.sort()
    database = "PostgreSQL" if env.get("DATABASE_URL") else "SQLite (embedded)"
    print(f"database: {database}; one uvicorn worker (pid {pid})")
    print(f"subscribers: {args.subscribers} over {args.tasks} tasks, opened in {connect_seconds:.2f}s")
    print(f"events fired: {per_task * args.tasks} ({per_task} per task); deliveries: {len(latencies)} in {fire_seconds:.2f}s")
    print(f"latency createdAt->receipt: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    print(f"server memory idle: {idle}; with subscribers: {subscribed}; after events: {after}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--events", type=int, default=50, help="events in all, spread over the tasks")
    parser.add_argument("--interval", type=float, default=0.05, help="pause between rounds of events")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="auditgraph-bench-") as folder:
        env = environment(Path(folder))
        cli(env, "migrate", "upgrade")
        cli(env, "create-user", "--email", "worker@bench.example", "--role", "WORKER", stdin=PASSWORD + "\n")
        cli(env, "create-user", "--email", "user@bench.example", stdin=PASSWORD + "\n")
        server = subprocess.Popen([sys.executable, "-m", "graph.cli", "serve", "--port", str(args.port)], env=env)
        try:
            wait_until_ready(f"http://127.0.0.1:{args.port}", server)
            asyncio.run(run(args, args.port, server.pid, env))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

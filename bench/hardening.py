"""What the hardening requests cost a server, and what floods of large documents leave in its memory.

Starts `auditgraph serve` on a fresh SQLite file (or on DATABASE_URL, an empty PostgreSQL database, with
--postgres), then prints, for each kind of hostile or heavy request, the server's CPU time and RSS growth and
the client's wall time and outcome; then the server's RSS after 1,000 distinct 1 MiB documents over HTTP and
after 50 distinct 15 MB messages over WebSocket. Run:

    .venv/bin/python -m bench.hardening            # SQLite
    DATABASE_URL=postgresql://... .venv/bin/python -m bench.hardening --postgres
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.processes import process_tree_cpu_seconds
from bench.upload_memory import memory_kib
from tests.cli import free_port, stop, wait_until_ready

REPOSITORY = Path(__file__).resolve().parent.parent
PASSWORD = "bench password 0123456789"
MIB = 1024 * 1024
NESTED = ("tasks(first: $n) { edges { node { owner { tasks(first: $n) { edges { node { owner {"
          " tasks(first: $n) { edges { node { id } } } } } } } } } } }")
INTROSPECTION = ("__schema { types { name kind fields(includeDeprecated: true) { name args { name type { name "
                 "kind ofType { name kind ofType { name kind } } } } type { name kind ofType { name kind ofType "
                 "{ name kind } } } } enumValues { name } inputFields { name } interfaces { name } } }")
REQUESTS: dict[str, tuple[str, bool]] = {
    # name: (raw JSON body, signed in)
    "budget, n = 100.0": (f'{{"query": "query($n: Int) {{ {NESTED} }}", "variables": {{"n": 100.0}}}}', True),
    "budget, n = 1e2": (f'{{"query": "query($n: Int) {{ {NESTED} }}", "variables": {{"n": 1e2}}}}', True),
    "budget, default 100": (f'{{"query": "query($n: Int = 100) {{ {NESTED} }}"}}', True),
    "30 aliased introspections": (orjson.dumps({"query": "{ " + " ".join(
        f"a{number}: {INTROSPECTION}" for number in range(30)) + " }"}).decode(), False),
    "one introspection": (orjson.dumps({"query": f"{{ {INTROSPECTION} }}"}).decode(), False),
    "4,900 repeats of a field": (orjson.dumps({"query": "{ me { " + " id" * 4900 + " } }"}).decode(), True),
    "filename search of 50,001": (orjson.dumps({
        "query": "query($s: String!) { tasks(filter: {filenameContains: $s}) { totalCount } }",
        "variables": {"s": "x" * 50_001}}).decode(), True),
    "refused field beside reads": (orjson.dumps({
        "query": "{ users { totalCount edges { node { id email } } } me { id } }"}).decode(), True),
}


def server_environment(data_dir: Path, port: int) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("DATABASE_URL", "LOG_FORMAT")}
    return environment | {"DATA_DIR": str(data_dir), "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
                          "PORT": str(port), "LOG_LEVEL": "critical"}


def sign_in(client: httpx.Client, environment: dict[str, str]) -> str:
    subprocess.run([sys.executable, "-m", "graph.cli", "create-user", "--email", "bench@example.com"],
                   input=f"{PASSWORD}\n".encode(), cwd=REPOSITORY, env=environment, capture_output=True, check=True)
    login = client.post("/graphql", json={
        "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        "variables": {"e": "bench@example.com", "p": PASSWORD}})
    return str(login.json()["data"]["login"]["token"])


def outcome(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.headers.get('content-type')}"
    codes = sorted({str((error.get("extensions") or {}).get("code")) for error in body.get("errors") or ()})
    return f"{response.status_code} {','.join(codes) or 'data'}"


def measure_requests(client: httpx.Client, pid: int, token: str) -> None:
    """Each request twice: first as a stranger's new document (nothing cached), then again (cached)."""
    print(f"{'request':30} {'CPU first':>10} {'CPU again':>10} {'RSS growth':>11} {'wall first':>11}  outcome")
    for name, (body, signed_in) in REQUESTS.items():
        headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if signed_in else {})
        rss = memory_kib(pid, "VmRSS")
        figures = []
        for _ in range(2):
            cpu = process_tree_cpu_seconds(pid)
            started = time.monotonic()
            response = client.post("/graphql", content=body, headers=headers)
            wall = time.monotonic() - started
            time.sleep(0.05)  # what the request left running ends
            figures.append(((process_tree_cpu_seconds(pid) - cpu) * 1000, wall * 1000))
        growth = (memory_kib(pid, "VmRSS") - rss) / 1024
        print(f"{name:30} {figures[0][0]:7.0f} ms {figures[1][0]:7.0f} ms {growth:7.1f} MiB "
              f"{figures[0][1]:8.0f} ms  {outcome(response)}")
    print("(CPU is counted in clock ticks of 10 ms)")


def flood_http(client: httpx.Client, pid: int, count: int) -> None:
    before = memory_kib(pid, "VmRSS")
    statuses: dict[str, int] = {}
    started, cpu = time.monotonic(), process_tree_cpu_seconds(pid)
    for number in range(count):
        # Just under the request limit: a comment that makes each document distinct, and a query.
        padding = "#" + f"{number:08d}" * ((MIB - 200) // 8)
        response = client.post("/graphql", content=orjson.dumps({"query": f"{padding}\n{{ __typename }}"}),
                               headers={"content-type": "application/json"})
        statuses[outcome(response)] = statuses.get(outcome(response), 0) + 1
    after = memory_kib(pid, "VmRSS")
    cpu_each = (process_tree_cpu_seconds(pid) - cpu) * 1000 / count
    print(f"{count} distinct 1 MiB documents over HTTP in {time.monotonic() - started:.0f} s "
          f"({cpu_each:.0f} ms of server CPU each): RSS "
          f"{before / 1024:.0f} -> {after / 1024:.0f} MiB (+{(after - before) / 1024:.0f} MiB), "
          f"peak {memory_kib(pid, 'VmHWM') / 1024:.0f} MiB; answers {statuses}")


async def flood_websocket(port: int, pid: int, token: str, count: int, size: int) -> None:
    before = memory_kib(pid, "VmRSS")
    closes: dict[str, int] = {}
    for number in range(count):
        padding = "#" + f"{number:08d}" * (size // 8)
        message = orjson.dumps({"id": "1", "type": "subscribe",
                                "payload": {"query": f"{padding}\nsubscription {{ myTaskEvents {{ sequence }} }}"}})
        try:
            async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                               max_size=None, open_timeout=30) as socket:
                await socket.send(orjson.dumps({"type": "connection_init",
                                                "payload": {"authorization": f"Bearer {token}"}}).decode())
                await socket.recv()
                await socket.send(message.decode())
                reply = await asyncio.wait_for(socket.recv(), 30)
                kind = str(orjson.loads(reply).get("type"))
        except ConnectionClosed as closed:
            kind = f"closed {closed.rcvd.code if closed.rcvd else None}"
        except TimeoutError:
            kind = "no answer in 30 s"
        closes[kind] = closes.get(kind, 0) + 1
    after = memory_kib(pid, "VmRSS")
    print(f"{count} distinct {size / 1e6:.0f} MB messages over WebSocket: RSS {before / 1024:.0f} -> "
          f"{after / 1024:.0f} MiB (+{(after - before) / 1024:.0f} MiB), peak {memory_kib(pid, 'VmHWM') / 1024:.0f} "
          f"MiB; outcomes {closes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="serve on DATABASE_URL (an empty database)")
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="auditgraph-bench-") as folder:
        port = free_port()
        environment = server_environment(Path(folder) / "data", port)
        if args.postgres:
            environment["DATABASE_URL"] = os.environ["DATABASE_URL"]
            subprocess.run([sys.executable, "-m", "graph.cli", "migrate"], cwd=REPOSITORY, env=environment,
                           check=True, capture_output=True)
        server = subprocess.Popen([sys.executable, "-m", "graph.cli", "serve"], cwd=REPOSITORY, env=environment)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}", server)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                token = sign_in(client, environment)
                print(f"server RSS at start: {memory_kib(server.pid, 'VmRSS') / 1024:.0f} MiB "
                      f"({'PostgreSQL' if args.postgres else 'SQLite'})")
                measure_requests(client, server.pid, token)
                flood_http(client, server.pid, args.documents)
            asyncio.run(flood_websocket(port, server.pid, token, args.messages, 15_000_000))
        finally:
            stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())

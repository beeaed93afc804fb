"""How long a stream outlives an access change the CLI makes on the embedded default: `python -m bench.access_change_latency`.

Starts `python -m graph.cli serve` (a real uvicorn, SQLite in a temporary
folder), opens a graphql-transport-ws subscription of one account, then runs
`auditgraph users set-active EMAIL no` in another process and times from its
commit (the created_at of the access_changes row its transaction wrote, just
before committing) to the arrival of the subscription's UNAUTHENTICATED error. The account is reactivated and
signed in again between rounds. The bound this is held to: well under a second
(the server reads the access_changes log every 0.25 s, graph/live/broker.py).
"""

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.cli import free_port, run_cli, start_cli, stop, wait_until_ready
from tests.live import TRANSPORT_WS, bearer, graphql_socket

EMAIL = "watched@example.com"
PASSWORD = "correct horse battery"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"


async def one_round(base: str, environment: dict[str, str], database: Path) -> float:
    async with httpx.AsyncClient(base_url=base) as http:
        login = await http.post("/graphql", json={"query": "mutation($e: String!, $p: String!) { login(email: $e, "
                                                           "password: $p) { token } }",
                                                  "variables": {"e": EMAIL, "p": PASSWORD}})
    token = login.json()["data"]["login"]["token"]
    async with graphql_socket(base.replace("http", "ws") + "/graphql", TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe("subscription { myTaskEvents { sequence } }")
        await asyncio.sleep(0.3)  # the subscription is open

        async def ended() -> tuple[dict[str, object], float]:
            payload = await socket.next()
            return payload, time.time()

        waiting = asyncio.ensure_future(ended())
        changed = await asyncio.to_thread(run_cli, "users", "set-active", EMAIL, "no", **environment)
        assert changed.returncode == 0, changed.stderr
        payload, arrived = await waiting
    assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", payload  # type: ignore[index]
    reactivated = await asyncio.to_thread(run_cli, "users", "set-active", EMAIL, "yes", **environment)
    assert reactivated.returncode == 0, reactivated.stderr
    return arrived - committed_at(database)


def committed_at(database: Path) -> float:
    """When the CLI's transaction wrote its access change (the row's created_at, set just before its commit)."""
    with closing(sqlite3.connect(database)) as connection:
        stamp = connection.execute(
            "SELECT created_at FROM access_changes WHERE position = (SELECT max(position) - 1 FROM access_changes)"
        ).fetchone()[0]
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


async def measure(rounds: int) -> list[float]:
    data_dir = Path(tempfile.mkdtemp(prefix="auditgraph-bench-"))
    environment = {"DATA_DIR": str(data_dir), "SECRET_KEY": SECRET, "LOG_LEVEL": "warning"}
    assert run_cli("migrate", **environment).returncode == 0
    created = run_cli("create-user", "--email", EMAIL, "--role", "USER", input=PASSWORD + "\n", **environment)
    assert created.returncode == 0, created.stderr
    port = free_port()
    server = start_cli("serve", "--port", str(port), **environment)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server)
        return [await one_round(base, environment, data_dir / "auditgraph.db") for _ in range(rounds)]
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="access changes to time (default 10)")
    seconds = asyncio.run(measure(parser.parse_args().rounds))
    print(f"{len(seconds)} rounds: from the CLI's commit to the stream's end, "
          f"median {statistics.median(seconds) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms")


if __name__ == "__main__":
    main()

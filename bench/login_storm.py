"""`/healthz` latency while 40 clients fail to log in as fast as they can: `python -m bench.login_storm`.

Starts `python -m graph.cli serve` (a real uvicorn, one worker, SQLite in a
temporary folder) with the login throttle set out of reach, so every attempt
costs a real argon2 check. A prober thread of its own asks `/healthz` on its
own connection, first with the server idle, then during the storm, and the
figures are printed: what one slow password check does to every other request
of the process. `--baseline REV` measures the server as commit REV had it
too, in the same run.
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.cli import free_port, wait_until_ready

REPOSITORY = Path(__file__).resolve().parent.parent
WORK_DIR = REPOSITORY / "bench" / ".work"
EMAIL = "victim@example.com"
PASSWORD = "bench password 0123456789"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
PROBE_INTERVAL = 0.01


class Prober(threading.Thread):
    """Asks /healthz again and again on one connection, recording each answer's latency."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.latencies: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self.stopped.is_set():
                started = time.perf_counter()
                client.get("/healthz").raise_for_status()
                self.latencies.append(time.perf_counter() - started)
                time.sleep(PROBE_INTERVAL)

    def measure(self, seconds: float) -> list[float]:
        """The latencies seen during the next `seconds`."""
        first = len(self.latencies)
        time.sleep(seconds)
        return self.latencies[first:]


async def storm(base_url: str, clients: int, seconds: float) -> list[float]:
    """`clients` concurrent loops of failing logins for `seconds`; the latency of each login."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def fail_logins() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.post("/graphql", json={
                    "query": LOGIN, "variables": {"e": EMAIL, "p": "not the password"}})
                codes = [error["extensions"]["code"] for error in response.json().get("errors", [])]
                assert codes == ["UNAUTHENTICATED"], response.text
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(fail_logins() for _ in range(clients)))
    return latencies


def milliseconds(latencies: list[float], quantile: float) -> float:
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def describe(name: str, latencies: list[float]) -> str:
    return (f"{name:<24} p50 {milliseconds(latencies, 0.5):8.1f} ms   p99 {milliseconds(latencies, 0.99):8.1f} ms"
            f"   max {1000 * max(latencies):8.1f} ms   ({len(latencies)} requests)")


def server_environment(data_dir: Path, port: int) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    return environment | {
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        # Out of reach, so every attempt is a real password check, not a quick refusal.
        "LOGIN_MAX_FAILURES": str(10**9),
    }


@dataclass
class Figures:
    idle: list[float]
    during: list[float]
    logins: list[float]


def measure(source: Path, clients: int, seconds: float, idle_seconds: float) -> Figures:
    """Serve the API from the checkout at `source` and measure /healthz idle, then under the storm."""
    with tempfile.TemporaryDirectory(prefix="auditgraph-bench-") as folder:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        environment = server_environment(Path(folder) / "data", port)
        # Its own session, so a Ctrl-C reaches only this script, which then stops the server.
        server = subprocess.Popen([sys.executable, "-m", "graph.cli", "serve"], cwd=source, env=environment,
                                  start_new_session=True)
        try:
            wait_until_ready(base_url, server)
            subprocess.run([sys.executable, "-m", "graph.cli", "create-user", "--email", EMAIL],
                           input=f"{PASSWORD}\n".encode(), cwd=source, env=environment,
                           capture_output=True, check=True)
            prober = Prober(base_url)
            prober.start()
            idle = prober.measure(idle_seconds)
            first = len(prober.latencies)
            logins = asyncio.run(storm(base_url, clients, seconds))
            during = prober.latencies[first:]
            prober.stopped.set()
            prober.join()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    return Figures(idle, during, logins)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=40, help="concurrent failing logins (default 40)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the storm lasts (default 15)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="how long /healthz is measured idle")
    parser.add_argument("--baseline", default="", metavar="REV",
                        help="also measure the server as commit REV had it, in the same run")
    args = parser.parse_args(argv)

    sources = {"this checkout": REPOSITORY}
    if args.baseline:
        # Here, not at the top: bench.targets needs the bench extras, a plain run does not.
        from bench.targets import export_revision

        short, folder = export_revision(args.baseline, WORK_DIR)
        sources[f"commit {short}"] = folder
    print(f"login storm: {args.clients} concurrent failing logins for {args.seconds:.0f} s against one uvicorn "
          f"worker on SQLite, {os.cpu_count()} CPUs")
    for name, source in sources.items():
        figures = measure(source, args.clients, args.seconds, args.idle_seconds)
        print(f"\n{name}:")
        print(describe("/healthz, idle", figures.idle))
        print(describe("/healthz, during storm", figures.during))
        print(describe("failing logins", figures.logins)
              + f"   {len(figures.logins) / args.seconds:.1f} logins/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

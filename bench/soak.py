"""`python -m bench.soak`: two workers on PostgreSQL under mixed load, a PostgreSQL restart and a worker kill
in the middle, then the counts that must be zero.

    python -m bench.soak [--seconds 600] [--owners 4] [--pipeline 4] [--subscribers 6] [--record]
                         [--observe FOLDER [--trace-heap]]

Two `auditgraph serve` processes share a throwaway PostgreSQL and one data folder. Owners upload files (some
the same bytes again, some of a megabyte), submit URLs, read and cancel; pipeline workers claim tasks, report
progress, attach artifacts, record analyses and complete them, and some die mid-task (their claims come back
after the lease to write late, and must be refused); subscribers follow myTaskEvents over graphql-transport-ws,
legacy graphql-ws and SSE, disconnecting and resuming after the last position they received, on either server.
At 40% of the run PostgreSQL restarts; at 60% worker B is killed (SIGKILL) and started again.

Then the load stops, well-behaved workers drain the queue, every subscriber resumes once more to catch up,
and it prints: requests, errors by code, events written against those each subscriber received (lost,
duplicated), tasks stuck, orphaned files, and each server's memory at start and end. With --record the
printout is appended to bench/RESULTS.md.

With --observe the workers run through bench/observed_serve.py and, each time their memory is noted, run a
full collection and leave a count of live objects by type and the allocators' statistics in FOLDER/<pid>/,
for `python -m bench.heap_growth` to compare; with --trace-heap as well, under tracemalloc, a heap snapshot
too. Those collections free garbage the server would have held longer, and tracing slows every allocation
and holds memory of its own: an observed run's RSS is not a plain run's.
"""

import argparse
import asyncio
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.processes import ServerProcess
from bench.soak_load import (
    PROTOCOLS,
    Client,
    Subscriber,
    Tally,
    Zombie,
    follow,
    owner,
    pipeline_worker,
    subscribe_on_and_off,
    zombie_writes,
)
from db.orphans import store_folders, stored_files_in
from tests.cli import free_port, wait_until_ready
from tests.throwaway_postgres import PostgresCluster, postgres_cluster

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
DATABASE = "auditgraph_soak"
PASSWORD = "soak password 12345"
SECRET = "soak-secret-key-that-is-long-enough-0123456789"
LEASE_SECONDS = 4.0
FILE_SWEEP_SECONDS = 20.0
TRACED_FRAMES = 10
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=600, help="seconds of mixed load (default 600)")
    parser.add_argument("--owners", type=int, default=4, help="users uploading, submitting and reading (default 4)")
    parser.add_argument("--pipeline", type=int, default=4, help="pipeline workers claiming tasks (default 4)")
    parser.add_argument("--death-rate", type=float, default=0.15,
                        help="share of claims whose worker dies mid-task (default 0.15)")
    parser.add_argument("--subscribers", type=int, default=6, help="myTaskEvents subscribers (default 6)")
    parser.add_argument("--record", action="store_true", help="append the printout to bench/RESULTS.md")
    parser.add_argument("--observe", metavar="FOLDER", type=Path,
                        help="leave the workers' object counts and allocator statistics in FOLDER (see above)")
    parser.add_argument("--trace-heap", action="store_true", help="with --observe, tracemalloc snapshots too")
    args = parser.parse_args(argv)
    if args.seconds < 30:
        parser.error("give the soak at least 30 seconds: the faults are injected in its middle")
    if args.trace_heap and not args.observe:
        parser.error("--trace-heap leaves its snapshots in the --observe folder")
    return args


def server_environment(url: str, data_dir: Path) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "DATA_DIR", "SECRET_KEY", "ENVIRONMENT"}}
    return keep | {
        "DATABASE_URL": url, "DATA_DIR": str(data_dir), "SECRET_KEY": SECRET, "LOG_LEVEL": "warning",
        "LEASE_SECONDS": str(LEASE_SECONDS), "LEASE_CHECK_SECONDS": "0.5", "MAX_ATTEMPTS": "5",
        "FILE_SWEEP_SECONDS": str(FILE_SWEEP_SECONDS), "SHUTDOWN_TIMEOUT_SECONDS": "5",
    }


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "graph.cli", *args], env=env, input=stdin, text=True, check=True,
                   capture_output=True, cwd=PROJECT_ROOT)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Servers:
    """Workers A and B: `auditgraph serve` processes on one database and one data folder."""

    def __init__(self, env: dict[str, str], logs: Path, observe: Path | None, trace_heap: bool) -> None:
        if observe is not None:
            env = env | {"OBSERVED_SNAPSHOTS": str(observe.resolve())}
        if trace_heap:
            env = env | {"OBSERVED_HEAP": str(TRACED_FRAMES)}
        self.observed = observe is not None
        # Started under tracing, a server takes minutes to listen on a busy machine.
        self.start_timeout = 300.0 if trace_heap else 60.0
        # Signalled only once ready: before it sets its handler, SIGUSR2 would kill a starting server.
        self.ready: set[str] = set()
        self.processes = {name: ServerProcess(name, [], env, free_port(), logs / f"{name}.log", PROJECT_ROOT)
                          for name in ("A", "B")}
        module = "bench.observed_serve" if observe is not None else "graph.cli"
        for server in self.processes.values():
            server.argv = [sys.executable, "-m", module, "serve", "--port", str(server.port)]
        self.memory: dict[str, list[tuple[str, int, float]]] = {name: [] for name in self.processes}

    @property
    def urls(self) -> list[str]:
        return [server.base_url for server in self.processes.values()]

    async def start(self, name: str) -> None:
        server = self.processes[name]
        await server.start(self.start_timeout)
        assert server.process is not None
        await asyncio.to_thread(wait_until_ready, server.base_url, server.process)
        self.ready.add(name)

    def note_memory(self, moment: str) -> None:
        for name, server in self.processes.items():
            if name in self.ready and server.process is not None and server.process.poll() is None:
                self.memory[name].append((moment, server.pid, rss_mib(server.pid)))
                if self.observed:
                    os.kill(server.pid, signal.SIGUSR2)

    def kill(self, name: str) -> None:
        server = self.processes[name]
        assert server.process is not None
        self.ready.discard(name)
        os.killpg(server.pid, signal.SIGKILL)
        server.process.wait()
        server.process = None

    def stop(self) -> None:
        for server in self.processes.values():
            server.stop()


async def log_head(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT coalesce(max(position), 0) FROM task_events"))


async def visible_positions(connection: asyncpg.Connection, after: int, owner_email: str | None) -> list[int]:
    if owner_email is None:
        rows = await connection.fetch("SELECT position FROM task_events WHERE position > $1", after)
    else:
        rows = await connection.fetch(
            "SELECT e.position FROM task_events e JOIN tasks t ON t.id = e.task_id JOIN users u ON u.id = t.user_id "
            "WHERE e.position > $1 AND u.email = $2", after, owner_email)
    return sorted(int(row["position"]) for row in rows)


async def open_tasks(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM tasks WHERE status IN ('QUEUED', 'PROCESSING')"))


async def orphaned_files(connection: asyncpg.Connection, data_dir: Path) -> tuple[int, int, int]:
    """(stored files, stored files no row references, staging files)."""
    referenced = {row["file_path"] for row in await connection.fetch(
        "SELECT file_path FROM tasks WHERE file_path IS NOT NULL UNION SELECT file_path FROM artifacts")}
    stored = [path for folder in store_folders(data_dir / "files") for path in stored_files_in(folder)]
    staging = [path for path in (data_dir / "staging").glob("*") if path.is_file()]
    return len(stored), len([path for path in stored if path not in referenced]), len(staging)


async def sample_memory(servers: Servers, every: float, started: float) -> None:
    while True:
        await asyncio.sleep(every)
        servers.note_memory(f"{time.monotonic() - started:.0f} s")


def restart(cluster: PostgresCluster) -> None:
    cluster.stop()
    cluster.start()


async def chaos(cluster: PostgresCluster, servers: Servers, seconds: int, log: list[str], started: float) -> None:
    await asyncio.sleep(seconds * 0.4)
    restarting = time.monotonic()
    await asyncio.to_thread(restart, cluster)
    log.append(f"{restarting - started:5.0f} s  PostgreSQL restarted (fast shutdown and start: "
               f"{time.monotonic() - restarting:.1f} s)")
    await asyncio.sleep(max(0.0, started + seconds * 0.6 - time.monotonic()))
    servers.note_memory("before the kill")
    servers.kill("B")
    killed = time.monotonic()
    log.append(f"{killed - started:5.0f} s  worker B killed (SIGKILL)")
    await asyncio.sleep(1)
    await servers.start("B")
    log.append(f"{time.monotonic() - started:5.0f} s  worker B started again "
               f"(ready {time.monotonic() - killed:.1f} s after the kill)")


async def soak(args: argparse.Namespace, out: io.StringIO) -> None:
    def say(line: str = "") -> None:
        print(line, flush=True)
        out.write(line + "\n")

    with postgres_cluster() as cluster, tempfile.TemporaryDirectory(prefix="auditgraph-soak-") as folder:
        postgres = cluster.server
        admin = await asyncpg.connect(postgres.dsn("postgres"))
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        await admin.close()
        data_dir = Path(folder) / "data"
        env = server_environment(postgres.url(DATABASE), data_dir)
        cli(env, "migrate")
        owners = [f"owner{index}@soak.example" for index in range(args.owners)]
        for email in owners:
            cli(env, "create-user", "--email", email, stdin=PASSWORD + "\n")
        for email in ("pipeline@soak.example", "watcher@soak.example"):
            cli(env, "create-user", "--email", email, "--role", "WORKER", stdin=PASSWORD + "\n")

        servers = Servers(env, BENCH_DIR / ".work" / "soak", args.observe, args.trace_heap)
        try:
            await asyncio.gather(servers.start("A"), servers.start("B"))
            servers.note_memory("start")
            tally = Tally()
            client = Client(servers.urls, tally)
            tokens = {}
            for email in [*owners, "pipeline@soak.example", "watcher@soak.example"]:
                data = await client.call("login", LOGIN, {"e": email, "p": PASSWORD})
                assert data is not None, f"could not log in {email}"
                tokens[email] = data["login"]["token"]
            database = await asyncpg.connect(postgres.dsn(DATABASE))
            start = await log_head(database)
            await database.close()  # PostgreSQL restarts during the run: the checks after it connect again

            scopes = ["watcher@soak.example", *owners]
            subscribers = [
                Subscriber(f"{index + 1}", tokens[scopes[index % len(scopes)]], PROTOCOLS[index % len(PROTOCOLS)], start)
                for index in range(args.subscribers)
            ]
            scope_of = {subscriber.name: scopes[index % len(scopes)] for index, subscriber in enumerate(subscribers)}
            stop = asyncio.Event()
            zombies: list[Zombie] = []
            pipeline_token = tokens["pipeline@soak.example"]
            started = time.monotonic()
            say(f"soak: {args.seconds} s of mixed load on workers A and B (one PostgreSQL, one data folder); "
                f"{args.owners} owners, {args.pipeline} pipeline workers ({args.death_rate:.0%} of claims die "
                f"mid-task), {args.subscribers} subscribers; lease {LEASE_SECONDS:.0f} s")
            load = [
                *(asyncio.create_task(owner(client, tokens[email], stop, index)) for index, email in enumerate(owners)),
                *(asyncio.create_task(pipeline_worker(client, pipeline_token, stop, 100 + index, args.death_rate,
                                                      zombies, LEASE_SECONDS))
                  for index in range(args.pipeline)),
            ]
            late = asyncio.create_task(zombie_writes(client, pipeline_token, stop, zombies))
            following = [asyncio.create_task(subscribe_on_and_off(subscriber, servers.urls, stop, 200 + index))
                         for index, subscriber in enumerate(subscribers)]
            faults: list[str] = []
            injected = asyncio.create_task(chaos(cluster, servers, args.seconds, faults, started))
            sampler = asyncio.create_task(sample_memory(servers, args.seconds / 6, started))

            await asyncio.sleep(args.seconds)
            stop.set()
            sampler.cancel()
            await injected
            await asyncio.gather(*load)
            for task in following:
                task.cancel()
            await asyncio.gather(*following, return_exceptions=True)
            load_seconds = time.monotonic() - started

            database = await asyncpg.connect(postgres.dsn(DATABASE))
            # Drain: well-behaved workers finish every task, abandoned ones included once their lease ran out.
            # It goes on while the queue shrinks; what is left once it stops shrinking is stuck.
            drain_stop = asyncio.Event()
            drainers = [asyncio.create_task(pipeline_worker(client, pipeline_token, drain_stop, 300 + index, 0.0,
                                                            zombies, LEASE_SECONDS)) for index in range(args.pipeline)]
            draining = time.monotonic()
            left_at_stop = fewest = await open_tasks(database)
            last_progress = time.monotonic()
            while fewest and time.monotonic() - last_progress < 3 * LEASE_SECONDS + 15:
                await asyncio.sleep(1)
                if (left := await open_tasks(database)) < fewest:
                    fewest, last_progress = left, time.monotonic()
            drain_stop.set()
            await asyncio.gather(*drainers)
            drain_seconds = time.monotonic() - draining
            await late

            # Every subscriber resumes once more and reads up to the last event it may see.
            expected = {subscriber.name: await visible_positions(
                database, start, None if scope_of[subscriber.name].startswith("watcher") else scope_of[subscriber.name])
                for subscriber in subscribers}
            for subscriber in subscribers:
                newest = expected[subscriber.name][-1:]
                if newest and subscriber.last < newest[0]:
                    await follow(subscriber, servers.urls, 120, until=newest[0])

            await asyncio.sleep(FILE_SWEEP_SECONDS + 5)  # one periodic sweep after the last write
            stored, orphans, staging = await orphaned_files(database, data_dir)
            statuses = Counter({row["status"]: row["count"] for row in await database.fetch(
                "SELECT status, count(*) FROM tasks GROUP BY status")})
            written = await log_head(database) - start
            failures = Counter({row["error_message"]: row["count"] for row in await database.fetch(
                "SELECT error_message, count(*) FROM tasks WHERE status = 'FAILED' GROUP BY error_message")})
            await database.close()
            servers.note_memory("end")
            await client.close()
        finally:
            servers.stop()

        say(f"run: {load_seconds:.0f} s of load; then {left_at_stop} tasks still open were drained by well-behaved "
            f"workers in {drain_seconds:.0f} s, and every subscriber resumed once more to catch up")
        say("faults injected:")
        for line in faults:
            say(f"  {line}")
        say(f"requests: {sum(tally.requests.values())}  "
            + ", ".join(f"{kind} {count}" for kind, count in tally.requests.most_common()))
        say(f"errors by code (and the requests that met them): {tally.described_errors()}")
        say(f"workers that died mid-task: {tally.deaths}; their late recordAnalysis: "
            + (", ".join(f"{what} {count}" for what, count in tally.late_writes.items()) or "none"))
        say(f"events written: {written}")
        say(f"{'subscriber':<11}{'protocol':<22}{'sees':<22}{'sessions':>9}{'expected':>10}{'delivered':>11}"
            f"{'lost':>6}{'duplicated':>12}")
        for subscriber in subscribers:
            wanted, got = set(expected[subscriber.name]), subscriber.received
            say(f"{subscriber.name:<11}{subscriber.protocol:<22}{scope_of[subscriber.name].split('@')[0]:<22}"
                f"{subscriber.sessions:>9}{len(wanted):>10}{len(got):>11}{len(wanted - set(got)):>6}"
                f"{len(got) - len(set(got)):>12}")
        ends: Counter[str] = Counter()
        for subscriber in subscribers:
            ends.update(subscriber.ended_by)
        say("sessions ended by: " + ", ".join(f"{why} {count}" for why, count in ends.most_common()))
        say(f"tasks: {sum(statuses.values())} ({', '.join(f'{status} {count}' for status, count in sorted(statuses.items()))}); "
            f"stuck (QUEUED or PROCESSING after the drain): {statuses['QUEUED'] + statuses['PROCESSING']}")
        for reason, count in failures.items():
            say(f"  FAILED {count}: {reason}")
        say(f"files: {stored} stored; orphaned: {orphans} stored with no row, {staging} in staging")
        for name, notes in servers.memory.items():
            say(f"worker {name} memory (RSS): " + "; ".join(f"{moment} {mib:.0f} MiB (pid {pid})"
                                                           for moment, pid, mib in notes))


def record(text: str, args: argparse.Namespace) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m bench.soak" + (f" --seconds {args.seconds}" if args.seconds != 600 else "")
    with open(BENCH_DIR / "RESULTS.md", "a") as results:
        results.write(f"\n## {stamp} — soak, {args.seconds} s (`{command}`)\n\n```\n{text}```\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    random.seed(1)
    out = io.StringIO()
    asyncio.run(soak(args, out))
    if args.record:
        record(out.getvalue(), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

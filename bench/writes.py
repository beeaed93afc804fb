"""The write path: `recordAnalysis` with many findings, beside the raw floor: `python -m bench.writes`.

For each database (a throwaway PostgreSQL, and a SQLite file in a temporary
folder) it starts `python -m graph.cli serve` (a real uvicorn, one worker) and
measures, over HTTP:

- `recordAnalysis` with 100, 1,000 and 4,000 findings of 2 sources each: the
  time from sending the request to its answer, beside the raw floor, the same
  rows written straight to the database with one statement (`COPY` on
  PostgreSQL, `executemany` on SQLite) per table in one transaction;
- the event loop's longest stall while one 4,000-finding analysis is recorded,
  measured inside the server (bench/lag_serve.py: a 2 ms sleep overslept),
  with the CPU the loop's thread used in it (on a busy machine the rest is
  waiting for a CPU), and the longest wait of `/healthz`, asked every 5 ms on
  a connection of its own, which is what another client meets;
- six 4,000-finding analyses recorded at once while another user reads their
  task list again and again (from a process of its own): that reader's p50,
  p99 and max.

The figures are printed and, unless `--no-record`, appended to
bench/RESULTS.md. Every process it starts is stopped on the way out.
"""

import argparse
import asyncio
import multiprocessing
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from graph.relay import from_global_id
from tests.cli import free_port, stop, wait_until_ready
from tests.throwaway_postgres import PostgresServer, throwaway_postgres

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / "bench" / "RESULTS.md"
DATABASE = "auditgraph_writes"
PASSWORD = "bench password 0123456789"
SIZES = (100, 1000, 4000)
SOURCES_PER_FINDING = 2
CONCURRENT = 6
PROBE_INTERVAL = 0.005
SEVERITIES = ("CRITICAL", "MAJOR", "MINOR", "INFO")

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
REGISTER = "mutation($e: String!, $p: String!) { register(email: $e, password: $p) { token } }"
SUBMIT = "mutation($u: String!) { submitUrl(url: $u) { task { id } } }"
CLAIM = "mutation { claimNextTask { claimId task { id } } }"
RECORD = """
mutation($input: RecordAnalysisInput!) {
  recordAnalysis(input: $input) { analysis { id verdict } task { id status } }
}
"""
READ = "{ tasks(first: 20) { totalCount edges { node { id status analysis { verdict } } } } }"


def findings(count: int) -> list[dict[str, Any]]:
    """`count` findings as a pipeline sends them, each with its sources."""
    return [
        {
            "severity": SEVERITIES[number % len(SEVERITIES)],
            "ruleId": f"RULE-{number % 97:03d}",
            "category": "insulation",
            "message": f"measured value {number} is outside the limit the standard sets for this test",
            "evidence": {"measured": number * 0.5, "limit": 100, "unit": "MOhm"},
            "remediation": "repeat the test after drying the equipment",
            "confidence": 0.9,
            "sources": [
                {"pageNumber": 1 + (number + page) % 40, "section": f"4.{page}",
                 "snippet": f"table {page}: insulation resistance {number} MOhm at 500 V"}
                for page in range(SOURCES_PER_FINDING)
            ],
        }
        for number in range(count)
    ]


def record_body(task_id: str, claim_id: str, count: int) -> bytes:
    analysis = {"taskId": task_id, "claimId": claim_id, "verdict": "REJECTED", "complianceScore": 42.0,
                "confidenceScore": 0.8, "summary": "several measurements are outside their limits",
                "extractionResult": {"pages": 40}, "findings": findings(count)}
    return orjson.dumps({"query": RECORD, "variables": {"input": analysis}})


class Prober(threading.Thread):
    """Asks /healthz again and again on one connection of its own, recording when each answer came and its wait."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=120) as client:
            while not self.stopped.is_set():
                started = time.perf_counter()
                client.get("/healthz").raise_for_status()
                ended = time.perf_counter()
                self.samples.append((ended, ended - started))
                time.sleep(PROBE_INTERVAL)

    def longest_between(self, start: float, end: float) -> float:
        # A wait that began inside the window counts even if it ended after it.
        return max((wait for ended, wait in self.samples if ended - wait < end and ended > start), default=0.0)


class LagReports:
    """The longest event-loop stall a server saw since it was last asked (bench/lag_serve.py)."""

    def __init__(self, pid: int, path: Path) -> None:
        self.pid = pid
        self.path = path

    async def take(self) -> tuple[float, float]:
        self.path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        while not self.path.exists():
            await asyncio.sleep(0.01)
        wall, cpu = orjson.loads(self.path.read_bytes())
        return wall, cpu


@dataclass
class Figures:
    database: str
    record: dict[int, list[float]] = field(default_factory=dict)
    floor: dict[int, list[float]] = field(default_factory=dict)
    stalls: list[float] = field(default_factory=list)
    loop_stalls: list[tuple[float, float]] = field(default_factory=list)
    concurrent_loop_stall: tuple[float, float] = (0.0, 0.0)
    concurrent_seconds: float = 0.0
    reads: list[float] = field(default_factory=list)


class Api:
    """A client of one server, with an owner who submits tasks and a worker who claims and records them."""

    def __init__(self, client: httpx.AsyncClient, owner: str, worker: str) -> None:
        self.client = client
        self.owner = owner
        self.worker = worker

    async def data(self, query: str, variables: dict[str, Any] | None, token: str) -> dict[str, Any]:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables or {}},
                                          headers={"Authorization": f"Bearer {token}"})
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def claimed_task(self) -> tuple[str, str]:
        await self.data(SUBMIT, {"u": f"https://example.com/{uuid.uuid4().hex}"}, self.owner)
        claim = (await self.data(CLAIM, None, self.worker))["claimNextTask"]
        return claim["task"]["id"], claim["claimId"]

    async def record(self, task_id: str, claim_id: str, count: int) -> float:
        return await self.send(record_body(task_id, claim_id, count))

    async def send(self, body: bytes) -> float:
        started = time.perf_counter()
        response = await self.client.post("/graphql", content=body, headers={
            "Authorization": f"Bearer {self.worker}", "Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        answer = response.json()
        assert "errors" not in answer, answer
        return elapsed


def environment(data_dir: Path, port: int, database_url: str | None) -> dict[str, str]:
    settings = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    settings |= {
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "text",
        # A 4,000-finding analysis is about 2.5 MB of JSON.
        "MAX_REQUEST_BYTES": str(64 * 1024 * 1024),
        "LEASE_SECONDS": "3600",
        "REGISTER_MAX_ATTEMPTS": str(10**6),
        "LAG_REPORT": str(data_dir.parent / f"lag-{port}.json"),
    }
    if database_url is not None:
        settings["DATABASE_URL"] = database_url
    return settings


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[tuple[str, int]]:
    subprocess.run([sys.executable, "-m", "graph.cli", "migrate"], cwd=REPOSITORY, env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "graph.cli", "create-user", "--email", "worker@example.com",
                    "--role", "WORKER"], input=f"{PASSWORD}\n".encode(), cwd=REPOSITORY, env=env, check=True,
                   capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "bench.lag_serve", "serve"], cwd=REPOSITORY, env=env,
                              start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, server)
        yield base_url, server.pid
    finally:
        stop(server)


async def measure_server(base_url: str, lags: LagReports, figures: Figures, repetitions: int, sizes: list[int],
                         concurrent: int, readers_email: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=600,
                                 limits=httpx.Limits(max_connections=concurrent + 4)) as client:
        owner = (await client.post("/graphql", json={"query": REGISTER, "variables": {
            "e": "owner@example.com", "p": PASSWORD}})).json()["data"]["register"]["token"]
        reader = (await client.post("/graphql", json={"query": REGISTER, "variables": {
            "e": readers_email, "p": PASSWORD}})).json()["data"]["register"]["token"]
        worker = (await client.post("/graphql", json={"query": LOGIN, "variables": {
            "e": "worker@example.com", "p": PASSWORD}})).json()["data"]["login"]["token"]
        api = Api(client, owner, worker)
        # The reader's own tasks, so its list has something to show.
        for _ in range(20):
            await api.data(SUBMIT, {"u": f"https://example.com/{uuid.uuid4().hex}"}, reader)
        # Warm-up: the first request of each kind builds plans and fills caches.
        task_id, claim_id = await api.claimed_task()
        await api.record(task_id, claim_id, 100)

        prober = Prober(base_url)
        prober.start()
        try:
            for size in sizes:
                for _ in range(repetitions):
                    task_id, claim_id = await api.claimed_task()
                    await lags.take()
                    started = time.perf_counter()
                    figures.record.setdefault(size, []).append(await api.record(task_id, claim_id, size))
                    if size == max(sizes):
                        figures.loop_stalls.append(await lags.take())
                        figures.stalls.append(prober.longest_between(started, time.perf_counter()))
        finally:
            prober.stopped.set()
            prober.join()

        # Built before the clock starts: making six bodies of 2.5 MB is the benchmark's work, not the server's.
        bodies = [record_body(task_id, claim_id, max(sizes))
                  for task_id, claim_id in [await api.claimed_task() for _ in range(concurrent)]]
        with reading_again_and_again(base_url, reader) as reads:
            await asyncio.sleep(0.5)
            await lags.take()
            started = time.monotonic()
            await asyncio.gather(*(api.send(body) for body in bodies))
            ended = time.monotonic()
            figures.concurrent_seconds = ended - started
            figures.concurrent_loop_stall = await lags.take()
        # The reads sent while the writes were being recorded.
        figures.reads = [wait for sent, wait in reads if started <= sent < ended]


@contextmanager
def reading_again_and_again(base_url: str, token: str) -> Iterator[list[tuple[float, float]]]:
    """Another client, a process of its own (as another user's browser is), reading its task list one
    request at a time, PROBE_INTERVAL apart; on the way out, its reads: (when sent, how long it took), on
    the monotonic clock every process shares."""
    context = multiprocessing.get_context("spawn")
    stop_reading, (receiving, sending) = context.Event(), context.Pipe(duplex=False)
    process = context.Process(target=_read_again_and_again, args=(base_url, token, stop_reading, sending))
    process.start()
    reads: list[tuple[float, float]] = []
    try:
        yield reads
    finally:
        stop_reading.set()
        reads.extend(receiving.recv())
        process.join()


def _read_again_and_again(base_url: str, token: str, stop_reading: Any, sending: Any) -> None:
    reads = []
    with httpx.Client(base_url=base_url, timeout=600) as client:
        while not stop_reading.is_set():
            sent = time.monotonic()
            response = client.post("/graphql", json={"query": READ}, headers={"Authorization": f"Bearer {token}"})
            assert "errors" not in response.json(), response.text
            reads.append((sent, time.monotonic() - sent))
            time.sleep(PROBE_INTERVAL)
    sending.send(reads)


# The raw floor: the rows recordAnalysis writes, straight to the database, one statement per table.

def floor_rows(count: int, task_id: uuid.UUID) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    now = datetime.now(UTC)
    analysis_id = uuid.uuid4()
    analysis = (analysis_id, task_id, None, None, None, "REJECTED", 42.0, 0.8,
                "several measurements are outside their limits", '{"pages":40}', None, None, now, now)
    finding_rows: list[tuple[Any, ...]] = []
    source_rows: list[tuple[Any, ...]] = []
    for finding in findings(count):
        finding_id = uuid.uuid4()
        finding_rows.append((finding_id, analysis_id, finding["severity"], finding["ruleId"], finding["category"],
                             finding["message"], orjson.dumps(finding["evidence"]).decode(),
                             finding["remediation"], finding["confidence"], None, now, now))
        source_rows.extend((uuid.uuid4(), finding_id, source["pageNumber"], source["section"], source["snippet"],
                            now, now) for source in finding["sources"])
    return analysis, finding_rows, source_rows


ANALYSIS_COLUMNS = ("id", "task_id", "equipment_type", "test_type", "equipment_tag", "verdict", "compliance_score",
                    "confidence_score", "summary", "extraction_result", "validation_result", "claim_id",
                    "created_at", "updated_at")
FINDING_COLUMNS = ("id", "analysis_id", "severity", "rule_id", "category", "message", "evidence", "remediation",
                   "confidence", "artifact_id", "created_at", "updated_at")
SOURCE_COLUMNS = ("id", "finding_id", "page_number", "section", "snippet", "created_at", "updated_at")


async def postgres_floor(dsn: str, count: int, task_id: uuid.UUID) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        analysis, finding_rows, source_rows = floor_rows(count, task_id)
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table("analyses", records=[analysis], columns=ANALYSIS_COLUMNS)
            await connection.copy_records_to_table("findings", records=finding_rows, columns=FINDING_COLUMNS)
            await connection.copy_records_to_table("source_references", records=source_rows, columns=SOURCE_COLUMNS)
        return time.perf_counter() - started
    finally:
        await connection.close()


def _postgres_floor_now(dsn: str, count: int, task_id: uuid.UUID) -> float:
    return asyncio.run(postgres_floor(dsn, count, task_id))


def sqlite_floor(path: Path, count: int, task_id: uuid.UUID) -> float:
    def plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
        # As SQLAlchemy stores them on SQLite: uuids as 32 hex digits, times naive UTC.
        return tuple(value.hex if isinstance(value, uuid.UUID)
                     else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime)
                     else value
                     for value in row)

    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=NORMAL")
        # The API's writes left the WAL long: the floor starts without a checkpoint in its way (a kinder start
        # than the API got).
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        analysis, finding_rows, source_rows = floor_rows(count, task_id)
        tables = [(table, columns, [plain(row) for row in rows])
                  for table, columns, rows in (("analyses", ANALYSIS_COLUMNS, [analysis]),
                                               ("findings", FINDING_COLUMNS, finding_rows),
                                               ("source_references", SOURCE_COLUMNS, source_rows))]
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        for table, columns, rows in tables:
            marks = ", ".join("?" * len(columns))
            connection.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        connection.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        connection.close()


async def floor_task_ids(base_url: str, count: int) -> list[uuid.UUID]:
    """Tasks without an analysis, for the floor's rows to hang from."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        token = (await client.post("/graphql", json={"query": REGISTER, "variables": {
            "e": "floor@example.com", "p": PASSWORD}})).json()["data"]["register"]["token"]
        ids = []
        for _ in range(count):
            response = await client.post("/graphql", json={"query": SUBMIT, "variables": {
                "u": f"https://example.com/{uuid.uuid4().hex}"}}, headers={"Authorization": f"Bearer {token}"})
            ids.append(from_global_id(response.json()["data"]["submitUrl"]["task"]["id"], "Task")[1])
        return ids


def milliseconds(values: list[float], quantile: float | None = None) -> float:
    if quantile is None:
        return 1000 * statistics.median(values)
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def run_database(name: str, figures: Figures, env: dict[str, str], port: int, args: argparse.Namespace,
                 floor: Callable[[int, uuid.UUID], float]) -> None:
    with serving(env, port) as (base_url, pid):
        lags = LagReports(pid, Path(env["LAG_REPORT"]))
        asyncio.run(measure_server(base_url, lags, figures, args.repetitions, args.size_list, args.concurrent,
                                   f"reader-{name}@example.com"))
        tasks = asyncio.run(floor_task_ids(base_url, len(args.size_list) * args.repetitions))
        for size in args.size_list:
            for _ in range(args.repetitions):
                figures.floor.setdefault(size, []).append(floor(size, tasks.pop()))


def report(all_figures: list[Figures], args: argparse.Namespace) -> str:
    largest = max(args.size_list)
    lines = [f"recordAnalysis over HTTP, one uvicorn worker, {os.cpu_count()} CPUs; findings of "
             f"{SOURCES_PER_FINDING} sources each; medians of {args.repetitions} runs", "",
             "| database | findings | recordAnalysis | raw floor | ratio |", "|---|---:|---:|---:|---:|"]
    for figures in all_figures:
        for size in args.size_list:
            api, floor = milliseconds(figures.record[size]), milliseconds(figures.floor[size])
            lines.append(f"| {figures.database} | {size:,} | {api:,.0f} ms | {floor:,.0f} ms | {api / floor:.1f}× |")
    lines += ["", f"One {largest:,}-finding write at a time: the event loop's longest stall (median of the runs' "
              "longest; in brackets, the CPU the loop's thread used in it: the rest it waited for a CPU or the "
              "interpreter), and the longest /healthz wait another client met.", "",
              "| database | loop's longest stall | /healthz longest wait |", "|---|---:|---:|"]
    for figures in all_figures:
        wall = statistics.median(stall for stall, _ in figures.loop_stalls)
        cpu = statistics.median(cpu for _, cpu in figures.loop_stalls)
        lines.append(f"| {figures.database} | {1000 * wall:,.0f} ms ({1000 * cpu:,.0f} ms CPU) | "
                     f"{1000 * statistics.median(figures.stalls):,.0f} ms |")
    lines += ["", f"{args.concurrent} × {largest:,}-finding writes at once, while another user reads their task "
              "list again and again from a process of its own (one request at a time, 5 ms apart):", "",
              "| database | all done in | loop's longest stall | reader p50 | p99 | max | reads |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for figures in all_figures:
        wall, cpu = figures.concurrent_loop_stall
        lines.append(f"| {figures.database} | {figures.concurrent_seconds:,.2f} s | {1000 * wall:,.0f} ms "
                     f"({1000 * cpu:,.0f} ms CPU) | {milliseconds(figures.reads, 0.5):,.1f} ms | "
                     f"{milliseconds(figures.reads, 0.99):,.1f} ms | {1000 * max(figures.reads):,.1f} ms | "
                     f"{len(figures.reads)} |")
    return "\n".join(lines)


def record(text: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True,
                              text=True).stdout.strip()
    entry = f"## {stamp} — bench.writes at {revision}\n\n{text}\n\n"
    results = RESULTS.read_text()
    # Newest first, like the other runs': before the first dated entry.
    first = re.search(r"^## \d{4}-\d{2}-\d{2} ", results, flags=re.MULTILINE)
    at = first.start() if first else len(results)
    RESULTS.write_text(results[:at] + entry + results[at:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.writes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="findings per analysis, comma-separated")
    parser.add_argument("--repetitions", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument("--concurrent", type=int, default=CONCURRENT, help="analyses recorded at once (default 6)")
    parser.add_argument("--databases", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite")
    parser.add_argument("--no-record", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    args.size_list = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]

    all_figures = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="auditgraph-writes-")))
        for name in databases:
            figures = Figures(name)
            port = free_port()
            floor: Callable[[int, uuid.UUID], float]
            if name == "postgresql":
                server: PostgresServer = stack.enter_context(throwaway_postgres())
                asyncio.run(_create_database(server))
                env = environment(folder / "pg-data", port, server.url(DATABASE))
                dsn = server.dsn(DATABASE)
                floor = partial(_postgres_floor_now, dsn)
            else:
                env = environment(folder / "sqlite-data", port, None)
                floor = partial(sqlite_floor, folder / "sqlite-data" / "auditgraph.db")
            run_database(name, figures, env, port, args, floor)
            all_figures.append(figures)
            print(f"{name}: done", file=sys.stderr)
    text = report(all_figures, args)
    print(text)
    if not args.no_record:
        record(text)
    return 0


async def _create_database(server: PostgresServer) -> None:
    connection = await asyncpg.connect(server.dsn("postgres"))
    try:
        await connection.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await connection.close()


if __name__ == "__main__":
    sys.exit(main())

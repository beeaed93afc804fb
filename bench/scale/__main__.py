"""`python -m bench.scale`: the same reads at 1x, 10x and 50x the 20,000-task database (issue #23).

For each size: the database is built (bench/scale/build.py) or reused from bench/.work/scale/,
and `upgrade head` runs timed while a reader keeps reading (a no-op when the database is at head
already). Then one API worker per size is started, and each operation is sent one request at a
time (warm-up, then measured) to every size in turn, beside hand-written SQL for the same answer;
every reply is checked against the SQL's. A growth table goes to the console and into bench/RESULTS.md.
"""

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.ext.asyncio import create_async_engine

from bench import machine
from bench.processes import ServerProcess, uvicorn_argv
from bench.scale import operations as ops
from bench.scale.build import ADMIN, BIG, LOAD_REVISION, SMALL, WORKER, Account, Builder, Shape
from bench.scale.server import WORK_DIR, kept_cluster
from bench.targets import API_FACTORY, PROJECT_ROOT, SECRET_KEY
from bench.workload import BENCH_PASSWORD, LOGIN_MUTATION
from db import migrations
from tests.cli import free_port
from tests.throwaway_postgres import PostgresServer, PostgresUnavailable

RESULTS = Path(__file__).resolve().parent.parent / "RESULTS.md"
SECTION_TITLE = "## Scale: the same reads at 1x, 10x and 50x (`python -m bench.scale`)"
SECTION_END = "<!-- end of the scale section -->"
BUILDS = WORK_DIR / "builds.json"
READER_INTERVAL = 0.1


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,50",
                        help="comma-separated factors of 20,000 tasks (default 1,10,50; 1 alone takes minutes)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests per operation (default 5)")
    parser.add_argument("--requests", type=int, default=30, help="measured requests per operation (default 30)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds of measured requests per operation (every size's turns together), after "
                             "which a slow one stops early (at least 5 requests; default 60)")
    parser.add_argument("--rebuild", action="store_true", help="build the databases again even when kept")
    parser.add_argument("--no-record", action="store_true", help="print the table only; leave bench/RESULTS.md")
    args = parser.parse_args(argv)
    try:
        args.factors = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    except ValueError as error:
        parser.error(str(error))
    if not args.factors or min(args.factors) < 1 or min(args.warmup + 1, args.requests) < 1:
        parser.error("sizes, requests and warm-up must be positive")
    return args


@dataclass
class SizeResult:
    shape: Shape
    build: str = ""
    upgrade: str = ""
    timings: dict[str, ops.Timings] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- building and upgrading -----------------------------------------------------------------------------

def _load_builds() -> dict[str, Any]:
    return json.loads(BUILDS.read_text()) if BUILDS.exists() else {}


def _save_build(shape: Shape, record: dict[str, Any]) -> None:
    builds = _load_builds()
    builds[str(shape.factor)] = builds.get(str(shape.factor), {}) | record
    BUILDS.write_text(json.dumps(builds, indent=2) + "\n")


async def prepare(server: PostgresServer, shape: Shape, rebuild: bool, result: SizeResult) -> None:
    builder = Builder(server.dsn, server.url)
    if not rebuild and await builder.is_built(shape) and not _known(await _revision(server.url(shape.database()))):
        print(f"{shape.describe()}: the kept database is at a revision the migrations no longer have; "
              "building it again", flush=True)
        rebuild = True
    if rebuild or not await builder.is_built(shape):
        print(f"{shape.describe()}: building…", flush=True)
        seconds = await builder.build(shape)
        _save_build(shape, {"built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                            "build_seconds": round(seconds, 1), "steps": builder.steps})
        result.build = f"built in {seconds:.0f} s"
    else:
        record = _load_builds().get(str(shape.factor), {})
        result.build = f"kept (built in {record.get('build_seconds', '?')} s on {record.get('built_at', '?')})"
    print(f"{shape.describe()}: {result.build}", flush=True)
    result.upgrade = await upgrade_to_head(server, shape)
    print(f"{shape.describe()}: {result.upgrade}", flush=True)


def _known(revision: str | None) -> bool:
    if revision is None:
        return False
    try:
        return ScriptDirectory.from_config(migrations.alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


async def _revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        return await migrations.current_revision(engine)
    finally:
        await engine.dispose()


async def _upgrade(url: str) -> None:
    engine = create_async_engine(url)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


@dataclass
class Reader:
    """Reads as the API of the old schema does while the upgrade runs: a page of the big user's tasks
    and the small user's dashboard, every READER_INTERVAL seconds, each timed."""

    dsn: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(self.dsn, statement_cache_size=0)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    await ops.TaskListing().sql(connection, BIG.id)
                    await ops.dashboard_sql(connection, SMALL.id)
                except (asyncpg.PostgresError, OSError) as error:
                    self.errors.append(f"{type(error).__name__}: {error}")
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), READER_INTERVAL)
        finally:
            await connection.close()

    def describe(self) -> str:
        if not self.latencies_ms:
            return "the reader made no read"
        values = self.latencies_ms
        return (f"{len(values)} reads (a page of 50 + a dashboard) during it: median "
                f"{ops.Timings.median(values):.1f} ms, p95 {ops.Timings.p95(values):.1f} ms, max {max(values):.0f} ms, "
                f"{len(self.errors)} errors" + (f" (first: {self.errors[0]})" if self.errors else ""))


async def upgrade_to_head(server: PostgresServer, shape: Shape) -> str:
    url, head = server.url(shape.database()), migrations.head_revision()
    current = await _revision(url)
    if current == head:
        if head == LOAD_REVISION:
            return f"at head ({head}) already, the revision the rows were loaded at: no upgrade to time"
        earlier = _load_builds().get(str(shape.factor), {}).get("upgrade")
        return f"at head ({head}) already" + (
            f"; its upgrade from {earlier['from']} took {earlier['seconds']} s when it ran; {earlier['reader']}"
            if earlier else "")
    reader, stop = Reader(server.dsn(shape.database())), asyncio.Event()
    reading = asyncio.create_task(reader.run(stop))
    started = time.monotonic()
    try:
        # In a thread of its own, so the reader's timings are not the upgrade's waits.
        await asyncio.to_thread(asyncio.run, _upgrade(url))
    finally:
        seconds = time.monotonic() - started
        stop.set()
        await reading
    connection = await asyncpg.connect(server.dsn(shape.database()))
    try:
        vacuum_started = time.monotonic()
        # What autovacuum would soon do to the rows and tables the upgrade wrote.
        await connection.execute("VACUUM (ANALYZE)")
        vacuum = time.monotonic() - vacuum_started
    finally:
        await connection.close()
    _save_build(shape, {"upgrade": {"from": current, "to": head, "seconds": round(seconds, 1),
                                    "reader": reader.describe()}})
    return (f"upgrade {current} → {head} took {seconds:.1f} s; {reader.describe()}; "
            f"VACUUM (ANALYZE) after it {vacuum:.0f} s")


# --- measuring ----------------------------------------------------------------------------------------------

def _environment(**values: str) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items()
                 if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")}
    return inherited | {"PYTHONUNBUFFERED": "1"} | values


def api_server(database_url: str) -> ServerProcess:
    port = free_port()
    env = _environment(DATABASE_URL=database_url, DATA_DIR=str(WORK_DIR / "data"), SECRET_KEY=SECRET_KEY,
                       ENVIRONMENT="production", LOG_LEVEL="warning", METRICS_ENABLED="true")
    return ServerProcess(name="api", argv=uvicorn_argv(API_FACTORY, PROJECT_ROOT, port, 1), env=env, port=port,
                         log_path=WORK_DIR / "logs" / "api.log", cwd=PROJECT_ROOT)


class Api:
    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self.client = client
        self.graphql_url = f"{base_url}/graphql"
        self.metrics_url = f"{base_url}/metrics"
        self.tokens: dict[str, str] = {}
        self.tasks_query = ops.TASKS_QUERY % ""

    async def learn_schema(self, token: str) -> None:
        """Asks for totalCountIsExact where the schema has it (introspection may be off in production)."""
        query = ops.TASKS_QUERY % ops.EXACTNESS
        response = await self.client.post(self.graphql_url, json={"query": query},
                                          headers={"authorization": f"Bearer {token}"})
        if not response.json().get("errors"):
            self.tasks_query = query

    async def graphql(self, query: str, variables: dict[str, Any] | None = None,
                      token: str | None = None) -> dict[str, Any]:
        headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
        response = await self.client.post(self.graphql_url, headers=headers,
                                          content=orjson.dumps({"query": query, "variables": variables or {}}))
        document = response.json()
        if response.status_code != 200 or document.get("errors"):
            raise ops.AnswerDiffers(f"HTTP {response.status_code}: {document.get('errors') or response.text[:300]}")
        return dict(document["data"])

    async def log_in(self, account: Account) -> str:
        data = await self.graphql(LOGIN_MUTATION, {"email": account.email, "password": BENCH_PASSWORD})
        self.tokens[account.key] = data["login"]["token"]
        return self.tokens[account.key]


def _operations(api: Api, reference: asyncpg.Connection, resume_after: int,
                resume_count: int) -> list[ops.Operation]:
    def dashboard(account: Account, name: str) -> ops.Operation:
        user = account.id if account.role == "USER" else None

        async def request() -> Any:
            return ops.dashboard_reply(await api.graphql(ops.DASHBOARD_QUERY, token=api.tokens[account.key]))

        return ops.Operation(name, request, lambda connection: ops.dashboard_sql(connection, user))

    def listing(name: str, listing: ops.TaskListing) -> ops.Operation:
        async def request() -> Any:
            return ops.tasks_reply(await api.graphql(api.tasks_query, listing.variables(), api.tokens[BIG.key]))

        return ops.Operation(name, request, lambda connection: listing.sql(connection, BIG.id))

    async def resume() -> Any:
        return await ops.resume_over_sse(api.client, api.graphql_url, api.tokens[SMALL.key], resume_after,
                                         resume_count)

    async def scrape() -> Any:
        response = await api.client.get(api.metrics_url)
        response.raise_for_status()
        return ops.metrics_reply(response.text)

    return [
        dashboard(SMALL, "`dashboard`, user with 25 tasks, fresh server"),
        dashboard(BIG, "`dashboard`, user owning half the tasks"),
        dashboard(WORKER, "`dashboard`, WORKER"),
        dashboard(ADMIN, "`dashboard`, ADMIN"),
        dashboard(SMALL, "`dashboard`, user with 25 tasks, after the big user's"),
        listing("`tasks(first: 50)` + `totalCount`, big user", ops.TaskListing()),
        listing("… `filter: {verdict: [REJECTED]}`", ops.TaskListing(filter={"verdict": ["REJECTED"]})),
        listing(f"… `filter: {{filenameContains: \"{ops.SELECTIVE_FILENAME}\"}}`",
                ops.TaskListing(filter={"filenameContains": ops.SELECTIVE_FILENAME})),
        listing("… `orderBy: {field: COMPLIANCE_SCORE, direction: DESC}`",
                ops.TaskListing(order_by={"field": "COMPLIANCE_SCORE", "direction": "DESC"})),
        ops.Operation(f"`myTaskEvents(afterPosition:)` over SSE, user with 25 tasks, "
                      f"{ops.RESUME_SHARE:.0%} of the log back",
                      resume, lambda connection: ops.events_sql(connection, SMALL.id, resume_after)),
        ops.Operation("`/metrics` scrape (queue by status)", scrape, ops.metrics_sql),
    ]


@dataclass
class Serving:
    """One size's API server, its reference connection and its operations."""

    result: SizeResult
    reference: asyncpg.Connection
    operations: list[ops.Operation]


@contextlib.asynccontextmanager
async def serving(server: PostgresServer, result: SizeResult,
                  client: httpx.AsyncClient) -> AsyncIterator[Serving]:
    shape = result.shape
    reference = await asyncpg.connect(server.dsn(shape.database()), statement_cache_size=0)
    process = api_server(server.url(shape.database()))
    try:
        resume_after = await ops.resume_position(reference)
        resume_count = len(await ops.events_sql(reference, SMALL.id, resume_after))
        if resume_count == 0:
            raise ops.AnswerDiffers("the quiet user has no event to catch up on; the database's shape changed")
        result.notes.append(f"the quiet user resumes after position {resume_after:,} and catches up on "
                            f"{resume_count} events")
        await process.start()
        api = Api(client, process.base_url)
        for account in (BIG, SMALL, WORKER, ADMIN):
            await api.log_in(account)
        await api.learn_schema(api.tokens[SMALL.key])
        yield Serving(result, reference, _operations(api, reference, resume_after, resume_count))
    finally:
        process.stop()
        await reference.close()


async def measure_sizes(server: PostgresServer, results: list[SizeResult], plan: ops.Plan) -> None:
    """Every size's server at once, each operation sent to them in turn, request by request: a growth
    figure compares sizes measured over the same minutes, not minutes apart on a shared machine."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), trust_env=False) as client, \
            contextlib.AsyncExitStack() as stack:
        servings = [await stack.enter_async_context(serving(server, result, client)) for result in results]
        for position, operation in enumerate(servings[0].operations):
            sides = [(each.operations[position], each.reference) for each in servings]
            for each, timings in zip(servings, await ops.measure(sides, plan), strict=True):
                each.result.timings[operation.name] = timings
                print(f"  {each.result.shape.factor}x {operation.name}: API median "
                      f"{ops.Timings.median(timings.api_ms):.1f} ms (p95 {ops.Timings.p95(timings.api_ms):.1f}, "
                      f"{len(timings.api_ms)} requests); SQL median {ops.Timings.median(timings.sql_ms):.1f} ms",
                      flush=True)


# --- the report ------------------------------------------------------------------------------------------------

def _cell(values: list[float]) -> str:
    median, p95 = ops.Timings.median(values), ops.Timings.p95(values)
    text = f"{median:,.1f}" if median < 100 else f"{median:,.0f}"
    return text + (f" (p95 {p95:,.0f})" if p95 > 2 * median and p95 > 10 else "")


def table(results: list[SizeResult]) -> str:
    sizes = [result.shape for result in results]
    header = ["operation (median ms, one request at a time)"]
    for shape in sizes:
        header += [f"{shape.factor}x API", f"{shape.factor}x SQL"]
    if len(sizes) > 1:
        header.append(f"growth {sizes[-1].factor}x/{sizes[0].factor}x (API)")
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for name in results[0].timings:
        row = [name]
        for result in results:
            timings = result.timings.get(name)
            row += [_cell(timings.api_ms), _cell(timings.sql_ms)] if timings else ["—", "—"]
        if len(sizes) > 1:
            first, last = results[0].timings.get(name), results[-1].timings.get(name)
            row.append(f"{ops.Timings.median(last.api_ms) / ops.Timings.median(first.api_ms):.1f}×"
                       if first and last else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def section(results: list[SizeResult], argv: list[str], environment: dict[str, str], started: datetime,
            plan: ops.Plan) -> str:
    command = " ".join(["python -m bench.scale", *argv])
    lines = [
        SECTION_TITLE, "",
        f"Newest run: {started:%Y-%m-%d %H:%M} UTC, `{command}`, at {_commit()}, schema head "
        f"{migrations.head_revision()}. One API worker per size (uvicorn, ENVIRONMENT=production, the default "
        f"pool) on a throwaway PostgreSQL 15 (bench/__main__.py's settings); requests sent one at a time, to "
        f"every size in turn (which goes first rotates), {plan.warmup} warm-up then {plan.requests} measured "
        f"each (fewer, at least {plan.least}, once an operation has taken {plan.budget:.0f} s). Beside each, hand-written SQL over the base tables for "
        "the same answer (asyncpg, custom plans), and every API reply checked equal to it. The databases "
        "(bench/scale/build.py): 20,000 tasks × the factor, migrated to 0003, bulk-loaded on the server, "
        "`VACUUM (ANALYZE)`d, then `upgrade head` timed while a reader reads.", "",
        table(results), "",
    ]
    for result in results:
        lines.append(f"- {result.shape.describe()}: {'; '.join([result.build, result.upgrade, *result.notes])}.")
    lines += ["", "Machine: " + "; ".join(f"{key} {value}" for key, value in environment.items()) + ". "
              "The machine is shared: other work ran beside this benchmark.", "", SECTION_END]
    return "\n".join(lines)


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True).stdout.strip() or "an unknown commit"


def record(text: str) -> None:
    """Replaces the scale section of bench/RESULTS.md, or puts it before the other benchmarks."""
    document = RESULTS.read_text()
    if SECTION_TITLE in document:
        before, _, rest = document.partition(SECTION_TITLE)
        _, _, after = rest.partition(SECTION_END)
        document = before + text + after
    else:
        anchor = "## The other benchmarks"
        before, _, after = document.partition(anchor)
        document = before + text + "\n\n" + anchor + after
    RESULTS.write_text(document)


async def run(args: argparse.Namespace, argv: list[str]) -> int:
    started = datetime.now(UTC)
    plan = ops.Plan(warmup=args.warmup, requests=args.requests, budget=args.budget)
    results: list[SizeResult] = []
    with kept_cluster() as cluster:
        server = cluster.server
        connection = await asyncpg.connect(server.dsn("postgres"))
        try:
            version = await connection.fetchval("SHOW server_version")
        finally:
            await connection.close()
        environment = machine.describe(version, machine.background_load())
        for factor in args.factors:
            result = SizeResult(Shape(factor))
            await prepare(server, result.shape, args.rebuild, result)
            results.append(result)
        print("measuring every size in turn…", flush=True)
        await measure_sizes(server, results, plan)
    text = section(results, argv, environment, started, plan)
    print("\n" + text)
    if not args.no_record:
        record(text)
        print(f"recorded in {RESULTS}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_arguments(argv)
    try:
        return asyncio.run(run(args, argv))
    except PostgresUnavailable as error:
        print(f"cannot start PostgreSQL: {error}", file=sys.stderr)
        return 2
    except ops.AnswerDiffers as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())


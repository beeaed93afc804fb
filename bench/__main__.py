"""`python -m bench` (`./dev bench`): the dashboard read against the floor, on PostgreSQL and SQLite.

Starts a throwaway PostgreSQL, seeds it (and a SQLite file kept in bench/.work/),
starts each server in its own process on 127.0.0.1, drives them with wrk,
prints the tables and records them in bench/RESULTS.md and bench/results.png.
Every process it starts is stopped on the way out, on error or Ctrl-C too.
"""

import argparse
import asyncio
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench import machine, report
from bench.load import wrk_path
from bench.pgstats import PostgresStats
from bench.results import RunResults
from bench.runner import LoadPlan, Runner
from bench.seed import ForeignData, seed
from bench.targets import Kind, Target, make_target
from bench.workload import BENCH_USER_INDEX, MAIN_PAGE_SIZE, MAX_PAGE_SIZE, PAGE_SIZES, Scale
from tests.throwaway_postgres import PostgresUnavailable, throwaway_postgres
from tests.topology import running_pgbouncer

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_KINDS = (Kind.FLOOR, Kind.GRAPHQL_POSTGRES, Kind.GRAPHQL_SQLITE)
WORK_DIR = BENCH_DIR / ".work"
DATABASE = "auditgraph_bench"
POSTGRES_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "shared_buffers": "512MB",
    "effective_cache_size": "4GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=1,
                        help="database size factor: 1 is 100 users with 200 tasks of 10 findings each; "
                             "10 gives each user 2,000 tasks (default 1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn workers per server, the floor's included (default 1)")
    parser.add_argument("--servers", default=",".join(kind.value for kind in DEFAULT_KINDS),
                        help=f"comma-separated, from {', '.join(kind.value for kind in Kind)} "
                             f"(default {','.join(kind.value for kind in DEFAULT_KINDS)}); graphql-pgbouncer is the "
                             "API through PgBouncer in transaction mode, with its ratio to graphql-postgres")
    parser.add_argument("--page-sizes", default=",".join(map(str, PAGE_SIZES)),
                        help=f"comma-separated page sizes, at most {MAX_PAGE_SIZE} (default {','.join(map(str, PAGE_SIZES))})")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run under load (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server and page size")
    parser.add_argument("--sequential", type=int, default=3,
                        help="seconds per sequential (one connection) run (default 3)")
    parser.add_argument("--repetitions", type=int, default=3, help="repetitions per server and page size")
    parser.add_argument("--connections", type=int, default=10, help="concurrent connections (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--baseline", default="",
                        help="comma-separated git revisions: each one's API is served on PostgreSQL beside "
                             "the current one, to measure a change's effect in the same run")
    parser.add_argument("--quick", action="store_true",
                        help="3 s runs, 1 s warm-up, 2 s sequential, 2 repetitions: about two minutes")
    parser.add_argument("--no-record", action="store_true",
                        help="print the tables only; leave bench/RESULTS.md and bench/results.png alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.sequential, args.repetitions = 3, 1, 2, 2
    try:
        args.kinds = [Kind(name.strip()) for name in args.servers.split(",") if name.strip()]
        args.page_size_list = sorted({int(size) for size in args.page_sizes.split(",") if size.strip()})
        args.revisions = [revision.strip() for revision in args.baseline.split(",") if revision.strip()]
    except ValueError as error:
        parser.error(str(error))
    if not args.kinds or not args.page_size_list:
        parser.error("give at least one server and one page size")
    if max(args.page_size_list) > MAX_PAGE_SIZE:
        parser.error(f"page sizes go up to {MAX_PAGE_SIZE}")
    if min(args.duration, args.warmup, args.sequential, args.repetitions, args.connections, args.threads,
           args.workers, args.scale, *args.page_size_list) < 1:
        parser.error("every count, duration and page size must be at least 1")
    return args


@dataclass
class Databases:
    postgres_url: str | None = None
    stats: PostgresStats | None = None
    sqlite_url: str | None = None
    sqlite_dir: Path | None = None


async def _timed_seed(name: str, url: str, scale: Scale) -> None:
    started = time.monotonic()
    seeded = await seed(url, scale)
    print(f"{name}: {'seeded' if seeded else 'reused'} ({time.monotonic() - started:.0f} s)", flush=True)


async def start_postgres(stack: AsyncExitStack, databases: Databases, scale: Scale) -> None:
    print("starting a throwaway PostgreSQL…", flush=True)
    server = stack.enter_context(throwaway_postgres(**POSTGRES_SETTINGS))
    connection = await asyncpg.connect(server.dsn("postgres"))
    try:
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()
    databases.postgres_url = server.url(DATABASE)
    await _timed_seed("PostgreSQL", databases.postgres_url, scale)
    databases.stats = await PostgresStats.open(server.dsn("postgres"), DATABASE)
    stack.push_async_callback(databases.stats.close)


async def prepare_sqlite(databases: Databases, scale: Scale) -> None:
    """The SQLite file outlives the run: seeded once per scale, reused after."""
    folder = WORK_DIR / f"sqlite-scale{scale.factor}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "auditgraph.db"
    url = f"sqlite+aiosqlite:///{path}"
    try:
        await _timed_seed(f"SQLite {path}", url, scale)
    except ForeignData:
        for leftover in folder.glob("auditgraph.db*"):
            leftover.unlink()
        await _timed_seed(f"SQLite {path}", url, scale)
    databases.sqlite_url, databases.sqlite_dir = url, folder


async def describe_run(args: argparse.Namespace, scale: Scale, databases: Databases,
                       targets: list[Target]) -> RunResults:
    load = machine.background_load()
    if load > 0.15:
        print(f"warning: {load:.0%} of the CPUs are busy with other processes; "
              "the figures will be lower and noisier than on a quiet machine", flush=True)
    postgres_version = await databases.stats.server_version() if databases.stats else None
    return RunResults(
        servers={target.name: target.label for target in targets},
        page_sizes=args.page_size_list,
        main_page_size=MAIN_PAGE_SIZE if MAIN_PAGE_SIZE in args.page_size_list else args.page_size_list[0],
        settings={"database": scale.describe(), "uvicorn workers": str(args.workers),
                  "connections": str(args.connections), "wrk threads": str(args.threads),
                  "runs": f"{args.repetitions} × {args.duration} s under load + {args.sequential} s "
                          f"sequential, {args.warmup} s warm-up"},
        environment=machine.describe(postgres_version, load),
    )


async def benchmark(args: argparse.Namespace) -> RunResults:
    scale = Scale(factor=args.scale)
    plan = LoadPlan(duration=args.duration, warmup=args.warmup, sequential=args.sequential,
                    repetitions=args.repetitions, connections=args.connections, threads=args.threads)
    async with AsyncExitStack() as stack:
        databases = Databases()
        if args.revisions or any(kind is not Kind.GRAPHQL_SQLITE for kind in args.kinds):
            await start_postgres(stack, databases, scale)
        if Kind.GRAPHQL_SQLITE in args.kinds:
            await prepare_sqlite(databases, scale)

        pooler_url = None
        if Kind.GRAPHQL_PGBOUNCER in args.kinds:
            assert databases.postgres_url is not None
            address = make_url(databases.postgres_url)
            bouncer = stack.enter_context(running_pgbouncer({DATABASE: (address.port or 5432, DATABASE)}))
            pooler_url = bouncer.url(DATABASE)
        servers = [(kind, None) for kind in args.kinds]
        servers += [(Kind.GRAPHQL_POSTGRES, revision) for revision in args.revisions]
        targets: list[Target] = []
        for kind, revision in servers:
            target = make_target(kind, postgres_url=databases.postgres_url, sqlite_url=databases.sqlite_url,
                                 sqlite_dir=databases.sqlite_dir, work_dir=WORK_DIR, workers=args.workers,
                                 revision=revision, pooler_url=pooler_url)
            stack.callback(target.server.stop)
            targets.append(target)
        results = await describe_run(args, scale, databases, targets)

        runner = Runner(results, plan, databases.stats, BENCH_USER_INDEX, WORK_DIR / "scripts")
        print(f"starting {len(targets)} server(s)…", flush=True)
        for target in targets:
            await runner.start(target)
        for page_size in results.page_sizes:
            live = [target for target in targets if target.name not in results.failures]
            if not live:
                break
            print(f"page size {page_size}:", flush=True)
            await runner.run_page_size(live, page_size)
        for target in targets:
            await runner.recheck(target, results.main_page_size)
    return results


class Interruption:
    """Remembers a Ctrl-C or SIGTERM, so the errors it causes on the way out read as what they are."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def install(self, task: asyncio.Task[RunResults]) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._interrupt, signum, task)

    def _interrupt(self, signum: signal.Signals, task: asyncio.Task[RunResults]) -> None:
        self.signal = signal.Signals(signum).name
        # Cancelling unwinds every `async with`/`finally`: servers, then PostgreSQL, stop.
        task.cancel()


async def main_async(args: argparse.Namespace, interruption: Interruption) -> RunResults:
    task = asyncio.current_task()
    assert task is not None
    interruption.install(task)
    return await benchmark(args)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        wrk_path()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    interruption = Interruption()
    try:
        results = asyncio.run(main_async(args, interruption))
    except PostgresUnavailable as error:
        print(f"cannot start PostgreSQL: {error}", file=sys.stderr)
        return 2
    except BaseException:
        if interruption.signal is None:
            raise
        print(f"\n{interruption.signal}: stopped; every server and the PostgreSQL this run started "
              "have been shut down", file=sys.stderr)
        return 130
    title = f"{started:%Y-%m-%d %H:%M} UTC — scale {args.scale}, {args.workers} worker(s)"
    if args.revisions:
        title += f", beside {', '.join(args.revisions)}"
    section = report.section(results, title)
    print("\n" + section)
    if not args.no_record:
        report.write_markdown(BENCH_DIR / "RESULTS.md", section)
        report.write_plot(BENCH_DIR / "results.png", results, title)
        print(f"recorded in {BENCH_DIR / 'RESULTS.md'} and {BENCH_DIR / 'results.png'}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())

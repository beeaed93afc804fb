"""What request logs and metrics cost on the dashboard read: `python -m bench.observability`.

Serves the API twice on one seeded throwaway PostgreSQL, each under uvicorn
with one worker: as this checkout has it, with every request logged as a JSON
line (LOG_LEVEL=info, LOG_FORMAT=json, the configuration `auditgraph serve`
applies) and /metrics on (METRICS_ENABLED=true); and as commit `--baseline`
had it, before any of that existed. Both are driven alike by wrk through the
main benchmark's runner (bench/runner.py), and the server CPU per request is
compared. Afterwards the log is checked for one line per request and /metrics
is read once, so the figures are those of a server that really logged and counted.

The machine's noise between runs is larger than the effect, so the same work is
also timed alone, in this process: the request middleware with its JSON log line
(written to /dev/null) and metrics, and the SQL hooks for the statements the
dashboard read runs, around an app that does nothing; its CPU per request is
set against the API's, and that share (target: under 5 %) is the exit status.
"""

import argparse
import asyncio
import json
import logging.config
import os
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.__main__ import WORK_DIR, Databases, describe_run, start_postgres
from bench.load import wrk_path
from bench.results import Cell
from bench.runner import LoadPlan, Runner
from bench.targets import Kind, Target, make_target
from bench.workload import BENCH_USER_INDEX, MAIN_PAGE_SIZE, Scale
from db.settings import Settings
from graph.http.observed_requests import ObservedRequests
from graph.observability.facts import current
from graph.observability.logs import log_config
from graph.observability.sql import _after, _before

# The last commit before request logs and metrics; the default baseline.
BEFORE_OBSERVABILITY = "af365e3"
TARGET_SHARE = 0.05
# What the dashboard read runs: the token's account, the page of tasks, their analyses, their findings.
STATEMENTS_PER_READ = 4


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=BEFORE_OBSERVABILITY,
                        help=f"the revision to compare with, one without logs and metrics (default {BEFORE_OBSERVABILITY})")
    parser.add_argument("--page-size", type=int, default=MAIN_PAGE_SIZE, help="tasks per dashboard read (default 50)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run under load (default 10)")
    parser.add_argument("--repetitions", type=int, default=5, help="runs per server, alternating (default 5)")
    parser.add_argument("--quick", action="store_true", help="3 repetitions of 5 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repetitions = 5, 3
    return args


def observed(target: Target, work_dir: Path) -> Target:
    """The current API with the request log and metrics on, logging as `auditgraph serve` configures it."""
    settings = Settings(_env_file=None, LOG_LEVEL="info", LOG_FORMAT="json")
    config = work_dir / "observed-log-config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(log_config(settings), default=lambda value: f"{value.__module__}.{value.__name__}"))
    server = target.server
    server.env = {**server.env, "LOG_LEVEL": "info", "LOG_FORMAT": "json", "METRICS_ENABLED": "true"}
    level = server.argv.index("--log-level")
    server.argv = [*server.argv[:level], "--log-config", str(config)]
    return target


@dataclass
class Measured:
    cpu_ms: float  # per request, over every run
    run_cpu_ms: list[float]  # per request, run by run: how much the machine's noise moves it


def _measured(cell: Cell) -> Measured:
    return Measured(cell.server_cpu_ms_per_request,
                    [1000 * run.server_cpu_seconds / run.window_requests for run in cell.loaded])


async def measure(args: argparse.Namespace) -> tuple[Measured, Measured, int, int, str]:
    plan = LoadPlan(duration=args.duration, warmup=3, sequential=1, repetitions=args.repetitions,
                    connections=10, threads=2)
    async with AsyncExitStack() as stack:
        databases = Databases()
        await start_postgres(stack, databases, Scale(factor=1))
        current = observed(make_target(Kind.GRAPHQL_POSTGRES, postgres_url=databases.postgres_url, sqlite_url=None,
                                       sqlite_dir=None, work_dir=WORK_DIR, workers=1), WORK_DIR)
        baseline = make_target(Kind.GRAPHQL_POSTGRES, postgres_url=databases.postgres_url, sqlite_url=None,
                               sqlite_dir=None, work_dir=WORK_DIR, workers=1, revision=args.baseline)
        targets = [current, baseline]
        for target in targets:
            stack.callback(target.server.stop)
        run_args = argparse.Namespace(page_size_list=[args.page_size], workers=1, connections=plan.connections,
                                      threads=plan.threads, repetitions=plan.repetitions, duration=plan.duration,
                                      sequential=plan.sequential, warmup=plan.warmup)
        results = await describe_run(run_args, Scale(factor=1), databases, targets)
        runner = Runner(results, plan, databases.stats, BENCH_USER_INDEX, WORK_DIR / "scripts")
        for target in targets:
            await runner.start(target)
        await runner.run_page_size(targets, args.page_size)
        if results.failures:
            raise SystemExit(f"failed: {results.failures}")
        async with httpx.AsyncClient(timeout=30) as http:
            metrics = (await http.get(f"{current.server.base_url}/metrics")).text
        current.server.stop()
        lines = [json.loads(line) for line in current.server.log_path.read_text().splitlines()
                 if line.startswith("{")]
        logged = sum(line.get("logger") == "auditgraph.requests" for line in lines)
        served = sum(run.load.requests for run in results.cell(current.name, args.page_size).loaded)
        return (_measured(results.cell(current.name, args.page_size)),
                _measured(results.cell(baseline.name, args.page_size)), logged, served, metrics)


class _Statement:
    """Stands for SQLAlchemy's execution context, which the SQL hooks note a start time on."""


async def _respond(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _bare(scope: Scope, receive: Receive, send: Send) -> None:
    await _respond(send)


async def _like_a_read(scope: Scope, receive: Receive, send: Send) -> None:
    """What the rest of the request adds to its facts: the operation (as the extension does) and the SQL hooks."""
    facts = current.get()
    assert facts is not None
    facts.operation_name, facts.operation_type, facts.code = "Dashboard", "query", "OK"
    for _ in range(STATEMENTS_PER_READ):
        statement = _Statement()
        _before(None, None, None, None, statement, False)
        _after(None, None, None, None, statement, False)
    await _respond(send)


async def _cpu_per_request(app: ASGIApp, requests: int) -> float:
    scope: Scope = {"type": "http", "method": "POST", "path": "/graphql", "client": ("127.0.0.1", 5000),
                    "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer x")]}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.process_time() - started) / requests


def middleware_cost(requests: int = 50_000) -> float:
    """CPU seconds per request that the middleware, its JSON log line, its metrics and the SQL hooks add."""
    settings = Settings(_env_file=None, LOG_LEVEL="info", LOG_FORMAT="json")
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # the log handler keeps it open
    try:
        logging.config.dictConfig(log_config(settings))
    finally:
        sys.stderr = stderr
    observed_app = ObservedRequests(_like_a_read)

    async def both() -> tuple[float, float]:
        await _cpu_per_request(observed_app, 1000)  # warm-up
        return await _cpu_per_request(observed_app, requests), await _cpu_per_request(_bare, requests)

    with_middleware, without = asyncio.run(both())
    return with_middleware - without


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    wrk_path()
    observed_read, plain_read, logged, served, metrics = asyncio.run(measure(args))
    with_observability, without = observed_read.cpu_ms, plain_read.cpu_ms
    requests = [line for line in metrics.splitlines() if line.startswith("auditgraph_requests_total{")]
    print()
    print(f"dashboard read, page of {args.page_size}, server CPU per request over {args.repetitions} runs "
          "(in brackets, the lowest and highest run):")
    for label, read in (("with JSON request logs and metrics", observed_read),
                        (f"at {args.baseline}, with neither", plain_read)):
        print(f"  {label:<36} {read.cpu_ms:.2f} ms ({min(read.run_cpu_ms):.2f}-{max(read.run_cpu_ms):.2f})")
    print(f"  difference: {with_observability - without:+.2f} ms ({(with_observability - without) / without:+.1%})")
    print(f"  request lines logged: {logged} (at least the {served} requests measured under load)")
    print(f"  /metrics request series: {len(requests)}")
    alone = middleware_cost() * 1000
    share = alone / without
    print(f"the same work timed alone, in process: {alone * 1000:.0f} µs per request, "
          f"{share:.1%} of the read's {without:.2f} ms (target under {TARGET_SHARE:.0%})")
    return 0 if share < TARGET_SHARE else 1


if __name__ == "__main__":
    sys.exit(main())

"""The measurement loop: check each server's reply, warm it up, then alternate repetitions."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench import client
from bench.load import LoadFailed, LoadResult, run_wrk, write_script
from bench.pgstats import PostgresStats
from bench.processes import ServerFailed, process_tree_cpu_seconds, settle
from bench.results import LoadedRun, RunResults
from bench.targets import Target, obtain_token
from bench.validate import ValidationFailed, check_page, expected_page
from bench.workload import dashboard_body, user_email

T = TypeVar("T")
EXPECTED_FAILURES = (client.RequestFailed, ValidationFailed, LoadFailed, ServerFailed)


@dataclass(frozen=True)
class LoadPlan:
    duration: int
    warmup: int
    sequential: int
    repetitions: int
    connections: int
    threads: int


class Runner:
    def __init__(self, results: RunResults, plan: LoadPlan, stats: PostgresStats | None,
                 user_index: int, script_dir: Path) -> None:
        self.results = results
        self.plan = plan
        self.stats = stats
        self.email = user_email(user_index)
        self.script_dir = script_dir

    def _say(self, target: Target, message: str) -> None:
        print(f"  [{target.label}] {message}", flush=True)

    async def _guarded(self, target: Target, step: Callable[[], Awaitable[T]]) -> T | None:
        """Runs one step; an expected failure takes the target out of the run, with the reason."""
        if target.name in self.results.failures:
            return None
        try:
            return await step()
        except EXPECTED_FAILURES as error:
            reason = f"{type(error).__name__}: {error}"
            exited = target.server.process is not None and target.server.process.poll() is not None
            if exited and not isinstance(error, ServerFailed):  # ServerFailed quotes the log itself
                reason += f" (server exited; log tail: {target.server.log_tail(600)})"
            self.results.failures[target.name] = reason
            self._say(target, f"FAILED, skipping from now on: {reason}")
            target.server.stop()
            return None

    async def start(self, target: Target) -> None:
        async def step() -> None:
            await target.server.start()
            target.token = await obtain_token(target, self.email)
            self._say(target, f"listening on {target.server.base_url}, logged in as {self.email}")
        await self._guarded(target, step)

    async def _check(self, target: Target, page_size: int) -> None:
        assert target.token is not None
        reply = client.dashboard(target.graphql_url, target.token, page_size)
        check_page(client.graphql_data(reply), await expected_page(target.database_url, self.email, page_size))
        self.results.cell(target.name, page_size).response_bytes = len(reply.body)

    async def prepare(self, target: Target, page_size: int) -> Path | None:
        """Checks the reply against the database, writes the wrk script and warms the server up."""
        async def step() -> Path:
            await self._check(target, page_size)
            assert target.token is not None
            script = write_script(self.script_dir / f"{target.name}-{page_size}.lua",
                                  dashboard_body(page_size), target.token)
            await run_wrk(target.graphql_url, script, connections=self.plan.connections,
                          threads=self.plan.threads, seconds=self.plan.warmup)
            await settle(target.server.pid)
            size = self.results.cell(target.name, page_size).response_bytes or 0
            self._say(target, f"page {page_size}: reply checked against the database ({size / 1024:.1f} KB), "
                              "warmed up")
            return script
        return await self._guarded(target, step)

    async def _loaded(self, target: Target, script: Path) -> LoadedRun:
        stats = self.stats if target.on_postgres else None
        load_task = asyncio.create_task(run_wrk(
            target.graphql_url, script, connections=self.plan.connections, threads=self.plan.threads,
            seconds=self.plan.duration))
        try:
            margin = min(1.0, self.plan.duration / 10)
            await asyncio.wait({load_task}, timeout=margin)
            db_before = await stats.snapshot() if stats else None
            cpu_before, start = process_tree_cpu_seconds(target.server.pid), time.monotonic()
            await asyncio.wait({load_task}, timeout=self.plan.duration - 2 * margin)
            cpu_after, end = process_tree_cpu_seconds(target.server.pid), time.monotonic()
            db_after = await stats.snapshot() if stats else None
            load = await load_task
        finally:
            if not load_task.done():
                load_task.cancel()
        if end - start < self.plan.duration - 3 * margin:
            raise LoadFailed(f"wrk stopped after {end - start:.1f}s of a {self.plan.duration}s run")
        # Requests wrk abandoned in flight finish before anything else is measured.
        await settle(target.server.pid)
        return LoadedRun(load=load, window_seconds=end - start, server_cpu_seconds=cpu_after - cpu_before,
                         database=db_after.since(db_before) if db_after and db_before else None)

    async def measure(self, target: Target, page_size: int, script: Path, repetition: int) -> None:
        async def step() -> None:
            loaded = await self._loaded(target, script)
            sequential: LoadResult = await run_wrk(target.graphql_url, script, connections=1, threads=1,
                                                   seconds=self.plan.sequential)
            await settle(target.server.pid)
            cell = self.results.cell(target.name, page_size)
            cell.loaded.append(loaded)
            cell.sequential.append(sequential)
            load = loaded.load
            errors = f", {load.errors} errors" if load.errors else ""
            self._say(target, f"page {page_size} #{repetition}: {load.requests_per_second:,.1f} req/s, "
                              f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, "
                              f"single {sequential.p50_ms:.1f} ms{errors}")
        await self._guarded(target, step)

    async def run_page_size(self, targets: list[Target], page_size: int) -> None:
        scripts = {target.name: await self.prepare(target, page_size) for target in targets}
        for repetition in range(self.plan.repetitions):
            # Rotate the order each repetition, so no server always goes first.
            shift = repetition % len(targets)
            for target in targets[shift:] + targets[:shift]:
                if (script := scripts[target.name]) is not None:
                    await self.measure(target, page_size, script, repetition + 1)

    async def recheck(self, target: Target, page_size: int) -> None:
        """After the load: the server still answers correctly."""
        await self._guarded(target, lambda: self._check(target, page_size))

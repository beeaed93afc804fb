"""API workers a test stops and starts as a deploy does, and the events written around them."""

import asyncio
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from db.engine import Database
from db.models import TaskEvent, User
from db.settings import Settings
from tests.cli import free_port, start_cli, stop, wait_until_ready
from tests.factories import make_task

SUBMIT_URL = "mutation($url: String!) { submitUrl(url: $url) { task { id } } }"
# A write that meets the database mid-blip is answered SERVICE_UNAVAILABLE: a worker sends it again.
ATTEMPTS = 50


@dataclass
class Worker:
    """One `auditgraph serve` process, stopped and started again on the same port."""

    settings: Settings
    environment: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = start_cli(
            "serve", "--port", str(self.port), DATABASE_URL=self.settings.database_url,
            DATA_DIR=str(self.settings.data_dir), SECRET_KEY=self.settings.secret_key,
            SHUTDOWN_TIMEOUT_SECONDS="2", **self.environment)
        await asyncio.to_thread(wait_until_ready, self.url, self.process)
        # Its log is not read, but must not fill the pipe and stall the server.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            await asyncio.to_thread(stop, self.process)


@asynccontextmanager
async def workers(settings: Settings, count: int) -> AsyncIterator[list[Worker]]:
    running = [Worker(settings) for _ in range(count)]
    try:
        for worker in running:
            await worker.start()
        yield running
    finally:
        for worker in running:
            await worker.stop()


@dataclass
class Pipeline:
    """Writes events: through a worker's API (one task submitted, its CREATED event) or, while every
    worker is down, straight into the database."""

    database: Database
    owner_id: uuid.UUID
    token: str

    async def through(self, worker: Worker, count: int = 1) -> None:
        async with httpx.AsyncClient(base_url=worker.url, timeout=10) as http:
            for _ in range(count):
                await self._submit(http)

    async def _submit(self, http: httpx.AsyncClient) -> None:
        for _ in range(ATTEMPTS):
            response = await http.post(
                "/graphql", json={"query": SUBMIT_URL, "variables": {"url": f"https://example.com/{uuid.uuid4()}"}},
                headers={"authorization": f"Bearer {self.token}"})
            if response.status_code != 503:
                assert "errors" not in response.json(), response.text
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"still unavailable after {ATTEMPTS} attempts: {response.text}")

    async def directly(self, count: int) -> None:
        async with self.database.transaction() as session:
            owner = await session.get(User, self.owner_id)
            assert owner is not None
            for _ in range(count):
                await make_task(session, owner)

    async def log_from(self, first: int) -> list[int]:
        """The positions of the owner's events from `first` on."""
        rows = await self.database.rows(
            select(TaskEvent.position).where(TaskEvent.position >= first, TaskEvent.user_id == self.owner_id)
            .order_by(TaskEvent.position))
        return [row[0] for row in rows]



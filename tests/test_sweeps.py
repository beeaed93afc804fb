"""No orphaned files: what a killed process left in staging and in the store is gone after a restart, and the
sweeps never touch an upload in progress or a file whose row is about to commit."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db import orphans
from db.engine import Database
from db.models import Task
from db.settings import Settings
from db.staging import create_staging_file, staging_dir, sweep_staging
from db.storage import stage_upload, store_and_commit
from db.tasks import StoredFile, create_file_task
from graph.app import create_app
from tests.api import Api
from tests.cli import PROJECT_ROOT, cli_environment
from tests.factories import make_user

UPLOAD = "mutation($file: Upload!) { uploadDocument(file: $file) { task { id } } }"
WAIT_SECONDS = 30.0


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def killed_mid_write(settings: Settings, where: str) -> str:
    """Runs tests/crashing_writer.py until it reports where it stands, then kills it with SIGKILL."""
    environment = cli_environment(DATA_DIR=str(settings.data_dir), SECRET_KEY=settings.secret_key,
                                  DATABASE_URL=settings.database_url)
    child = subprocess.Popen([sys.executable, "-m", "tests.crashing_writer", where], cwd=PROJECT_ROOT,
                             env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _, errors = child.communicate()
    assert line.startswith({"staging": "staging", "store": "placed"}[where]), errors
    return line


async def eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not check():
            await asyncio.sleep(0.05)


async def serving(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client=client, database=app.state.database)


async def test_files_a_killed_upload_left_in_staging_and_in_the_store_are_gone_after_a_restart(
    settings: Settings, data_dir: Path
) -> None:
    # given: a stored file that a task references, then two uploads killed half way
    async for api in serving(settings):
        token = await api.sign_up("owner@example.com")
        kept = await api.upload(UPLOAD, {"file": None}, {"file": ("kept.txt", b"a file with its row")}, token)
        assert "errors" not in kept.json(), kept.text
    killed_mid_write(settings, "staging")
    placed = killed_mid_write(settings, "store").removeprefix("placed ")
    left = files_under(data_dir / "staging") + files_under(data_dir / "files")
    database = Database.from_settings(settings)
    async with database.sessions() as session:
        referenced = list((await session.scalars(select(Task.file_path))).all())
    await database.dispose()

    # when
    async for _ in serving(settings):
        await eventually(lambda: files_under(data_dir / "staging") + files_under(data_dir / "files") == referenced)

    # then
    assert len(left) == 3 and placed in left and placed not in referenced


def test_a_staging_file_that_a_live_upload_holds_survives_a_sweep(data_dir: Path) -> None:
    # given: one upload in progress, and one whose process died
    folder = staging_dir(data_dir)
    handle, in_progress = create_staging_file(folder)
    abandoned = folder / "upload-abandoned"
    abandoned.write_bytes(b"nobody holds this one")

    # when
    removed = sweep_staging(folder)

    # then
    assert (removed, in_progress.exists(), abandoned.exists()) == (1, True, False)
    handle.close()


async def test_a_stored_file_whose_row_is_about_to_commit_survives_the_sweep_of_a_starting_server(
    settings: Settings, db: Database, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: an orphan in the store, and an upload whose file is in place and whose row is not committed yet
    orphan = data_dir / "files" / "ff" / ("f" * 64)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a crash")
    async with db.transaction() as session:
        owner = await make_user(session)
    listed, commit = threading.Event(), asyncio.Event()
    list_files = orphans.stored_files_in

    def listing(folder: Path) -> list[str]:
        found = list_files(folder)
        if staged.relative_path in found:
            listed.set()
        return found

    monkeypatch.setattr(orphans, "stored_files_in", listing)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"bytes whose row is on its way"

    staged = await stage_upload(chunks(), data_dir, 1 << 20)

    async def write_row_when_told(session: AsyncSession, relative_path: str) -> str:
        await commit.wait()
        await create_file_task(session, owner.id, StoredFile("in-flight.txt", "text/plain", staged.size,
                                                             staged.sha256, relative_path))
        return relative_path

    in_flight = asyncio.create_task(store_and_commit(db, staged, settings.upload_dir, write_row_when_told))
    await eventually((settings.upload_dir / staged.relative_path).exists)

    # when: a server starts and its sweep sees the file before the row commits
    async for _ in serving(settings):
        await eventually(listed.is_set)
        commit.set()
        path = await in_flight
        await eventually(lambda: not orphan.exists())

    # then
    assert files_under(data_dir / "files") == [path]
    async with db.sessions() as session:
        assert (await session.scalars(select(Task.file_path))).all() == [path]

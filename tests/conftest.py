"""Every database test runs twice: on a SQLite file and on a throwaway PostgreSQL.

Each test gets a fresh database copied from a template migrated once per
backend, so tests never share rows and never depend on each other's order.
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from db import migrations
from db.engine import Database, create_engine
from db.settings import Settings
from graph.app import create_app
from tests.api import Api
from tests.live import LiveServer, live_server
from tests.throwaway_postgres import PostgresServer, PostgresUnavailable, throwaway_postgres

T = TypeVar("T")
BACKENDS = ("sqlite", "postgresql")
TEMPLATE_DATABASE = "auditgraph_template"


def run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop, away from the test's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def make_settings(database_url: str | None, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,
        DATABASE_URL=database_url,
        data_dir=data_dir,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        **overrides,
    )


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with throwaway_postgres() as server:
            yield server
    except PostgresUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL tests must run under CI: {error}")
        pytest.skip(f"PostgreSQL unavailable: {error}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sqlite-template")
    run_in_thread(_migrate(make_settings(None, folder)))
    return folder / "auditgraph.db"


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    async def create() -> None:
        connection = await asyncpg.connect(postgres_server.dsn("postgres"))
        try:
            await connection.execute(f"CREATE DATABASE {TEMPLATE_DATABASE}")
        finally:
            await connection.close()
        await _migrate(
            make_settings(postgres_server.url(TEMPLATE_DATABASE), tmp_path_factory.mktemp("pg"))
        )

    run_in_thread(create())
    return TEMPLATE_DATABASE


async def _create_postgres_database(server: PostgresServer, template: str | None) -> str:
    name = f"test_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(server.dsn("postgres"))
    try:
        source = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        await connection.execute(f"CREATE DATABASE {name}{source}")
    finally:
        await connection.close()
    return name


async def _drop_postgres_database(server: PostgresServer, name: str) -> None:
    connection = await asyncpg.connect(server.dsn("postgres"))
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await connection.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, data_dir: Path) -> Iterator[str]:
    """A fresh database at the head revision."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, data_dir / "auditgraph.db")
        yield f"sqlite+aiosqlite:///{data_dir / 'auditgraph.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template_name = request.getfixturevalue("postgres_template")
    name = run_in_thread(_create_postgres_database(server, template_name))
    yield server.url(name)
    run_in_thread(_drop_postgres_database(server, name))


@pytest.fixture
def empty_database_url(backend: str, request: pytest.FixtureRequest, data_dir: Path) -> Iterator[str]:
    """A fresh database with no schema at all, for testing the migrations themselves."""
    if backend == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{data_dir / 'auditgraph.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = run_in_thread(_create_postgres_database(server, None))
    yield server.url(name)
    run_in_thread(_drop_postgres_database(server, name))


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database.from_settings(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def api(client: httpx.AsyncClient, app: Starlette) -> Api:
    return Api(client=client, database=app.state.database)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The app served by a real uvicorn in a thread of this process, on the test's database."""
    async with live_server(settings) as running:
        yield running


@pytest.fixture
async def workers(settings: Settings, backend: str) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    """Two workers on one PostgreSQL; on the embedded SQLite default, one process serves both roles."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(live_server(settings))
        second = first if backend == "sqlite" else await stack.enter_async_context(live_server(settings))
        yield first, second

"""The servers a run compares: how each is started and how it is given a bearer token."""

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from bench import client
from bench.processes import ServerProcess, free_port, uvicorn_argv
from bench.results import FLOOR
from bench.seed import asyncpg_dsn
from bench.workload import BENCH_PASSWORD
from db.models import User

PROJECT_ROOT = Path(__file__).resolve().parent.parent
API_FACTORY = "graph.app:create_app_from_environment"
FLOOR_FACTORY = "bench.floor:create_app"
# Production mode, so the API runs as deployed; the key is only for this run.
SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmnopqrstu"
assert len(SECRET_KEY) == 48


class Kind(StrEnum):
    FLOOR = FLOOR
    GRAPHQL_POSTGRES = "graphql-postgres"
    GRAPHQL_SQLITE = "graphql-sqlite"


LABELS = {
    Kind.FLOOR: "floor (Starlette + asyncpg)",
    Kind.GRAPHQL_POSTGRES: "graphql (PostgreSQL)",
    Kind.GRAPHQL_SQLITE: "graphql (SQLite)",
}


@dataclass
class Target:
    kind: Kind
    server: ServerProcess
    database_url: str  # the database the replies are checked against
    token: str | None = None

    @property
    def name(self) -> str:
        return self.kind.value

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def on_postgres(self) -> bool:
        return self.kind is not Kind.GRAPHQL_SQLITE

    @property
    def graphql_url(self) -> str:
        return f"{self.server.base_url}/graphql"


def _environment(**values: str) -> dict[str, str]:
    # The servers' settings come from here alone, not from whatever the shell exported.
    inherited = {key: value for key, value in os.environ.items()
                 if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")}
    return inherited | {"PYTHONUNBUFFERED": "1"} | values


def make_target(kind: Kind, *, postgres_url: str | None, sqlite_url: str | None, sqlite_dir: Path | None,
                work_dir: Path, workers: int) -> Target:
    port = free_port()
    if kind is Kind.FLOOR:
        assert postgres_url is not None
        app, database_url = FLOOR_FACTORY, postgres_url
        env = _environment(BENCH_FLOOR_DSN=asyncpg_dsn(postgres_url))
    else:
        if kind is Kind.GRAPHQL_SQLITE:
            assert sqlite_url is not None and sqlite_dir is not None
            database_url, data_dir = sqlite_url, sqlite_dir
        else:
            assert postgres_url is not None
            database_url, data_dir = postgres_url, work_dir / "data-postgres"
        app = API_FACTORY
        env = _environment(DATABASE_URL=database_url, DATA_DIR=str(data_dir), SECRET_KEY=SECRET_KEY,
                           ENVIRONMENT="production", LOG_LEVEL="warning")
    server = ServerProcess(name=kind.value, argv=uvicorn_argv(app, PROJECT_ROOT, port, workers), env=env,
                           port=port, log_path=work_dir / "logs" / f"{kind.value}.log", cwd=PROJECT_ROOT)
    return Target(kind=kind, server=server, database_url=database_url)


async def _user_id(database_url: str, email: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return str((await connection.execute(select(User.id).where(User.email == email))).scalar_one())
    finally:
        await engine.dispose()


async def obtain_token(target: Target, email: str) -> str:
    """The floor trusts a user id; the API wants a real login."""
    if target.kind is Kind.FLOOR:
        return await _user_id(target.database_url, email)
    return client.login(target.graphql_url, email, BENCH_PASSWORD)

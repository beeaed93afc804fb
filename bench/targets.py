"""The servers a run compares: how each is started and how it is given a bearer token."""

import os
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from bench import client
from bench.processes import ServerProcess, uvicorn_argv
from bench.results import FLOOR
from bench.seed import asyncpg_dsn
from bench.workload import BENCH_PASSWORD, MAX_PAGE_SIZE
from db.models import User
from tests.cli import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
API_FACTORY = "graph.app:create_app_from_environment"
FLOOR_FACTORY = "bench.floor:create_app"
# Production mode, so the API runs as deployed; the key is only for this run.
SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmnopqrstu"
assert len(SECRET_KEY) == 48


class Kind(StrEnum):
    FLOOR = FLOOR
    GRAPHQL_POSTGRES = "graphql-postgres"
    # The same API and database, its request connections through PgBouncer in transaction mode (db/pooling.py).
    GRAPHQL_PGBOUNCER = "graphql-pgbouncer"
    GRAPHQL_SQLITE = "graphql-sqlite"


LABELS = {
    Kind.FLOOR: "floor (Starlette + asyncpg)",
    Kind.GRAPHQL_POSTGRES: "graphql (PostgreSQL)",
    Kind.GRAPHQL_PGBOUNCER: "graphql (PostgreSQL through PgBouncer, transaction mode)",
    Kind.GRAPHQL_SQLITE: "graphql (SQLite)",
}


@dataclass
class Target:
    kind: Kind
    server: ServerProcess
    database_url: str  # the database the replies are checked against
    token: str | None = None
    revision: str | None = None  # an earlier commit of the API, served beside the current one

    @property
    def name(self) -> str:
        return self.kind.value if self.revision is None else f"{self.kind.value}@{self.revision}"

    @property
    def label(self) -> str:
        return LABELS[self.kind] if self.revision is None else f"{LABELS[self.kind]} at {self.revision}"

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


def export_revision(revision: str, work_dir: Path) -> tuple[str, Path]:
    """The project's files at `revision`, unpacked under work_dir: (short commit, folder)."""
    short = subprocess.run(["git", "rev-parse", "--short", f"{revision}^{{commit}}"], cwd=PROJECT_ROOT,
                           check=True, capture_output=True, text=True).stdout.strip()
    folder = work_dir / "revisions" / short
    if not (folder / "graph").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", short], cwd=PROJECT_ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return short, folder


def make_target(kind: Kind, *, postgres_url: str | None, sqlite_url: str | None, sqlite_dir: Path | None,
                work_dir: Path, workers: int, revision: str | None = None, pooler_url: str | None = None) -> Target:
    """A server of `kind`; with `revision`, the API as that commit had it (its folder first on the path)."""
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
                           ENVIRONMENT="production", LOG_LEVEL="warning", MAX_PAGE_SIZE=str(MAX_PAGE_SIZE))
        if kind is Kind.GRAPHQL_PGBOUNCER:
            assert pooler_url is not None
            env |= {"DATABASE_URL": pooler_url, "DATABASE_POOLER": "transaction", "LISTEN_DATABASE_URL": database_url}
    root, short = PROJECT_ROOT, None
    if revision is not None:
        short, root = export_revision(revision, work_dir)
    target = Target(kind=kind, server=None, database_url=database_url, revision=short)  # type: ignore[arg-type]
    target.server = ServerProcess(name=target.name, argv=uvicorn_argv(app, root, port, workers), env=env,
                                  port=port, log_path=work_dir / "logs" / f"{target.name}.log", cwd=root)
    return target


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

"""Opening the database a command works on, and refusing early when it is not the one the server uses."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from db import migrations
from db.engine import Database, create_engine
from db.settings import Settings
from graph.cli.commands.failures import CommandError


def sqlite_file_missing(settings: Settings) -> str | None:
    """Why the SQLite file cannot be used, or None (also for PostgreSQL).

    Opening a missing SQLite file creates an empty one: in the wrong folder that
    would be a second, empty database, and the command would work on it unseen.
    """
    if not settings.is_sqlite:
        return None
    path = Path(make_url(settings.database_url).database or "")
    if path.is_file():
        return None
    return (f"no database at {path}: run `auditgraph migrate` (or `auditgraph serve`) to create it, "
            "or point DATA_DIR or DATABASE_URL at the server's database")


async def schema_behind(settings: Settings) -> str | None:
    """Why the database's schema is not the one this code expects, or None when it is at head."""
    engine = create_engine(settings)
    try:
        current = await migrations.current_revision(engine)
    finally:
        await engine.dispose()
    head = migrations.head_revision()
    if current == head:
        return None
    return f"the database schema is at {current or 'no revision'}, not {head}: run `auditgraph migrate`"


@asynccontextmanager
async def existing_database(settings: Settings) -> AsyncIterator[Database]:
    """The server's database, only if it exists and its schema is at head: a command never creates one by accident."""
    if reason := sqlite_file_missing(settings):
        raise CommandError(reason)
    if reason := await schema_behind(settings):
        raise CommandError(reason)
    database = Database.from_settings(settings)
    try:
        yield database
    finally:
        await database.dispose()


async def migrate(settings: Settings, direction: str = "upgrade", revision: str = "head") -> None:
    engine = create_engine(settings)
    try:
        if direction == "upgrade":
            await migrations.upgrade(engine, revision)
        else:
            await migrations.downgrade(engine, revision)
    finally:
        await engine.dispose()


def prepare_embedded(settings: Settings) -> None:
    """The embedded default sets itself up on first use: data folder, database file, schema."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(migrate(settings))

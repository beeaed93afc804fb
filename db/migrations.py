"""Alembic driven from code: the CLI, the app's readiness check and the tests share it."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

# Inside the package, so an installed wheel carries its migrations (alembic.ini at the
# checkout's root points here too, for the plain `alembic` command).
SCRIPTS = Path(__file__).resolve().parent / "alembic"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("path_separator", "os")
    config.attributes["configure_logging"] = False
    return config


# Indexes the migrations make and the models leave out, which comparisons of the models with the
# database skip: PostgreSQL's trigram indexes (SQLite has none to match), and indexes on expressions
# (the FILE_SIZE ordering's key), which autogenerate cannot compare.
MIGRATION_ONLY_INDEXES = frozenset({
    "ix_tasks_original_filename_trgm", "ix_tasks_owner_filename_trigrams", "ix_tasks_user_id_size_key_id",
    "ix_tasks_size_key_id"})


def compared(_object: Any, name: str | None, type_: str, reflected: bool, _compare_to: Any) -> bool:
    """Alembic's include_object: whether autogenerate compares this schema object."""
    return not (type_ == "index" and reflected and name in MIGRATION_ONLY_INDEXES)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations have no head"
    return head


@contextmanager
def migrating(connection: Connection) -> Iterator[None]:
    """The migrations, each in a transaction of its own, with SQLite's foreign keys off while they run.

    One transaction per migration lets a long one (a backfill) run without the
    locks of an earlier one's ALTER TABLE: readers of the table go on reading.

    SQLite's batch mode rebuilds a table by copying it and dropping the old
    one; with foreign keys enforced, dropping a parent table (tasks) would
    cascade to every child row (its events, analyses, artifacts). SQLite
    ignores the pragma inside a transaction, so it is set on the driver's
    connection before one begins; each migration's rows are checked before its
    commit (check_foreign_keys), and enforcement is back on for whoever uses
    the connection next.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _pragma(connection, "foreign_keys=OFF")
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        if sqlite:
            _pragma(connection, "foreign_keys=ON")


def check_foreign_keys(ctx: MigrationContext, step: Any, heads: Any, run_args: Any) -> None:
    """Alembic's on_version_apply, inside each migration's transaction: SQLite's references still hold."""
    connection = ctx.connection
    assert connection is not None
    if connection.dialect.name == "sqlite" and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
        raise RuntimeError("the migration left rows that refer to rows that do not exist; nothing of it was changed")


def _pragma(connection: Connection, setting: str) -> None:
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA {setting}")
    finally:
        cursor.close()


async def _run(engine: AsyncEngine, action: Any, *args: Any) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        with migrating(connection):
            action(config, *args)

    async with engine.connect() as connection:
        await connection.run_sync(run)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, command.downgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        try:
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            return None
        return result.scalar_one_or_none()

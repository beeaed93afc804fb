"""Alembic's environment: the URL comes from the app's settings, never from alembic.ini."""

import asyncio
from logging.config import fileConfig

from sqlalchemy.engine import Connection

from alembic import context
from db.engine import create_engine
from db.migrations import check_foreign_keys, compared, migrating
from db.models import Base
from db.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=compared,
        transaction_per_migration=True,
        on_version_apply=check_foreign_keys,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_in_own_transaction(connection: Connection) -> None:
    with migrating(connection):
        run_migrations(connection)


async def run_with_own_engine() -> None:
    engine = create_engine(Settings())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations_in_own_transaction)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run against a database.")

# db.migrations hands in a connection of the running app or test; the
# alembic command line has none, so it opens its own.
shared_connection = config.attributes.get("connection")
if shared_connection is not None:
    run_migrations(shared_connection)
else:
    asyncio.run(run_with_own_engine())

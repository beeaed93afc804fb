from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from db import migrations
from db.engine import create_engine
from db.migrations import compared
from db.models import Base
from tests.conftest import make_settings

TABLES = {"users", "tasks", "analyses", "findings", "source_references", "task_events", "artifacts"}


def _schema(connection: Connection) -> dict[str, set[str | None]]:
    inspector = inspect(connection)
    names: dict[str, set[str | None]] = {}
    for table in inspector.get_table_names():
        found = {inspector.get_pk_constraint(table)["name"]}
        found |= {fk["name"] for fk in inspector.get_foreign_keys(table)}
        found |= {uq["name"] for uq in inspector.get_unique_constraints(table)}
        found |= {ix["name"] for ix in inspector.get_indexes(table)}
        found |= {ck["name"] for ck in inspector.get_check_constraints(table)}
        names[table] = found
    return names


def _expected_names() -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        names = {constraint.name for constraint in table.constraints}
        names |= {index.name for index in table.indexes}
        expected[table.name] = {str(name) for name in names}
    return expected


async def test_upgrade_head_creates_every_table_constraint_and_index(empty_database_url: str, data_dir: Path) -> None:
    # given
    engine = create_engine(make_settings(empty_database_url, data_dir))

    # when
    await migrations.upgrade(engine)

    # then
    async with engine.connect() as connection:
        schema = await connection.run_sync(_schema)
    await engine.dispose()
    assert set(schema) >= TABLES
    for table, names in _expected_names().items():
        assert names <= schema[table], f"{table} lacks {names - schema[table]}"


async def test_autogenerate_finds_no_difference_between_models_and_migrations(
    empty_database_url: str, data_dir: Path
) -> None:
    # given
    engine = create_engine(make_settings(empty_database_url, data_dir))
    await migrations.upgrade(engine)

    # when
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": compared})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    await engine.dispose()

    # then
    assert differences == []


async def test_downgrade_base_leaves_no_table_and_upgrade_works_again(
    empty_database_url: str, data_dir: Path
) -> None:
    # given
    engine = create_engine(make_settings(empty_database_url, data_dir))
    await migrations.upgrade(engine)

    # when
    await migrations.downgrade(engine, "base")
    async with engine.connect() as connection:
        after_downgrade = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await migrations.upgrade(engine)
    async with engine.connect() as connection:
        after_upgrade = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    revision = await migrations.current_revision(engine)
    await engine.dispose()

    # then
    assert after_downgrade <= {"alembic_version"}
    assert after_upgrade >= TABLES
    assert revision == migrations.head_revision()

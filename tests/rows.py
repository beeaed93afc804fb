"""Reading rows back in tests: whole-database snapshots and lookups by natural key."""

from sqlalchemy import Table, select

from db.engine import Database
from db.models import Analysis, Artifact, Finding, SourceReference, Task, TaskEvent, User

SNAPSHOT_TABLES = (Task, TaskEvent, Analysis, Finding, SourceReference, Artifact)


async def snapshot(database: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the task graph, to show that a refused request changed nothing."""
    rows: dict[str, list[tuple[object, ...]]] = {}
    async with database.sessions() as session:
        for model in SNAPSHOT_TABLES:
            table: Table = model.__table__  # type: ignore[assignment]
            result = await session.execute(select(table).order_by(table.c.id))
            rows[table.name] = [tuple(row) for row in result]
    return rows


async def user_by_email(database: Database, email: str) -> User:
    async with database.sessions() as session:
        return (await session.scalars(select(User).where(User.email == email))).one()

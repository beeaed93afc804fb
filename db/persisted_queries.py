"""The automatic persisted queries every process shares: documents by their sha256, in a bounded table.

Only a document whose sha256 was checked is stored (graph/access/trusted_documents.py),
and a document read back is checked again, so a hash always runs the one
document it is the hash of: no client can make another's hash run something
else. The table holds at most `max_bytes`, each row counting as its document
plus ROW_OVERHEAD, the newest registrations first: a trim removes the oldest
past the bound, and a client whose document went that way registers it again
(one more round trip, as when a process forgets one). A trim reads every row's
size, so a process trims once it has registered an eighth of the bound since
its last trim, not at every registration: between trims the table exceeds the
bound by at most that much per process.
"""

import hashlib

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Database
from db.models import PersistedQuery

# What a row costs beyond its document (its id, hash, size, times and the index entry), roughly: a flood of
# tiny documents fills the bound as quickly as its rows fill the table.
ROW_OVERHEAD = 256


def stored_size(document: str) -> int:
    return len(document) + ROW_OVERHEAD


async def stored_document(database: Database, sha256: str) -> str | None:
    """The document registered under this (checked) sha256, by any process, or None."""
    rows = await database.rows(select(PersistedQuery.document).where(PersistedQuery.sha256 == sha256))
    document: str | None = rows[0][0] if rows else None
    if document is None or hashlib.sha256(document.encode()).hexdigest() != sha256:
        return None
    return document


async def store_document(session: AsyncSession, sha256: str, document: str) -> None:
    """Register a document under its sha256, which the caller has checked; a second registration changes nothing."""
    assert session.bind is not None
    insert = postgres_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(PersistedQuery).values(sha256=sha256, document=document, size=len(document))
        .on_conflict_do_nothing(index_elements=[PersistedQuery.sha256])
    )


async def trim_documents(session: AsyncSession, max_bytes: int) -> None:
    """Remove the oldest registrations past `max_bytes`, counted newest first."""
    running = func.sum(PersistedQuery.size + ROW_OVERHEAD).over(
        order_by=(PersistedQuery.created_at.desc(), PersistedQuery.id.desc()))
    newest_first = select(PersistedQuery.id, running.label("running")).subquery()
    await session.execute(
        delete(PersistedQuery).where(
            PersistedQuery.id.in_(select(newest_first.c.id).where(newest_first.c.running > max_bytes))
        )
    )

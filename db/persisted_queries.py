"""The automatic persisted queries every process shares: documents by their sha256, in a bounded table.

Only a document whose sha256 was checked is stored (graph/trusted_documents.py),
and a document read back is checked again, so a hash always runs the one
document it is the hash of: no client can make another's hash run something
else. The table holds at most `max_bytes` of documents, the newest
registrations first: a registration that takes it past the bound removes the
oldest, and a client whose document went that way registers it again (one more
round trip, as when a process forgets one).
"""

import hashlib

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.engine import Database
from db.models import PersistedQuery


def _is_document_of(document: str, sha256: str) -> bool:
    return hashlib.sha256(document.encode()).hexdigest() == sha256


async def stored_document(database: Database, sha256: str) -> str | None:
    """The document registered under this (checked) sha256, by any process, or None."""
    rows = await database.rows(select(PersistedQuery.document).where(PersistedQuery.sha256 == sha256))
    document: str | None = rows[0][0] if rows else None
    return document if document is not None and _is_document_of(document, sha256) else None


async def store_document(session: AsyncSession, sha256: str, document: str, max_bytes: int) -> None:
    """Register a document under its sha256 (the caller has checked it), keeping the table within `max_bytes`."""
    assert session.bind is not None
    insert = postgres_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    await session.execute(
        insert(PersistedQuery)
        .values(sha256=sha256, document=document, size=len(document), created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=[PersistedQuery.sha256])
    )
    # Newest first, the running total of sizes: whatever lies past the bound goes.
    newest_first = select(
        PersistedQuery.id,
        func.sum(PersistedQuery.size).over(order_by=(PersistedQuery.created_at.desc(), PersistedQuery.id)).label(
            "running"),
    ).subquery()
    await session.execute(
        delete(PersistedQuery).where(
            PersistedQuery.id.in_(select(newest_first.c.id).where(newest_first.c.running > max_bytes))
        )
    )

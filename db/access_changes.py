"""The embedded default's announcements of access changes: a short durable log a server polls.

On PostgreSQL the changing transaction NOTIFYs every worker (db/events.py).
SQLite has no such thing, and the change may come from another process than
the server (the CLI's `users set-active`), whose commits the server never
hears: so the changing transaction appends one row per account here, with
gap-free positions (SQLite's writers take turns), and the server's broker
reads what lies past the last position it saw, a walk of the unique index,
a few times a second (graph/live/broker.py). Only the newest rows are kept: a
reader that finds the positions it expected gone re-checks every account.
"""

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import AccessChange

if TYPE_CHECKING:
    from db.engine import Database

# Far more than any reader falls behind between two reads (it reads several times a second).
KEPT = 1000
# The most one read returns; a reader further behind re-checks every account instead.
READ_AT_MOST = 500

async def record(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> None:
    """Append the accounts whose access the session changed, as the last thing before commit."""
    head = await session.scalar(select(func.coalesce(func.max(AccessChange.position), 0))) or 0
    now = utcnow()
    await session.execute(insert(AccessChange), [
        {"id": uuid.uuid4(), "position": head + offset, "user_id": user_id, "created_at": now, "updated_at": now}
        for offset, user_id in enumerate(user_ids, start=1)])
    await session.execute(delete(AccessChange).where(AccessChange.position <= head + len(user_ids) - KEPT))


async def head(database: "Database") -> int:
    """The newest position (0 for none)."""
    rows = await database.rows(select(func.coalesce(func.max(AccessChange.position), 0)))
    return int(rows[0][0])


async def changes_after(database: "Database", position: int) -> tuple[list[tuple[int, uuid.UUID]], bool]:
    """The changes past `position`, in order, and whether some were missed (pruned, or too many to read)."""
    rows = await database.rows(
        select(AccessChange.position, AccessChange.user_id).where(AccessChange.position > position)
        .order_by(AccessChange.position).limit(READ_AT_MOST))
    changes = [(int(row[0]), row[1]) for row in rows]
    missed = bool(changes) and (changes[0][0] != position + 1 or len(changes) == READ_AT_MOST)
    return changes, missed

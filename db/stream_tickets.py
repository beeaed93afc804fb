"""Stream tickets: a short-lived, single-use credential that signs one SSE stream in from its URL.

The browser's own EventSource can send no header, and the long-lived bearer
token must never be put in a URL (URLs end up in logs and histories). A
ticket is minted for a signed-in account, names that account's token
generation, lives a minute, and is spent by the first request that shows it:
single use holds across every process, as spending is one conditional UPDATE
of the row. Only the ticket's sha256 is stored.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import StreamTicket

# 256 bits from the system's generator, URL-safe.
TICKET_BYTES = 32


@dataclass(frozen=True, slots=True)
class SpentTicket:
    user_id: uuid.UUID
    generation: int
    session_expires_at: datetime


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


async def mint_ticket(session: AsyncSession, user_id: uuid.UUID, generation: int, session_expires_at: datetime,
                      lifetime: timedelta) -> tuple[str, datetime]:
    """A new ticket for the account and when it expires (never after the session that minted it)."""
    now = utcnow()
    ticket = secrets.token_urlsafe(TICKET_BYTES)
    expires_at = min(now + lifetime, session_expires_at)
    # Tickets past their time are of no use to anyone: each minting clears them away (an index walk).
    await session.execute(delete(StreamTicket).where(StreamTicket.expires_at < now))
    await session.execute(insert(StreamTicket).values(
        id=uuid.uuid4(), ticket_hash=_hash(ticket), user_id=user_id, token_generation=generation,
        expires_at=expires_at, session_expires_at=session_expires_at, created_at=now, updated_at=now))
    return ticket, expires_at


async def spend_ticket(session: AsyncSession, ticket: str) -> SpentTicket | None:
    """The account a ticket signs in, marking it used; None for a ticket unknown, expired or used already."""
    now = utcnow()
    row = (await session.execute(
        update(StreamTicket)
        .where(StreamTicket.ticket_hash == _hash(ticket), StreamTicket.used_at.is_(None),
               StreamTicket.expires_at > now)
        .values(used_at=now, updated_at=now)
        .returning(StreamTicket.user_id, StreamTicket.token_generation, StreamTicket.session_expires_at)
    )).one_or_none()
    return None if row is None else SpentTicket(row[0], row[1], row[2])

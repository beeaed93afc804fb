"""Queries read a streaming replica, and a client that names its last write never reads behind it.

With REPLICA_DATABASE_URL set, the query operations of HTTP requests read the
replica (`reads_replica`). Everything else stays on the primary: mutations
and every read they make, subscriptions (their catch-up reads of the event log
included, so a lagging replica never hides an event), authentication,
downloads, housekeeping and the CLI.

A request that committed a write is answered with the primary's WAL position
after its commit (`pg_current_wal_insert_lsn()`, the `X-Read-After` header). A query
that sends a position back reads the replica only once the replica has
replayed it (`pg_last_wal_replay_lsn()`), looked at before its first read and
waited for up to REPLICA_WAIT_SECONDS; past that, or when the replica cannot
be asked, the whole query reads the primary. The position is the client's to
carry: a header needs no state shared between processes or hosts.
"""

import asyncio
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import monotonic

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import InvalidInput
from db.reads import DriverReads

logger = logging.getLogger("auditgraph.replica")

READ_AFTER_HEADER = "X-Read-After"
# PostgreSQL's text form of a WAL position (pg_lsn): two hexadecimal halves.
_POSITION = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")
# Between two looks at the replica's replay position while a query waits for it.
POLL_SECONDS = 0.01
# NULL on a server that is not in recovery: a promoted replica has every write it will ever have.
# The position goes as text: asyncpg would send a pg_lsn parameter as the integer it stands for.
_HAS_REPLAYED = text("SELECT coalesce(pg_last_wal_replay_lsn() >= CAST(CAST(:position AS text) AS pg_lsn), "
                     "NOT pg_is_in_recovery())")
# The insert position, not the written one: with synchronous_commit off a commit returns before its record
# is written, and only the insert position is sure to lie past it.
PRIMARY_POSITION = text("SELECT pg_current_wal_insert_lsn()::text")


def read_after(value: str | None) -> str | None:
    """The WAL position an X-Read-After header names (None without one); anything else is BAD_USER_INPUT."""
    if value is None:
        return None
    value = value.strip()
    if not _POSITION.fullmatch(value):
        raise InvalidInput(f"{READ_AFTER_HEADER} takes the WAL position a write's response carried (e.g. 0/16B3748)")
    return value


@dataclass(frozen=True)
class Replica:
    """The replica's read engine and driver reads (db/reads.py), as the primary has them."""

    reader: AsyncEngine
    driver_reads: DriverReads | None
    wait_seconds: float

    async def has_replayed(self, position: str) -> bool:
        """Whether the replica has replayed `position`, waiting up to `wait_seconds` for it."""
        deadline = monotonic() + self.wait_seconds
        while True:
            async with self.reader.connect() as connection:
                if await connection.scalar(_HAS_REPLAYED, {"position": position}):
                    return True
            if monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)


@dataclass
class Route:
    """Where the reads of one query go: the replica, once it has replayed `after` (decided at the first read)."""

    replica: Replica
    after: str | None
    _decided: bool | None = None
    _deciding: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def on_replica(self) -> bool:
        if self._decided is None:
            async with self._deciding:
                if self._decided is None:
                    self._decided = await self._decide()
        return self._decided

    async def _decide(self) -> bool:
        if self.after is None:
            return True
        try:
            replayed = await self.replica.has_replayed(self.after)
        except Exception as error:  # noqa: BLE001 - a replica that cannot answer is one not to read
            logger.warning("the replica could not say how far it has replayed (%s): reading the primary", error)
            return False
        if not replayed:
            logger.info("the replica has not replayed %s yet: reading the primary", self.after)
        return replayed


@dataclass
class Writes:
    """Whether a request committed a write (so its response carries the primary's position)."""

    committed: bool = False


read_route: ContextVar[Route | None] = ContextVar("auditgraph_read_route", default=None)
noted_writes: ContextVar[Writes | None] = ContextVar("auditgraph_noted_writes", default=None)


@contextmanager
def reads_replica(replica: Replica | None, after: str | None) -> Iterator[None]:
    """The reads made inside go to `replica` (once it has replayed `after`); without a replica, nothing changes."""
    if replica is None:
        yield
        return
    token = read_route.set(Route(replica, after))
    try:
        yield
    finally:
        read_route.reset(token)


@contextmanager
def noting_writes(replica: Replica | None) -> Iterator[Writes | None]:
    """Notes whether a transaction committed inside (None without a replica: nobody needs to know)."""
    if replica is None:
        yield None
        return
    writes = Writes()
    token = noted_writes.set(writes)
    try:
        yield writes
    finally:
        noted_writes.reset(token)

"""A live stream's reads ride out a short outage of the database: retried until it answers again.

A failover, a restart or a pooler recycling its connections kills the pooled
connection a read was using; the engine then discards it (and every
connection opened before it, db/availability.py), so the next try connects
afresh. A stream's reads are "the log after what was delivered", so trying
again repeats nothing. Only a database that stays away for the whole window
ends the stream, with the SERVICE_UNAVAILABLE the failed read raised.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from db.availability import WAITED_TOO_LONG, as_unavailable

T = TypeVar("T")
# Debug only: in an outage every open stream retries, and the event listener already logs the outage.
logger = logging.getLogger("auditgraph.outage")

FIRST_DELAY_SECONDS = 0.05
LONGEST_DELAY_SECONDS = 1.0


async def ride_out(read: Callable[[], Awaitable[T]], window_seconds: float) -> T:
    """`read()`, tried again after each failure that means the database is unreachable, for up to the window."""
    loop = asyncio.get_running_loop()
    gives_up_at: float | None = None
    delay = FIRST_DELAY_SECONDS
    while True:
        try:
            return await read()
        except WAITED_TOO_LONG as error:
            now = loop.time()
            gives_up_at = now + window_seconds if gives_up_at is None else gives_up_at
            if now >= gives_up_at:
                unavailable = as_unavailable(error)
                if unavailable is None or unavailable is error:
                    raise
                raise unavailable from error
            logger.debug("a read met the database unreachable; trying again in %.2f s", delay)
            await asyncio.sleep(min(delay, gives_up_at - now))
            delay = min(delay * 2, LONGEST_DELAY_SECONDS)

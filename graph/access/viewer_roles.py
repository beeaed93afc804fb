"""The viewer's role, remembered between requests for as long as nothing can have changed it.

Every authenticated request needs the role of an active account, and it
almost never changes; reading it is a statement and a round trip per
request. A remembered role is used only while the broker hears every access
change of every worker (LISTEN on PostgreSQL; the NOTIFY is part of the
committing transaction), and any change heard, or a listener that was deaf
for a while, forgets them all. The embedded default never remembers: another
process (the CLI) can change an account there without anyone hearing it.
"""

import uuid
from collections.abc import Awaitable, Callable

from cachetools import TTLCache

from db.engine import Database
from db.users import Access
from graph.live.broker import Broker

# Far more active accounts than one worker serves in a few seconds.
MAX_REMEMBERED = 10_000


class RoleCache:
    """Per application, beside the broker it trusts; never per module."""

    def __init__(self, broker: Broker, database: Database, seconds: float) -> None:
        self.broker = broker
        self.seconds = seconds
        # The age bound is a backstop for changes made outside the app (SQL by hand).
        self._roles: TTLCache[uuid.UUID, tuple[tuple[int, int], Access | None]] = TTLCache(
            MAX_REMEMBERED, max(seconds, 1e-3))
        # This process's own changes count at once, before their NOTIFY comes back to the listener.
        self._changes_here = 0
        database.access_listeners.append(self._changed_here)

    def _changed_here(self, _user_ids: list[uuid.UUID]) -> None:
        self._changes_here += 1

    def _version(self) -> tuple[int, int]:
        return self.broker.access_version, self._changes_here

    async def role(self, user_id: uuid.UUID, read: Callable[[], Awaitable[Access | None]]) -> Access | None:
        """The account's role and token generation (None: gone or inactive), from memory when that is safe,
        else from `read`."""
        broker = self.broker
        if self.seconds <= 0 or not broker.hears_every_access_change:
            return await read()
        version = self._version()
        remembered = self._roles.get(user_id)
        if remembered is not None and remembered[0] == version:
            return remembered[1]
        role = await read()
        # A change heard while reading may have come after the row was read: keep nothing then.
        if self._version() == version and broker.hears_every_access_change:
            self._roles[user_id] = (version, role)
        return role

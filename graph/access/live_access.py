"""A live stream lasts only as long as its viewer's access: it ends when the token expires,
the account is deactivated or its role changes, on whichever worker the stream runs.

The broker tells every worker that a user's access changed (LISTEN/NOTIFY on
PostgreSQL); the stream then re-reads the account and, if its access is no
longer what the stream was opened with, ends with UNAUTHENTICATED: the client
signs in or resubscribes and gets what it may see now.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.requests import Request

from db.access import Viewer
from db.availability import WAITED_TOO_LONG
from db.engine import Database
from db.errors import RateLimited, Unauthenticated
from db.outage import ride_out
from db.users import SESSIONS_ENDED, active_access
from graph.context import Info
from graph.observability.metrics import open_subscription

T = TypeVar("T")


async def _access_ended(database: Database, viewer: Viewer, generation: int, window: float) -> str | None:
    """Why the viewer may no longer keep this stream, or None when nothing that matters changed."""
    access = await ride_out(lambda: active_access(database, viewer.user_id), window)  # type: ignore[arg-type]
    if access is None:
        return "the account was deactivated"
    if access.role is not viewer.role:
        return "the account's role changed: subscribe again to see what it may see now"
    if access.generation != generation:
        return SESSIONS_ENDED
    return None


class _AccessGuard:
    """Ends a stream's wait for its next item once the viewer's access has ended.

    Nothing runs per item: an access change (rare) starts a check of the
    account, the token's expiry is a timer, and either one, when access has
    ended, cancels the consumer's wait for the stream, the way asyncio.timeout
    does; `pull` turns that cancellation into Unauthenticated.
    """

    def __init__(self, database: Database, viewer: Viewer, generation: int, outage_window: float) -> None:
        self.database = database
        self.outage_window = outage_window
        self.viewer = viewer
        self.generation = generation
        self.ended: str | None = None
        self._waiting: asyncio.Task[Any] | None = None
        self._checks: set[asyncio.Task[None]] = set()

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            if self._waiting is not None:
                self._waiting.cancel()

    def access_changed(self) -> None:
        check = asyncio.ensure_future(self._check())
        self._checks.add(check)  # held, so that it is not collected mid-check
        check.add_done_callback(self._checks.discard)

    async def _check(self) -> None:
        try:
            reason = await _access_ended(self.database, self.viewer, self.generation, self.outage_window)
        except WAITED_TOO_LONG:
            # The stream's own reads meet the same outage and end it; if the database comes back, the
            # event listener's reconnect asks every stream to check its access again (Broker.resync_all).
            return
        if reason:
            self.end(reason)

    async def pull(self, stream: AsyncGenerator[T, None]) -> T:
        """The stream's next item (StopAsyncIteration at its end), unless access ends first."""
        if self.ended is not None:
            raise Unauthenticated(self.ended)
        waiting = self._waiting = asyncio.current_task()
        assert waiting is not None
        try:
            return await anext(stream)
        except asyncio.CancelledError:
            # Cancelled by end(), and by nothing else (the client's `complete`, a shutdown).
            if self.ended is None or waiting.uncancel() > 0:
                raise
            raise Unauthenticated(self.ended) from None
        finally:
            self._waiting = None

    def close(self) -> None:
        for check in self._checks:
            check.cancel()


async def while_access_lasts(info: Info, stream: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    context = info.context
    viewer = context.require_viewer()
    broker: Any = context.broker
    with ExitStack() as held:
        if isinstance(context.request, Request):
            # Over SSE the request is the connection: count it like a WebSocket.
            limit = context.settings.max_connections_per_user
            if not broker.admit_connection(viewer.user_id, limit):
                raise RateLimited(f"at most {limit} live connections per user")
            held.callback(broker.release_connection, viewer.user_id)
        else:
            # A WebSocket's context lives as long as the connection: it counts the connection's subscriptions.
            limit = context.settings.max_subscriptions_per_connection
            if context.open_subscriptions >= limit:
                raise RateLimited(f"at most {limit} subscriptions per connection")
            context.open_subscriptions += 1

            def closed() -> None:
                context.open_subscriptions -= 1

            held.callback(closed)
        guard = _AccessGuard(context.database, viewer, context.token_generation,
                             context.settings.subscription_outage_seconds)
        held.callback(guard.close)
        held.enter_context(broker.watch_access(viewer.user_id, guard.access_changed))
        if context.access_expires_at is not None:
            seconds = max(0.0, (context.access_expires_at - datetime.now(UTC)).total_seconds())
            expiry = asyncio.get_running_loop().call_later(
                seconds, guard.end, "the token has expired: sign in again and resubscribe")
            held.callback(expiry.cancel)
        delivered = held.enter_context(open_subscription())
        try:
            while True:
                try:
                    item = await guard.pull(stream)
                except StopAsyncIteration:
                    return
                delivered(item)
                yield item
        finally:
            await stream.aclose()

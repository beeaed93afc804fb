"""A live stream lasts only as long as its viewer's access: it ends when the token expires,
the account is deactivated or its role changes, on whichever worker the stream runs.

The broker tells every worker that a user's access changed (LISTEN/NOTIFY on
PostgreSQL); the stream then re-reads the account and, if its access is no
longer what the stream was opened with, ends with UNAUTHENTICATED: the client
signs in or resubscribes and gets what it may see now.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.requests import Request

from db.access import Viewer
from db.engine import Database
from db.errors import RateLimited, Unauthenticated
from db.users import active_role
from graph.context import Info
from graph.observability.metrics import open_subscription

T = TypeVar("T")


async def _access_ended(database: Database, viewer: Viewer) -> str | None:
    """Why the viewer may no longer keep this stream, or None when nothing that matters changed."""
    role = await active_role(database, viewer.user_id)  # type: ignore[arg-type]
    if role is None:
        return "the account was deactivated"
    if role is not viewer.role:
        return "the account's role changed: subscribe again to see what it may see now"
    return None


def _seconds_until(moment: datetime | None) -> float | None:
    return None if moment is None else max(0.0, (moment - datetime.now(UTC)).total_seconds())


async def while_access_lasts(info: Info, stream: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    context = info.context
    viewer = context.require_viewer()
    broker: Any = context.broker
    pull: asyncio.Future[T] | None = None
    watch: asyncio.Future[Any] | None = None
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
        changed: asyncio.Event = held.enter_context(broker.watch_access(viewer.user_id))
        delivered = held.enter_context(open_subscription())
        try:
            while True:
                if pull is None:
                    pull = asyncio.ensure_future(anext(stream))
                if watch is None:
                    watch = asyncio.ensure_future(changed.wait())
                done, _ = await asyncio.wait({pull, watch}, timeout=_seconds_until(context.access_expires_at),
                                             return_when=asyncio.FIRST_COMPLETED)
                if pull in done:
                    try:
                        item = pull.result()
                    except StopAsyncIteration:
                        return
                    pull = None
                    delivered(item)
                    yield item
                elif not done:
                    raise Unauthenticated("the token has expired: sign in again and resubscribe")
                else:
                    changed.clear()
                    watch = None
                    if reason := await _access_ended(context.database, viewer):
                        raise Unauthenticated(reason)
        finally:
            for waiting in (pull, watch):
                if waiting is not None and not waiting.done():
                    waiting.cancel()
                    with suppress(asyncio.CancelledError, StopAsyncIteration):
                        await waiting
            await stream.aclose()

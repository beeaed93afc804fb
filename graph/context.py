"""The per-request context every resolver reads through `Info`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry

from db.access import Viewer
from db.engine import Database
from db.errors import Unauthenticated
from db.settings import Settings

if TYPE_CHECKING:
    from graph.access.throttle import AccountThrottle
    from graph.loaders import Loaders


@dataclass
class Context:
    request: Any
    response: Any
    settings: Settings
    database: Database
    throttle: AccountThrottle
    broker: Any
    loaders: Loaders
    viewer: Viewer | None
    # Why authentication failed (bad or expired token), reported by the
    # permission check instead of a bare "not signed in".
    auth_error: str | None = None
    # The connection_init payload of a WebSocket, set by Strawberry before on_ws_connect.
    connection_params: dict[str, Any] | None = None

    # A WebSocket's subscriptions open now (its context lives as long as the connection).
    open_subscriptions: int = 0
    # When the viewer's token expires: a live stream ends then.
    access_expires_at: datetime | None = None
    # The token generation the request's token carries: a stream ends once the account's moves on.
    token_generation: int = 0
    # Signed in by a stream ticket, which opens one SSE subscription and nothing else.
    signed_in_by_ticket: bool = False
    # A reconnecting SSE client's Last-Event-ID: where its subscription resumes.
    last_event_id: str | None = None
    # The position of the event a subscription yielded last; the SSE stream sends it as the event's id.
    stream_position: str | None = None
    # An HTTP request's queries may read the replica, once it has replayed `replica_after` (db/replica.py).
    may_read_replica: bool = False
    replica_after: str | None = None

    def sign_in(self, session: Any) -> None:
        """Keeps what a live stream checks of the request's session (graph/http/view.py Session; None: no token)."""
        if session is not None:
            self.access_expires_at, self.token_generation = session.expires_at, session.generation
            self.signed_in_by_ticket = session.by_ticket

    def take_stream_position(self) -> str | None:
        position, self.stream_position = self.stream_position, None
        return position

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise Unauthenticated(self.auth_error or "sign in to do this")
        return self.viewer

    @property
    def client_address(self) -> str:
        client = getattr(self.request, "client", None)
        return client.host if client else "unknown"


Info = strawberry.Info[Context, None]

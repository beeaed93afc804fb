"""What one request did, gathered while it runs; its log line and its metrics are made from them when it ends.

The facts travel in a context variable: the SQL event hooks, the GraphQL
extension and the error masking each add theirs without being handed anything,
and every task the request starts (DataLoader batches, a WebSocket's
subscriptions) sees the same object.
"""

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

OK = "OK"
# A client's own id is kept when it is short and plain, so it can be searched for in the logs as sent.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


@dataclass(slots=True)
class RequestFacts:
    request_id: str
    operation_name: str | None = None
    operation_type: str | None = None
    viewer_id: uuid.UUID | None = None
    # The first error's code; OK when the request had none.
    code: str | None = None
    sql_statements: int = 0
    sql_seconds: float = 0.0


current: ContextVar[RequestFacts | None] = ContextVar("auditgraph_request_facts", default=None)


def request_id_from(header: bytes | None) -> str:
    """The client's X-Request-ID when it is usable, else a new one."""
    if header is not None:
        sent = header.decode("latin-1")
        if CLIENT_REQUEST_ID.fullmatch(sent):
            return sent
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    facts = current.get()
    return None if facts is None else facts.request_id


def request_reference() -> dict[str, str]:
    """`{"requestId": ...}` for an error's extensions: what a client quotes and the log is searched by."""
    facts = current.get()
    return {} if facts is None else {"requestId": facts.request_id}

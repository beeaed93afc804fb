"""What a client is told while the database is unreachable: `SERVICE_UNAVAILABLE`, retry later.

Over HTTP, a request that got nothing done for that reason is answered 503
with a Retry-After under either media type: it is the server, not the
request, that failed, and every HTTP client, proxy and retry policy knows what
503 means. The body stays a GraphQL response with the code. A result that
holds real data beside such an error keeps its data and its 200.
A WebSocket refused then is closed with 1013 (Try Again Later), which
graphql-ws and subscriptions-transport-ws clients treat as worth a reconnect.
"""

from collections.abc import Mapping
from typing import Any

from db.errors import DatabaseUnavailable
from graph.http.graphql_http import Refusal

RETRY_AFTER_SECONDS = 5
RETRY_AFTER = {"retry-after": str(RETRY_AFTER_SECONDS)}
TRY_AGAIN_LATER = 1013
CODE = DatabaseUnavailable.code


def refusal(error: DatabaseUnavailable) -> Refusal:
    return Refusal(503, error.message, code=error.code, headers=RETRY_AFTER)


def _codes(response: Mapping[str, Any]) -> set[object]:
    return {(error.get("extensions") or {}).get("code") for error in response.get("errors") or ()}


def got_nothing(response: Mapping[str, Any]) -> bool:
    """An unavailable database stopped the request, and no root field holds anything to keep."""
    data = response.get("data") or {}
    return CODE in _codes(response) and all(value is None for value in data.values())


def is_unavailable(response: Mapping[str, Any]) -> bool:
    """The request error a result becomes when got_nothing: no data entry at all."""
    return "data" not in response and CODE in _codes(response)

"""GraphQL over HTTP: the media type that answers a request, the status a result gets, and refusals.

`application/graphql-response+json` carries HTTP statuses that mean what they
say (a request error is a 4xx, with no `data` key); `application/json` is kept
for the clients written before it, which expect 200 for every GraphQL answer.
"""

from collections.abc import Mapping
from typing import Any

from cross_web import HTTPException

from graph.http.negotiation import json_media_type
from graph.observability.facts import request_reference

# The status of a request error (one raised before execution began) under the
# graphql-response media type; codes not listed are 400.
REQUEST_ERROR_STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "PERSISTED_QUERY_NOT_FOUND": 404,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "INTERNAL_SERVER_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
    "INSUFFICIENT_STORAGE": 507,
}
# What a 401 names as the way to sign in (RFC 9110, 11.6.1): a bearer token (RFC 6750).
CHALLENGE = {"www-authenticate": 'Bearer realm="auditgraph"'}
# The status of a refusal before the request was even parsed, under either media type.
REFUSAL_CODES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 413: "PAYLOAD_TOO_LARGE",
                 429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE", 507: "INSUFFICIENT_STORAGE"}


def is_request_error(response: Mapping[str, Any]) -> bool:
    """A result that failed before execution began (parse, validation, variables, authentication).

    Such a result has no `data` at all; a field error always has a path and
    leaves `data` in place, even when it is null.
    """
    return "data" not in response and bool(response.get("errors"))


def request_error_status(response: Mapping[str, Any]) -> int:
    codes = [(error.get("extensions") or {}).get("code") for error in response["errors"]]
    return max(REQUEST_ERROR_STATUS.get(code, 400) for code in codes)  # type: ignore[arg-type]


def storage_full(response: Mapping[str, Any]) -> bool:
    """A full disk stopped the request and no root field holds anything to keep: answered as a request
    error (no data entry; 507 under graphql-response+json), since the server, not the request, failed."""
    data = response.get("data") or {}
    codes = {(error.get("extensions") or {}).get("code") for error in response.get("errors") or ()}
    return codes == {"INSUFFICIENT_STORAGE"} and all(value is None for value in data.values())


def error_body(message: str, code: str, **details: Any) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **details, **request_reference()}}]}


class Refusal(HTTPException):
    """A request refused before execution; answered as a JSON error body with a code, never plain text."""

    def __init__(self, status_code: int, reason: str, code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code, reason)
        self.code = code or REFUSAL_CODES.get(status_code, "BAD_USER_INPUT")
        self.headers = dict(headers or {})


def refusal_parts(refusal: HTTPException, accept: str | None) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The body, status and headers that answer a refusal (ours, or one raised inside Strawberry)."""
    code = getattr(refusal, "code", None) or REFUSAL_CODES.get(refusal.status_code, "BAD_USER_INPUT")
    headers = {"content-type": json_media_type(accept), **getattr(refusal, "headers", {})}
    if refusal.status_code == 405:
        headers.setdefault("allow", "GET, POST")
    if refusal.status_code == 401:
        headers.update(CHALLENGE)
    return error_body(refusal.reason, code), refusal.status_code, headers

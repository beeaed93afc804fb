"""Guards for request bodies: a CSRF-safe header on multipart requests, and a size limit while a body streams in."""

from starlette.requests import Request
from starlette.types import Message

from db.errors import PayloadTooLarge
from graph.graphql_http import Refusal

# Headers a browser cannot send cross-site without a CORS preflight, as in
# Apollo Server's CSRF prevention. multipart/form-data itself is a "simple"
# content type, so without one a page on any site could post uploads.
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")
CSRF_MESSAGE = (
    "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). "
    "Multipart requests must carry a non-empty 'Apollo-Require-Preflight' or "
    "'X-Apollo-Operation-Name' header."
)
# Room for the `operations` and `map` fields (each at most 1 MiB to Starlette's
# parser), boundaries and part headers, beyond the largest file allowed.
BODY_OVERHEAD_BYTES = 2 * 1024 * 1024


def is_multipart(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def check_csrf_header(request: Request) -> None:
    if not any(request.headers.get(name, "").strip() for name in PREFLIGHT_HEADERS):
        raise Refusal(403, CSRF_MESSAGE)


def limit_body(request: Request, limit: int, what: str) -> Request:
    """The request with a body that may not grow past `limit` bytes.

    A declared Content-Length over the limit is refused before a byte is read;
    a body sent without one is counted as it arrives.
    """
    too_large = PayloadTooLarge(f"the request is larger than {what}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large
        return message

    return Request(request.scope, receive=receive)

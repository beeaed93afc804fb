"""Guards for request bodies: a CSRF-safe header on multipart requests, a size limit while a body
streams in, and a multipart request's `operations` and `map` fields read strictly, so a malformed
one is refused with a reason."""

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from db.errors import PayloadTooLarge
from graph.http.graphql_http import Refusal

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
MAP_SHAPE = (
    "the `map` field must be a JSON object from file part names to lists of paths, "
    'such as {"0": ["variables.file"]}'
)


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


def operations_with_files(form: Mapping[str, Any]) -> dict[str, Any]:
    """The `operations` field of a multipart request with each file part put where `map` says.

    Anything that does not follow the GraphQL multipart request spec is refused
    with a reason, before anything runs.
    """
    operations = _json_field(form, "operations")
    if not isinstance(operations, dict):
        raise Refusal(400, "the `operations` field must be a JSON object holding one operation")
    file_map = _json_field(form, "map", default={})
    if not isinstance(file_map, dict) or not all(
        isinstance(paths, list) and all(isinstance(path, str) for path in paths) for paths in file_map.values()
    ):
        raise Refusal(400, MAP_SHAPE)
    for name, paths in file_map.items():
        file = form.get(name)
        if isinstance(file, str):
            raise Refusal(400, f"`map` names the part {name!r}, which is a plain field, not a file: "
                               "a file part carries a filename in its Content-Disposition")
        if not isinstance(file, UploadFile):
            raise Refusal(400, f"`map` names the file part {name!r}, but the request holds no part of that name")
        for path in paths:
            _put(operations, path, file, name)
    return operations


def _json_field(form: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = form.get(name)
    if value is None:
        if default is not None:
            return default
        raise Refusal(400, f"a multipart request needs an `{name}` field (GraphQL multipart request spec)")
    if not isinstance(value, str):
        raise Refusal(400, f"the `{name}` field must be a form field holding JSON, not a file")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise Refusal(400, f"the `{name}` field is not valid JSON: {error}") from None


def _put(operations: dict[str, Any], path: str, file: UploadFile, name: str) -> None:
    """Put the file where `path` says, which must be a null placeholder under `variables`."""
    keys = path.split(".")
    where = f"`map` entry {name!r}: {path!r}"
    if len(keys) < 2 or keys[0] != "variables":
        raise Refusal(400, f"{where} must point into the variables, such as variables.file")
    parent: Any = operations
    for key in keys[:-1]:
        parent = _child(parent, key)
    slot = _slot(parent, keys[-1])
    if slot is None:
        raise Refusal(400, f"{where} points nowhere in `operations`")
    if parent[slot] is not None:
        raise Refusal(400, f"{where} must point at a null placeholder in `operations`")
    parent[slot] = file


def _slot(container: Any, key: str) -> str | int | None:
    """The place in a JSON object or list that a path segment names, if the place exists."""
    if isinstance(container, dict):
        return key if key in container else None
    if isinstance(container, list) and key.isascii() and key.isdigit() and len(key) < 10 and int(key) < len(container):
        return int(key)
    return None


def _child(container: Any, key: str) -> Any:
    slot = _slot(container, key)
    return None if slot is None else container[slot]

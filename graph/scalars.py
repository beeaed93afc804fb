"""Scalars beyond GraphQL's own, each refusing what it cannot carry with a message a person can act on:
64-bit integers carried whole, instants with an offset, JSON that can be stored and read back, files."""

from datetime import UTC, datetime
from math import isfinite
from typing import Any, NewType

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from db.errors import InvalidInput

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Deeper than any evidence or extraction result needs, and well inside the
# 255 levels the response encoder writes (the response's own nesting included):
# a deeper document could be stored and then never read back.
MAX_JSON_DEPTH = 64
DATETIME_EXAMPLE = "2024-05-01T12:00:00Z"


def _parse_big_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput("BigInt takes an integer or a string of digits")
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput("BigInt takes an integer or a string of digits") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidInput("BigInt is a signed 64-bit integer")
    return number


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"DateTime takes an ISO 8601 string with an offset, such as {DATETIME_EXAMPLE}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"DateTime takes an ISO 8601 date and time with an offset, such as {DATETIME_EXAMPLE}"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(
            "a DateTime needs a time and an offset: add Z for UTC or the offset it was taken in, "
            f"such as {DATETIME_EXAMPLE} or 2024-05-01T14:00:00+02:00"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput("a DateTime must fall between the years 1 and 9999 once converted to UTC") from None


def check_json(value: Any) -> Any:
    """The value, if storing it and reading it back gives the same JSON; walked without recursion."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth == MAX_JSON_DEPTH:
                raise InvalidInput(f"JSON values may nest at most {MAX_JSON_DEPTH} objects or lists deep")
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise InvalidInput("JSON integers must fit in 64 bits (signed); send larger numbers as strings")
        elif isinstance(item, float):
            if not isfinite(item):
                raise InvalidInput("JSON numbers must be finite")
        else:
            raise InvalidInput("JSON takes objects, lists, strings, numbers, booleans and null")
    return value


def _parse_upload(value: object) -> UploadFile:
    if not isinstance(value, UploadFile):
        raise InvalidInput(
            "Upload takes a file part of a multipart request (GraphQL multipart request spec): "
            "send the variable as null in `operations` and map a file part to it in `map`"
        )
    return value


def _parse_findings(value: object) -> list[Any]:
    # Only the outer shape here: each finding is checked off the event loop, with the rest of the analysis.
    if not isinstance(value, list):
        raise InvalidInput("findings takes a list of findings (objects)")
    return value


BigInt = NewType("BigInt", int)
FindingList = NewType("FindingList", list[Any])

SCALARS: dict[object, Any] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A signed 64-bit integer, serialized as a string so JavaScript clients keep every digit "
            "(GraphQL's Int is 32-bit)."
        ),
        serialize=str,
        parse_value=_parse_big_int,
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description=(
            "An instant, as an ISO 8601 date and time with an offset (`2024-05-01T12:00:00Z`, "
            "`2024-05-01T14:00:00+02:00`); returned in UTC. A value without an offset, or a bare date, "
            "is refused (BAD_USER_INPUT): it would name a different instant in every time zone."
        ),
        serialize=datetime.isoformat,
        parse_value=_parse_datetime,
    ),
    JSON: strawberry.scalar(
        name="JSON",
        description=(
            f"A JSON value (ECMA-404), nested at most {MAX_JSON_DEPTH} objects or lists deep, with integers "
            "that fit in 64 bits and no NUL character (U+0000) in its text."
        ),
        specified_by_url="https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf",
        serialize=lambda value: value,
        parse_value=check_json,
    ),
    FindingList: strawberry.scalar(
        name="FindingList",
        description=(
            "The findings of an analysis: a list of objects, each `{severity: CRITICAL | MAJOR | MINOR | INFO, "
            "ruleId: String!, message: String!, category: String, evidence: JSON, remediation: String, "
            "confidence: Float (0 to 1), artifactId: ID (an artifact of the same task that shows the evidence), "
            "sources: [{pageNumber: Int (1 or more), section: String, snippet: String}]}`. A scalar rather than a "
            "list of input objects so that thousands of findings cost one check, made off the event loop; a "
            "finding that does not fit is BAD_USER_INPUT naming its place (`findings.12.sources.0.pageNumber`)."
        ),
        serialize=lambda value: value,
        parse_value=_parse_findings,
    ),
    Upload: strawberry.scalar(
        name="Upload",
        description="A file part of a GraphQL multipart request.",
        serialize=lambda value: value,
        parse_value=_parse_upload,
    ),
}

__all__ = ["JSON", "SCALARS", "BigInt", "FindingList"]

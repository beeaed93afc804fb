"""Scalars beyond GraphQL's own: 64-bit integers carried whole, and free-form JSON."""

from typing import NewType

import strawberry
from strawberry.scalars import JSON

from db.errors import InvalidInput


def _parse_big_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput("BigInt takes an integer or a string of digits")
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput("BigInt takes an integer or a string of digits") from None
    if not -(2**63) <= number < 2**63:
        raise InvalidInput("BigInt is a signed 64-bit integer")
    return number


BigInt = NewType("BigInt", int)

SCALARS = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A signed 64-bit integer, serialized as a string so JavaScript clients keep every digit "
            "(GraphQL's Int is 32-bit)."
        ),
        serialize=str,
        parse_value=_parse_big_int,
    )
}

__all__ = ["JSON", "SCALARS", "BigInt"]

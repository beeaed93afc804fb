"""Text in a request: the NUL character (U+0000) is refused wherever it appears, before anything runs.

PostgreSQL cannot store it in text or JSON and SQLite would, so one check at
the door keeps both databases answering alike: in every string literal of the
document (a validation rule, cached with the document) and in every string and
object key of the variables (JSON values included).
"""

from collections.abc import Iterator
from typing import Any

import orjson
from graphql import GraphQLError, StringValueNode, ValidationRule
from strawberry.extensions import SchemaExtension

NUL = "\x00"
MESSAGE = "Text may not contain the NUL character (U+0000)"


class NoNulInLiterals(ValidationRule):
    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if NUL in node.value:
            self.report_error(GraphQLError(f"{MESSAGE}: remove it from this string.", node))


def _nul_path(value: Any, path: str) -> str | None:
    """Where in a decoded JSON value the first NUL is (a dotted path), or None; walked without recursion."""
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and NUL in key:
                    return f"a key of {where}"
                pending.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            pending.extend((child, f"{where}.{index}") for index, child in enumerate(item))
    return None


def _opaque(_value: object) -> None:
    # A value that is not JSON (an uploaded file) holds no text of the request's.
    return None


def nul_in_variables(variables: dict[str, Any]) -> str | None:
    """Where in a request's variables the first NUL is, or None."""
    # Most requests have none: one pass in C says so (orjson writes a NUL, in a string or a key, as \u0000).
    # Only a request that may have one is walked, to say where.
    try:
        if b"\\u0000" not in orjson.dumps(variables, default=_opaque):
            return None
    except TypeError:
        pass  # a value orjson refuses (an integer beyond 64 bits): the walk decides
    for name, value in variables.items():
        found = _nul_path(value, f"${name}")
        if found is not None:
            return found
    return None


class NoNulInVariables(SchemaExtension):
    """Refuses variables holding a NUL, as a request error like any variable of the wrong shape."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if not context.pre_execution_errors:
            found = nul_in_variables(context.variables or {})
            if found is not None:
                context.pre_execution_errors = [GraphQLError(f"{MESSAGE}: remove it from {found}.")]
        yield

"""The one place where failures become GraphQL errors with `extensions.code`."""

import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from db.availability import as_unavailable
from db.errors import DomainError, DuplicateTask, InvalidTransition, RateLimited
from graph.observability.facts import current_request_id, request_reference
from graph.relay import to_global_id

logger = logging.getLogger("auditgraph.errors")

INTERNAL_MESSAGE = "An unexpected error occurred."
# How graphql-core begins the message of a variable that does not coerce.
VARIABLE_PLACE = re.compile(r"^(Variable '\$[^']+' (?:has|got) (?:an )?invalid value(?: at '[^']*')?)")


def public_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        original = as_unavailable(original) or original
    if isinstance(original, DomainError):
        return _with_code(error, _message(error, original.message), original.code, _details(original))
    if original is None:
        # Raised by GraphQL itself (syntax, validation, variable coercion) or
        # made here with its code.
        # Kept whole, so an error that already passed through here keeps its details.
        return _with_code(error, error.message, *_code_and_details(error))
    if isinstance(original, GraphQLError):
        # Raised inside a resolver: its message and code, at the place
        # graphql-core located it (the raised error knows no path or location).
        inner = public_error(original)
        return _with_code(error, _message(error, inner.message), *_code_and_details(inner))
    logger.error("unexpected error at %s", error.path, exc_info=original, extra={"request_id": current_request_id()})
    return _with_code(error, INTERNAL_MESSAGE, "INTERNAL_SERVER_ERROR", {})


def _message(error: GraphQLError, inner: str) -> str:
    """The inner reason, prefixed with graphql-core's naming of the variable (and place) it is about."""
    named = VARIABLE_PLACE.match(error.message) if error.path is None else None
    return f"{named.group(1)}: {inner}" if named and inner not in named.group(1) else inner


def _code_and_details(error: GraphQLError) -> tuple[str, dict[str, object]]:
    extensions = dict(error.extensions or {})
    return str(extensions.pop("code", "BAD_USER_INPUT")), extensions


def _details(error: DomainError) -> dict[str, object]:
    if isinstance(error, InvalidTransition):
        return {"currentStatus": str(error.current), "requestedStatus": str(error.requested)}
    if isinstance(error, DuplicateTask):
        return {"taskId": to_global_id("Task", error.task_id)}  # type: ignore[arg-type]
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return {"retryAfter": error.retry_after}
    return {}


def _with_code(error: GraphQLError, message: str, code: str, details: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        # The request id on every error: a client quotes it, the server log is searched by it.
        extensions={"code": code, **details, **request_reference()},
    )


class ErrorCodes(SchemaExtension):
    """Gives every error a code and masks anything unexpected; the detail goes to the log only."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [public_error(error) for error in in_response_order(errors, result.data)]  # type: ignore[union-attr]


# After every field that has a place in the response.
_UNPLACED = 1 << 62


def in_response_order(errors: Sequence[GraphQLError], data: Any) -> list[GraphQLError]:
    """The errors in the order of the places they name in the response (errors without a place first).

    graphql-core lists field errors as their resolvers finish, which depends on
    timing, and on what a compiled run warmed before it fell back to
    graphql-core: the same request answered twice could list them differently.
    """
    return sorted(errors, key=lambda error: _place(error, data))


def _place(error: GraphQLError, data: Any) -> tuple[tuple[Any, ...], ...]:
    place: list[tuple[Any, ...]] = []
    path = error.path or ()
    for depth, part in enumerate(path):
        if isinstance(part, int):
            place.append((part,))
            data = data[part] if isinstance(data, list) and part < len(data) else None
        elif isinstance(data, dict) and part in data:
            place.append((list(data).index(part),))
            data = data[part]
        else:
            # An error below nulled this object, so the response keeps no order here: the document's order,
            # then the list positions.
            location = (error.locations[0].line, error.locations[0].column) if error.locations else (0, 0)
            place.append((_UNPLACED, location, tuple(p for p in path[depth:] if isinstance(p, int))))
            break
    return tuple(place)

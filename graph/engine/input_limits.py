"""Bounds on what a request may carry in its arguments: string length, list length, nesting depth.

The request body's size is bounded before it is parsed (graph/http/view.py); these
bounds apply to every argument, written in the document or passed as a
variable, JSON values included, and are checked before anything executes.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    ListValueNode,
    ObjectValueNode,
    StringValueNode,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension

from db.python_work import off_the_loop
from graph.engine.document_text import parsed_text


@dataclass(frozen=True)
class InputBounds:
    max_string_length: int
    max_list_length: int
    max_depth: int

    def check(self, value: Any, where: str, depth: int = 0) -> str | None:
        """Why `value` is out of bounds, or None; walks no deeper than the bound."""
        if depth > self.max_depth:
            return f"{where} is nested deeper than {self.max_depth} levels"
        if isinstance(value, str):
            if len(value) > self.max_string_length:
                return f"{where} has a string longer than {self.max_string_length} characters"
        elif isinstance(value, list):
            if len(value) > self.max_list_length:
                return f"{where} has a list longer than {self.max_list_length} items"
            for item in value:
                if reason := self.check(item, where, depth + 1):
                    return reason
        elif isinstance(value, dict):
            for item in value.values():
                if reason := self.check(item, where, depth + 1):
                    return reason
        return None


    def variables_reason(self, variables: dict[str, Any]) -> str | None:
        """Why one of a request's variables is out of bounds, or None."""
        for name, value in variables.items():
            if reason := self.check(value, f"variable '${name}'", 1):
                return reason
        return None


class _LiteralArguments(Visitor):
    """Finds the first argument written in the document that is out of bounds."""

    def __init__(self, bounds: InputBounds) -> None:
        super().__init__()
        self.bounds = bounds
        self.reason: str | None = None

    def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
        self.reason = self.reason or self._check(node.value, f"argument '{node.name.value}'", 0)
        return self.SKIP

    def _check(self, node: Any, where: str, depth: int) -> str | None:
        if depth > self.bounds.max_depth:
            return f"{where} is nested deeper than {self.bounds.max_depth} levels"
        if isinstance(node, StringValueNode):
            return self.bounds.check(node.value, where, depth)
        if isinstance(node, ListValueNode):
            if len(node.values) > self.bounds.max_list_length:
                return f"{where} has a list longer than {self.bounds.max_list_length} items"
            children = node.values
        elif isinstance(node, ObjectValueNode):
            children = tuple(field.value for field in node.fields)
        else:
            return None
        return next((reason for child in children if (reason := self._check(child, where, depth + 1))), None)


# Past this many list items in a request's variables, their walk leaves the event loop.
MANY_ITEMS = 256


def _many_items(variables: dict[str, Any]) -> bool:
    """Whether the lists in the variables, or in the input objects they hold, have more than MANY_ITEMS items:
    a look at two levels, not a walk."""
    items = 0
    for value in variables.values():
        for inner in value.values() if isinstance(value, dict) else (value,):
            if isinstance(inner, list):
                items += len(inner)
    return items > MANY_ITEMS


class InputLimits(SchemaExtension):
    """Refuses a request whose arguments are out of bounds, with BAD_USER_INPUT, before execution.

    What the document itself writes is checked once per document (`literal_reasons`, by query text);
    the variables, every time.
    """

    def __init__(self, bounds: InputBounds, literal_reasons: LRUCache[str, str | None]) -> None:
        self.bounds = bounds
        self.literal_reasons = literal_reasons

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and not context.pre_execution_errors:
            variables = context.variables or {}
            if _many_items(variables):
                # recordAnalysis's thousands of findings: walked off the loop (db/python_work.py), which then takes
                # turns with the walk at the interpreter's switch interval instead of waiting for all of it.
                reason = await off_the_loop(self.bounds.variables_reason, variables)
            else:
                reason = self.bounds.variables_reason(variables)
            reason = reason or self._literal_reason(context.graphql_document)
            if reason is not None:
                context.pre_execution_errors = [GraphQLError(
                    f"The request is too large: {reason}.", extensions={"code": "BAD_USER_INPUT"}
                )]
        yield

    def _literal_reason(self, document: DocumentNode) -> str | None:
        text = parsed_text(document)
        if text in self.literal_reasons:
            return self.literal_reasons[text]
        literals = _LiteralArguments(self.bounds)
        visit(document, literals)
        self.literal_reasons[text] = literals.reason
        return literals.reason


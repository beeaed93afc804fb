"""Whether a GraphQL response fits the schema and the document that asked for it.

Walks the document's selections beside the response's `data`: every selected
key present and no other, no null where the schema says non-null, lists where
it says lists, enum values the enum has, and scalars in their wire form (32-bit
Int, BigInt as a string of digits, DateTime with an offset, ...). Errors must
be objects with a message and one of the codes DESIGN.md names.
"""

import base64
import binascii
import re
from datetime import date, datetime
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    is_abstract_type,
)

ERROR_CODES = frozenset({
    "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "INVALID_TRANSITION", "CONFLICT",
    "ALREADY_EXISTS", "PAYLOAD_TOO_LARGE", "RATE_LIMITED", "QUERY_TOO_COMPLEX", "PERSISTED_QUERY_NOT_FOUND",
    "SERVICE_UNAVAILABLE", "INSUFFICIENT_STORAGE",
})
INT32 = range(-(2**31), 2**31)
INT64 = range(-(2**63), 2**63)
DIGITS = re.compile(r"-?[0-9]+")


def response_problems(schema: GraphQLSchema, document: DocumentNode, body: Any) -> list[str]:
    """What is wrong with a response body, or nothing."""
    if not isinstance(body, dict):
        return [f"the body is not a JSON object: {body!r}"]
    problems = [f"unexpected top-level key {key!r}" for key in body if key not in ("data", "errors", "extensions")]
    problems += _error_problems(body.get("errors"))
    if "data" not in body and not body.get("errors"):
        problems.append("a response without data must carry errors")
    data = body.get("data")
    if data is not None:
        operation = next(node for node in document.definitions if isinstance(node, OperationDefinitionNode))
        root = schema.get_root_type(operation.operation)
        assert root is not None
        fragments = {
            node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)
        }
        walker = _Walker(schema, fragments, problems)
        walker.object(root, [operation.selection_set], data, "data")
    return problems


def _error_problems(errors: Any) -> list[str]:
    if errors is None:
        return []
    if not isinstance(errors, list) or not errors:
        return [f"errors must be a non-empty list: {errors!r}"]
    problems = []
    for error in errors:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            problems.append(f"an error without a message: {error!r}")
            continue
        code = (error.get("extensions") or {}).get("code")
        if code not in ERROR_CODES:
            problems.append(f"an error with code {code!r}: {error['message']!r}")
    return problems


class _Walker:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 problems: list[str]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.problems = problems

    def value(self, type_: GraphQLOutputType, selections: list[SelectionSetNode], value: Any, path: str) -> None:
        if isinstance(type_, GraphQLNonNull):
            if value is None:
                self.problems.append(f"{path} is null but its type is {type_}")
                return
            type_ = type_.of_type
        if value is None:
            return
        if isinstance(type_, GraphQLList):
            if not isinstance(value, list):
                self.problems.append(f"{path} should be a list: {value!r}")
                return
            for index, item in enumerate(value):
                self.value(type_.of_type, selections, item, f"{path}[{index}]")
        elif isinstance(type_, GraphQLScalarType):
            if not _scalar_fits(type_.name, value):
                self.problems.append(f"{path} is not a {type_.name}: {value!r}")
        elif isinstance(type_, GraphQLEnumType):
            if value not in type_.values:
                self.problems.append(f"{path} is not a {type_.name}: {value!r}")
        elif is_abstract_type(type_):
            self.abstract(type_, selections, value, path)  # type: ignore[arg-type]
        else:
            self.object(type_, selections, value, path)  # type: ignore[arg-type]

    def abstract(self, type_: Any, selections: list[SelectionSetNode], value: Any, path: str) -> None:
        """A value of an interface fits if it fits the type it names, or, naming none, any of them."""
        concrete = self.concrete_type(value)
        candidates = [concrete] if concrete is not None else self.schema.get_possible_types(type_)
        attempts = []
        for candidate in candidates:
            if not self.schema.is_sub_type(type_, candidate):
                continue
            attempt = _Walker(self.schema, self.fragments, [])
            attempt.object(candidate, selections, value, path)
            if not attempt.problems:
                return
            attempts.append(attempt.problems)
        self.problems.extend(attempts[0] if attempts else [f"{path} is no {type_}: {value!r}"])

    def object(self, type_: GraphQLObjectType, selections: list[SelectionSetNode], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path} should be an object: {value!r}")
            return
        fields: dict[str, tuple[FieldNode, list[SelectionSetNode]]] = {}
        for selection_set in selections:
            self.collect(type_, selection_set, fields)
        for key in value:
            if key not in fields:
                self.problems.append(f"{path}.{key} was not asked for")
        for key, (node, sub_selections) in fields.items():
            if key not in value:
                self.problems.append(f"{path}.{key} is missing")
            elif node.name.value == "__typename":
                if value[key] != type_.name:
                    self.problems.append(f"{path}.{key} should be {type_.name}: {value[key]!r}")
            else:
                field = type_.fields[node.name.value]
                self.value(field.type, sub_selections, value[key], f"{path}.{key}")

    def collect(self, type_: GraphQLObjectType, selection_set: SelectionSetNode,
                fields: dict[str, tuple[FieldNode, list[SelectionSetNode]]]) -> None:
        """The fields selected on an object of this type, merged by response key, as execution does."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                _, merged = fields.setdefault(key, (selection, []))
                if selection.selection_set is not None:
                    merged.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self.applies(condition.name.value, type_):
                    self.collect(type_, selection.selection_set, fields)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if self.applies(fragment.type_condition.name.value, type_):
                    self.collect(type_, fragment.selection_set, fields)

    def applies(self, condition: str, type_: GraphQLObjectType) -> bool:
        named = self.schema.get_type(condition)
        if named is type_:
            return True
        return named is not None and is_abstract_type(named) and self.schema.is_sub_type(named, type_)  # type: ignore[arg-type]

    def concrete_type(self, value: Any) -> GraphQLObjectType | None:
        """The object type of a value of an interface: its __typename, or the type its global id names."""
        if not isinstance(value, dict):
            return None
        name = value.get("__typename")
        if name is None and isinstance(value.get("id"), str):
            try:
                name = base64.b64decode(value["id"], validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                return None
        named: GraphQLNamedType | None = self.schema.get_type(name) if isinstance(name, str) else None
        return named if isinstance(named, GraphQLObjectType) else None


def _scalar_fits(name: str, value: Any) -> bool:
    if name == "Int":
        return isinstance(value, int) and not isinstance(value, bool) and value in INT32
    if name == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name in ("String", "ID"):
        return isinstance(value, str)
    if name == "Boolean":
        return isinstance(value, bool)
    if name == "BigInt":
        return isinstance(value, str) and DIGITS.fullmatch(value) is not None and int(value) in INT64
    if name == "DateTime":
        return isinstance(value, str) and _parses(datetime.fromisoformat, value) and (
            datetime.fromisoformat(value).tzinfo is not None
        )
    if name == "Date":
        return isinstance(value, str) and _parses(date.fromisoformat, value)
    return name == "JSON"


def _parses(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True

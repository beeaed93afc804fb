"""The cost budget: what a document may ask for, computed before anything executes.

Every field costs 1 plus what it selects; a field that returns many items
multiplies what it selects by how many it may return: a connection by its page
size (`first`/`last`, clamped to the maximum a page serves, or the default page
when neither is given), `nodes(ids:)` by the number of ids, and any other list
by an assumed length. Fragments and aliases count as what they expand to; a
fragment's cost is computed once per request, so a document that spreads the
same fragment many times costs time in proportion to its size, not to its
expansion. No well-kept Python library does this for graphql-core (graphql-
cost-analysis and its kin are JavaScript), hence this module.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    VariableNode,
    get_named_type,
)
from graphql.execution.values import get_variable_values
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from db.pagination import DEFAULT_PAGE_SIZE
from graph.engine.document_cache import DocumentCache
from graph.engine.document_text import parsed_text

# How many items a list that takes no page size is assumed to hold (an
# analysis's findings, a finding's sources, a task's artifacts).
ASSUMED_LIST_LENGTH = 10
PAGE_ARGUMENTS = ("first", "last")
# The variable values (page sizes, id counts) one document's cost is remembered for.
SHAPES_PER_DOCUMENT = 64


@dataclass
class CostCalculator:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    max_page_size: int
    _fragment_costs: dict[str, int] = field(default_factory=dict)
    # The variables the cost depends on, by name: what a cached cost is keyed by.
    read: set[str] = field(default_factory=set)

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        return self.selection_set(operation.selection_set, root) if root else 0

    def selection_set(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None) -> int:
        if selection_set is None:
            return 0
        return sum(self._selection_costs(selection_set, parent))

    def _selection_costs(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None) -> Iterator[int]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                yield self.selection_set(selection.selection_set, inner)
            elif isinstance(selection, FragmentSpreadNode):
                yield self.fragment(selection.name.value)

    def fragment(self, name: str) -> int:
        if name not in self._fragment_costs:
            # Validation has refused cycles; the placeholder keeps a bug from recursing forever.
            self._fragment_costs[name] = 0
            definition = self.fragments.get(name)
            if definition is not None:
                parent = self.schema.get_type(definition.type_condition.name.value)
                self._fragment_costs[name] = self.selection_set(definition.selection_set, parent)
        return self._fragment_costs[name]

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> int:
        definition = self._definition(node.name.value, parent)
        if definition is None:  # __typename, or a field validation would have refused
            return 1 + self.selection_set(node.selection_set, None)
        child = get_named_type(definition.type)
        return 1 + self.multiplier(node, definition.type, parent) * self.selection_set(  # type: ignore[arg-type]
            node.selection_set, child)

    def multiplier(self, node: FieldNode, type_: Any, parent: GraphQLNamedType) -> int:
        arguments = {argument.name.value: argument.value for argument in node.arguments or ()}
        if any(name in arguments for name in PAGE_ARGUMENTS) or self._is_connection(type_):
            sizes = [self._int(arguments[name]) for name in PAGE_ARGUMENTS if name in arguments]
            size = max((size for size in sizes if size is not None), default=DEFAULT_PAGE_SIZE)
            return max(0, min(size, self.max_page_size))
        if not self._is_list(type_):
            return 1
        if parent.name.endswith("Connection"):
            return 1  # a connection's edges: its page size has already been counted
        if "ids" in arguments:
            return self._length(arguments["ids"])
        return ASSUMED_LIST_LENGTH

    def _definition(self, name: str, parent: GraphQLNamedType | None) -> GraphQLField | None:
        """The field's definition; introspection's own fields too, which are costed like any other."""
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return None
        if name == "__schema" and parent is self.schema.query_type:
            return SchemaMetaFieldDef
        if name == "__type" and parent is self.schema.query_type:
            return TypeMetaFieldDef
        return parent.fields.get(name)

    @staticmethod
    def _is_list(type_: Any) -> bool:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        return isinstance(type_, GraphQLList)

    @staticmethod
    def _is_connection(type_: Any) -> bool:
        return get_named_type(type_).name.endswith("Connection")

    def _value(self, node: Any) -> Any:
        if isinstance(node, VariableNode):
            self.read.add(node.name.value)
            return self.variables.get(node.name.value)
        return node

    def _int(self, node: Any) -> int | None:
        value = self._value(node)
        if isinstance(value, IntValueNode):
            return int(value.value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def _length(self, node: Any) -> int:
        value = self._value(node)
        if isinstance(value, ListValueNode):
            return len(value.values)
        return len(value) if isinstance(value, list) else 1


def _shape(value: Any) -> Any:
    """What of a variable's value a cost can depend on: a number, or a list's length."""
    if isinstance(value, list):
        return ("list", len(value))
    return value if isinstance(value, int) else None


class CostCache:
    """Costs of recent documents, keyed by the values of the variables each cost depends on.

    Most requests repeat a document with the same page sizes; walking it again
    would cost more than the rest of validation, which is cached too.
    """

    def __init__(self, max_bytes: int) -> None:
        # (query, operation name) -> (the variables its cost reads, {their shapes: cost})
        self._entries: DocumentCache[tuple[str, str | None], tuple[tuple[str, ...], LRUCache[Any, int]]] = (
            DocumentCache(max_bytes)
        )

    def cost(self, schema: GraphQLSchema, query: str, document: Any, operation_name: str | None,
             variables: Mapping[str, Any], max_page_size: int) -> int:
        key = (query, operation_name)
        entry = self._entries.get(key)
        if entry is not None:
            names, costs = entry
            cost = costs.get(tuple(_shape(variables.get(name)) for name in names))
            if cost is not None:
                return cost
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return 0
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        calculator = CostCalculator(schema, fragments, variables, max_page_size)
        cost = calculator.operation(operation)
        names = tuple(sorted(calculator.read))
        if entry is None or entry[0] != names:
            entry = self._entries[key] = (names, LRUCache(SHAPES_PER_DOCUMENT))
        entry[1][tuple(_shape(variables.get(name)) for name in names)] = cost
        return cost


def coerced_variables(schema: GraphQLSchema, document: Any, operation_name: str | None,
                      variables: Mapping[str, Any]) -> Mapping[str, Any]:
    """The variables as execution will see them (graphql-core's coercion, defaults applied): `100.0`, `1e2` and
    a default of 100 are the page size 100. Values that do not coerce are the raw ones (the request is refused
    for them before it executes anyway)."""
    operation = get_operation_ast(document, operation_name)
    definitions = operation.variable_definitions if operation is not None else None
    if not definitions:
        return variables
    coerced = get_variable_values(schema, definitions, dict(variables))
    return variables if isinstance(coerced, list) else coerced.coerced


class CostBudget(SchemaExtension):
    """Refuses a document over the budget before it executes; reports the cost when the request asks.

    Placed after validation (its errors are cached): an invalid document is
    answered by them, and a valid one's cost is computed from its variables.
    A request with `"extensions": {"cost": true}` gets `extensions.cost` back.
    """

    def __init__(self, cache: CostCache, max_cost: int, max_page_size: int) -> None:
        self.cache = cache
        self.max_cost = max_cost
        self.max_page_size = max_page_size
        self.cost: int | None = None

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            schema = context.schema._schema
            self.cost = self.cache.cost(schema, parsed_text(document), document, context.operation_name,
                                        coerced_variables(schema, document, context.operation_name,
                                                          context.variables or {}),
                                        self.max_page_size)
            if self.cost > self.max_cost:
                context.pre_execution_errors = [GraphQLError(
                    f"This document costs {self.cost}, over the budget of {self.max_cost}: ask for fewer "
                    "items (first/last), fewer nested lists or fewer aliases.",
                    extensions={"code": "QUERY_TOO_COMPLEX", "cost": self.cost, "maxCost": self.max_cost},
                )]
        yield

    def get_results(self) -> dict[str, Any]:
        asked = (self.execution_context.operation_extensions or {}).get("cost") is True
        if asked and self.cost is not None:
            return {"cost": {"requested": self.cost, "maximum": self.max_cost}}
        return {}

"""Compiled execution of queries: a document's plan is built once, then run without
graphql-core's per-field machinery.

graphql-core spends several microseconds on every field of every object (building
resolve info, checking awaitables, completing values); a dashboard read has
thousands. For the common shape of query -- object types, lists, scalars, enums,
fragments on the same type, arguments -- the plan below resolves plain attributes
with a bare getattr, calls every other field's own resolver (so permissions and
loaders behave exactly as usual), and completes a whole level of the tree before
the next, which also keeps each DataLoader to one batch per level.

Anything outside that shape (mutations, subscriptions, directives, abstract types,
introspection), and any error at all, leaves the operation to graphql-core: queries
have no side effects, so running one again through the standard path is safe, and
that path alone decides how errors and partial results look.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.pyutils import Path
from graphql.utilities import get_operation_ast
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import SchemaExtension

logger = logging.getLogger("auditgraph.compiled")

NON_NULL, LIST = "N", "L"


class Unsupported(Exception):
    """This document or this run is left to graphql-core."""


@dataclass(slots=True, eq=False)
class FieldPlan:
    key: str
    name: str
    parent: GraphQLObjectType
    nodes: list[FieldNode]
    definition: Any
    wrappers: str
    attribute: str | None = None
    typename: str | None = None
    serialize: Callable[[Any], Any] | None = None
    children: "SelectionPlan | None" = None


@dataclass(slots=True, eq=False)
class SelectionPlan:
    fields: list[FieldPlan]
    keys: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = tuple(f.key for f in self.fields)


@dataclass(slots=True, eq=False)
class QueryPlan:
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    root_type: GraphQLObjectType
    root: SelectionPlan


def compile_query(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> QueryPlan:
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY or operation.directives:
        raise Unsupported("not a plain query")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if any(fragment.directives for fragment in fragments.values()):
        raise Unsupported("fragment directives")
    root_type = schema.query_type
    assert root_type is not None
    return QueryPlan(operation, fragments, root_type, _selection(root_type, [operation.selection_set], fragments))


def _selection(
    parent: GraphQLObjectType, selection_sets: list[SelectionSetNode], fragments: dict[str, FragmentDefinitionNode]
) -> SelectionPlan:
    grouped: dict[str, list[FieldNode]] = {}
    for node in _collect(parent, selection_sets, fragments):
        grouped.setdefault(node.alias.value if node.alias else node.name.value, []).append(node)
    return SelectionPlan([_field(parent, key, nodes, fragments) for key, nodes in grouped.items()])


def _collect(
    parent: GraphQLObjectType, selection_sets: list[SelectionSetNode], fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    for selection_set in selection_sets:
        for selection in selection_set.selections:
            if selection.directives:
                raise Unsupported("@skip/@include depend on variables")
            if isinstance(selection, FieldNode):
                yield selection
                continue
            if isinstance(selection, FragmentSpreadNode):
                fragment = fragments[selection.name.value]
                condition, inner = fragment.type_condition, fragment.selection_set
            elif isinstance(selection, InlineFragmentNode):
                condition, inner = selection.type_condition, selection.selection_set
            else:
                raise Unsupported(type(selection).__name__)
            if condition is not None and condition.name.value != parent.name:
                raise Unsupported("fragments on abstract types")
            yield from _collect(parent, [inner], fragments)


def _field(
    parent: GraphQLObjectType, key: str, nodes: list[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> FieldPlan:
    name = nodes[0].name.value
    if name == "__typename":
        return FieldPlan(key, name, parent, nodes, None, NON_NULL, typename=parent.name)
    if name.startswith("__"):
        raise Unsupported("introspection")
    definition = parent.fields[name]
    wrappers, named = "", definition.type
    while isinstance(named, GraphQLNonNull | GraphQLList):
        wrappers += NON_NULL if isinstance(named, GraphQLNonNull) else LIST
        named = named.of_type
    plan = FieldPlan(key, name, parent, nodes, definition, wrappers)
    if getattr(definition.resolve, "_is_default", False):
        # Strawberry's "basic" field: no resolver, no extensions, just an attribute.
        plan.attribute = definition.extensions["strawberry-definition"].python_name
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        plan.serialize = named.serialize
    elif isinstance(named, GraphQLObjectType):
        plan.children = _selection(named, [n.selection_set for n in nodes if n.selection_set], fragments)
    else:
        raise Unsupported("abstract types")
    return plan


class PlanCache:
    """The plans of recently seen documents, bounded like the parser and validation caches."""

    def __init__(self, maxsize: int) -> None:
        self._plans: OrderedDict[tuple[str, str | None], QueryPlan | None] = OrderedDict()
        self._maxsize = maxsize

    def get(self, schema: GraphQLSchema, query: str, document: DocumentNode,
            operation_name: str | None) -> QueryPlan | None:
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        try:
            plan: QueryPlan | None = compile_query(schema, document, operation_name)
        except Unsupported:
            plan = None
        self._plans[key] = plan
        if len(self._plans) > self._maxsize:
            self._plans.popitem(last=False)
        return plan


class _Run:
    """One execution of a plan: the request's variables, context and root value."""

    def __init__(self, plan: QueryPlan, schema: GraphQLSchema, variables: Any, context: Any, root: Any) -> None:
        self.plan = plan
        self.schema = schema
        self.variables = variables
        self.context = context
        self.root = root

    async def data(self) -> dict[str, Any]:
        data: dict[str, Any] = dict.fromkeys(self.plan.root.keys)
        await self._level(self.plan.root, [(self.root, data)])
        return data

    async def _level(self, selection: SelectionPlan, targets: list[tuple[Any, dict[str, Any]]]) -> None:
        below: list[tuple[SelectionPlan, list[tuple[Any, dict[str, Any]]]]] = []
        waiting: list[tuple[FieldPlan, dict[str, Any], list[tuple[Any, dict[str, Any]]], Any]] = []
        for plan in selection.fields:
            nested: list[tuple[Any, dict[str, Any]]] = []
            if plan.children is not None:
                below.append((plan.children, nested))
            if plan.typename is not None:
                for _, out in targets:
                    out[plan.key] = plan.typename
                continue
            if plan.attribute is not None:
                attribute = plan.attribute
                for source, out in targets:
                    out[plan.key] = self._complete(plan, 0, getattr(source, attribute), nested)
                continue
            resolve = plan.definition.resolve
            args = get_argument_values(plan.definition, plan.nodes[0], self.variables)
            info = self._info(plan)
            for source, out in targets:
                value = resolve(source, info, **args)
                if optimized_is_awaitable(value):
                    waiting.append((plan, out, nested, value))
                else:
                    out[plan.key] = self._complete(plan, 0, value, nested)
        if waiting:
            # Every resolver of this level starts before any is awaited, so each
            # DataLoader sees the whole level's keys in one batch.
            values = await asyncio.gather(*(item[3] for item in waiting))
            for (plan, out, nested, _), value in zip(waiting, values, strict=True):
                out[plan.key] = self._complete(plan, 0, value, nested)
        for children, nested in below:
            if nested:
                await self._level(children, nested)

    def _complete(self, plan: FieldPlan, depth: int, value: Any, nested: list[tuple[Any, dict[str, Any]]]) -> Any:
        wrappers = plan.wrappers
        if value is None:
            if depth < len(wrappers) and wrappers[depth] == NON_NULL:
                raise Unsupported("null in a non-null position is graphql-core's error to report")
            return None
        if depth < len(wrappers) and wrappers[depth] == NON_NULL:
            depth += 1
        if depth < len(wrappers):
            if isinstance(value, str | bytes | dict):
                raise Unsupported("not a list")
            return [self._complete(plan, depth + 1, item, nested) for item in value]
        if plan.serialize is not None:
            serialized = plan.serialize(value)
            if serialized is None:
                raise Unsupported("unserializable leaf")
            return serialized
        assert plan.children is not None
        out: dict[str, Any] = dict.fromkeys(plan.children.keys)
        nested.append((value, out))
        return out

    def _info(self, plan: FieldPlan) -> GraphQLResolveInfo:
        return GraphQLResolveInfo(
            plan.name,
            plan.nodes,
            plan.definition.type,
            plan.parent,
            Path(None, plan.key, plan.parent.name),
            self.schema,
            self.plan.fragments,
            self.root,
            self.plan.operation,
            self.variables,
            self.context,
            optimized_is_awaitable,
            None,
            None,
        )


class CompiledExecution(SchemaExtension):
    """Runs supported queries from a cached plan; everything else goes to graphql-core."""

    def __init__(self, cache: PlanCache) -> None:
        self.cache = cache

    async def on_execute(self) -> Any:  # type: ignore[override]
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.query is not None:
            schema = context.schema._schema
            plan = self.cache.get(schema, context.query, document, context.operation_name)
            if plan is not None:
                variables = get_variable_values(schema, plan.operation.variable_definitions or (),
                                                context.variables or {})
                if not isinstance(variables, list):
                    try:
                        data = await _Run(plan, schema, variables, context.context, context.root_value).data()
                    except Exception:  # noqa: BLE001 - any failure is graphql-core's to report
                        logger.debug("compiled execution fell back to graphql-core", exc_info=True)
                    else:
                        context.result = ExecutionResult(data=data, errors=None)
        yield

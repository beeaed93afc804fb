"""Compiled execution of queries: a document's plan is built once, then run without
graphql-core's per-field machinery.

graphql-core spends several microseconds on every field of every object (building
resolve info, checking awaitables, completing values); a dashboard read has
thousands. For the common shape of query -- object types, lists, scalars, enums,
fragments on the same type, arguments -- the plan below resolves plain attributes
with a bare getattr, calls a resolver that has no permissions or extensions
directly (its arguments and Info converted once per level, not once per object),
calls every other field through Strawberry's own wrapper (so permissions behave
exactly as usual), and completes a whole level of the tree before the next,
which also keeps each DataLoader to one batch per level.

A relationship whose resolver only loads (marked `@loads`, graph/engine/batching.py),
asked for without arguments, and whose selection the rows alone can answer
(columns, `__typename`, resolvers of the object alone, further such
relationships), runs in the row lane: one read of the loader's rows for the
whole level, and each row turned straight into its response object, without
a resolver call, a DataLoader future or an object per row.

Anything outside that shape (mutations, subscriptions, directives, abstract types,
introspection), and any error at all, leaves the operation to graphql-core: queries
have no side effects, so running one again through the standard path is safe, and
that path alone decides how errors and partial results look.
"""

import asyncio
import copy
import datetime
import enum
import inspect
import logging
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    NamedTypeNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.pyutils import Path
from graphql.utilities import get_operation_ast
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema import Schema
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

from db.availability import WAITED_TOO_LONG
from graph.engine.document_cache import DocumentCache
from graph.engine.document_text import parsed_text
from graph.engine.rows import RowShape

logger = logging.getLogger("auditgraph.compiled")

# The class of the loader a `@loads` resolver names (graph/loaders.py's Loaders.kind), passed in by the
# schema: the engine knows no domain's loaders.
LoaderKind = Callable[[str], object]

NON_NULL, LIST = "N", "L"
# What a row-lane reader does with a row.
# A variable the request leaves out (its argument then takes its default, which a null would not).
_ABSENT = object()
# How many sets of converted arguments a field's plan keeps (one per page size a client asks for, say).
CONVERTED_PER_PLAN = 16
IMMUTABLE = (str, int, float, bool, bytes, enum.Enum, uuid.UUID, datetime.date, datetime.time, datetime.timedelta)
# Scalars whose serializer returns a value of this class unchanged.
PASSED_THROUGH = {"String": str, "ID": str, "Boolean": bool}


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
    children: "SelectionPlan | None" = None
    # A resolver called directly: (source, **arguments) or (**arguments).
    method: Callable[..., Any] | None = None
    strawberry_field: StrawberryField | None = None
    passes_source: bool = False
    info_name: str | None = None
    # Permissions checked before the resolver is called directly (a refusal is graphql-core's to report).
    permissions: tuple[BasePermission, ...] = ()
    # A resolver of the object alone (a global id): no arguments, no Info, no permissions to build or check.
    alone: bool = False
    # The variables the field's arguments use, by name: the converted arguments of each of their values
    # are kept here (a few, per plan), so a repeated request converts nothing.
    argument_variables: tuple[str, ...] = ()
    converted: dict[Any, dict[str, Any]] = field(default_factory=dict)
    rows: "RowsPlan | None" = None
    # A leaf value of this class is its own serialization (the check is inlined where leaves are many).
    plain: type | None = None
    # An enum's names by member: a member found here is serialized by this lookup alone.
    enum_names: dict[Any, str] | None = None
    # A leaf's serialization of any value, a null where the schema allows one (`_serialized`).
    serialized: Callable[[Any], Any] | None = None
    # A Float leaf: a finite float is its own serialization.
    finite_float: bool = False
    # A row lane's response-object builders, by the column names of the rows they read (`_lane_builder`).
    builders: dict[tuple[str, ...], Callable[[list[Any]], list[dict[str, Any]]]] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class RowsPlan:
    """A relationship answered in the row lane: the `loader` of graph/loaders.py, read with the parent's `key`."""

    loader: str
    key: str


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


def compile_query(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
                  loader_kind: LoaderKind) -> QueryPlan:
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY or operation.directives:
        raise Unsupported("not a plain query")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if any(fragment.directives for fragment in fragments.values()):
        raise Unsupported("fragment directives")
    root_type = schema.query_type
    assert root_type is not None
    return QueryPlan(operation, fragments, root_type, _selection(root_type, [operation.selection_set], fragments, loader_kind))


def _selection(
    parent: GraphQLObjectType, selection_sets: list[SelectionSetNode], fragments: dict[str, FragmentDefinitionNode],
    loader_kind: LoaderKind,
) -> SelectionPlan:
    grouped: dict[str, list[FieldNode]] = {}
    for node in _collect(parent, selection_sets, fragments):
        grouped.setdefault(node.alias.value if node.alias else node.name.value, []).append(node)
    return SelectionPlan([_field(parent, key, nodes, fragments, loader_kind) for key, nodes in grouped.items()])


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
            condition: NamedTypeNode | None
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
    parent: GraphQLObjectType, key: str, nodes: list[FieldNode], fragments: dict[str, FragmentDefinitionNode],
    loader_kind: LoaderKind,
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
    strawberry_field = definition.extensions["strawberry-definition"]
    resolver = strawberry_field.base_resolver
    if strawberry_field.is_basic_field and getattr(definition.resolve, "_is_default", False):
        # Strawberry's "basic" field: no resolver, no extensions, just an attribute.
        # (Strawberry marks a field with permissions but no resolver as default too,
        # though its resolve runs the permissions: that one goes the wrapper's way.)
        plan.attribute = strawberry_field.python_name
    elif (resolver is not None and (permissions := _plain_permissions(strawberry_field)) is not None
          and resolver.root_parameter is None and resolver.parent_parameter is None):
        # Nothing but permission checks runs around this resolver, so checking
        # them and calling it is all Strawberry's wrapper would do.
        plan.method = resolver.wrapped_func
        plan.strawberry_field = strawberry_field
        plan.passes_source = resolver.self_parameter is not None
        plan.info_name = resolver.info_parameter.name if resolver.info_parameter else None
        plan.permissions = permissions
        plan.argument_variables = tuple(dict.fromkeys(_variables_in(node.arguments for node in nodes)))
        plan.alone = (plan.passes_source and plan.info_name is None and not permissions
                      and not strawberry_field.arguments)
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        plan.serialized = _serialized(named, wrappers)
        plan.finite_float = named.name == "Float"
        if isinstance(named, GraphQLEnumType):
            plan.enum_names = _enum_names(named)
        else:
            plan.plain = PASSED_THROUGH.get(named.name)
    elif isinstance(named, GraphQLObjectType):
        plan.children = _selection(named, [n.selection_set for n in nodes if n.selection_set], fragments, loader_kind)
        if plan.method is not None and resolver is not None and not any(node.arguments for node in nodes):
            plan.rows = _rows_plan(getattr(resolver.wrapped_func, "loads", None), named, plan.children, loader_kind)
    else:
        raise Unsupported("abstract types")
    return plan


def _plain_permissions(strawberry_field: StrawberryField) -> tuple[BasePermission, ...] | None:
    """The permissions around a field when they are all that runs around it and each answers at once;
    None when anything else does (other extensions, an async permission)."""
    extensions = strawberry_field.extensions
    if not extensions:
        return ()
    if len(extensions) != 1 or type(extensions[0]) is not PermissionExtension:
        return None
    permissions = tuple(extensions[0].permissions)
    if any(inspect.iscoroutinefunction(permission.has_permission) for permission in permissions):
        return None
    return permissions


def _variables_in(nodes: Any) -> Iterator[str]:
    """The names of the variables anywhere in these AST nodes (lists of them, argument and value nodes)."""
    for node in nodes:
        if isinstance(node, list | tuple):
            yield from _variables_in(node)
        elif isinstance(node, VariableNode):
            yield node.name.value
        elif isinstance(node, ArgumentNode):
            yield from _variables_in([node.value])
        elif isinstance(node, ListValueNode):
            yield from _variables_in(node.values)
        elif isinstance(node, ObjectValueNode):
            yield from _variables_in([item.value for item in node.fields])


def _rows_plan(loads: Any, named: GraphQLObjectType, children: SelectionPlan,
               loader_kind: LoaderKind) -> RowsPlan | None:
    """The row lane's plan of a `@loads` relationship, if its rows can answer all of `children`."""
    if loads is None:
        return None
    loader = loader_kind(loads.loader)
    shape: RowShape | None = getattr(loader, "shape", None)
    node = getattr(loader, "node", None)
    if shape is None or node is None or node.__strawberry_definition__.name != named.name:
        return None
    for child in children.fields:
        answerable = (
            child.typename is not None
            or (child.rows is not None and child.rows.key in shape.names)
            or (child.serialized is not None and child.wrappers in ("", NON_NULL) and (
                child.attribute in shape.names
                or child.alone))
        )
        if not answerable:
            return None
    return RowsPlan(loads.loader, loads.key)


def _enum_names(named: GraphQLEnumType) -> dict[Any, str]:
    wrapped = getattr(named, "wrapped_cls", None)
    return {member: name for name, definition in named.values.items()
            for member in (wrapped or ()) if member.value == definition.value}


def _fresh(value: Any) -> Any:
    """`value` itself when nothing can change it, else a shallow copy."""
    return value if value is None or isinstance(value, IMMUTABLE) else copy.copy(value)


class PlanCache:
    """The plans of recently seen documents, bounded in bytes like the parser and validation caches."""

    def __init__(self, max_bytes: int, loader_kind: LoaderKind) -> None:
        self._plans: DocumentCache[tuple[str, str | None], QueryPlan | None] = DocumentCache(max_bytes)
        self._loader_kind = loader_kind

    def get(self, schema: GraphQLSchema, query: str, document: DocumentNode,
            operation_name: str | None) -> QueryPlan | None:
        key = (query, operation_name)
        if key in self._plans:
            return self._plans[key]
        try:
            plan: QueryPlan | None = compile_query(schema, document, operation_name, self._loader_kind)
        except Unsupported:
            plan = None
        self._plans[key] = plan
        return plan


async def settle(awaitables: list[Any]) -> list[Any]:
    """What the awaitables return, as asyncio.gather would, without a Task for each coroutine.

    A level's resolvers are mostly coroutines that await one DataLoader future:
    a Task each (hundreds on a large page) cost more than the rest of their
    work. Instead each is stepped here up to the future it waits on, and
    resumed once that future is done (one may wait on another: for a lock, or
    a connection another holds), until all have ended. The first error is
    raised then (the caller leaves the operation to graphql-core): they are
    reads, and one left half-way would hold what it holds (a lock, a
    connection, a DataLoader's cached future) in a state the rerun could trip over.
    """
    if len(awaitables) == 1:
        # One resolver (a root field, most often): nothing to interleave.
        return [await awaitables[0]]
    results: list[Any] = [None] * len(awaitables)
    ready = [(index, awaitable.__await__()) for index, awaitable in enumerate(awaitables)]
    waiting: dict[asyncio.Future[Any], list[tuple[int, Any]]] = {}
    failure: Exception | None = None
    while ready or waiting:
        yielded: list[tuple[int, Any]] = []
        for index, step in ready:
            try:
                waits_on = step.send(None)
            except StopIteration as stop:
                results[index] = stop.value
                continue
            except Exception as error:  # noqa: BLE001 - raised once all have ended
                failure = failure or error
                continue
            if waits_on is None:
                yielded.append((index, step))  # a bare yield: resumed after one turn of the loop
            else:
                # Set by Future.__await__ for the Task that would have run the coroutine.
                waits_on._asyncio_future_blocking = False
                waiting.setdefault(waits_on, []).append((index, step))
        if not yielded and not waiting:
            break
        try:
            if yielded:
                await asyncio.sleep(0)
                finished = {future for future in waiting if future.done()}
            else:
                finished, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            failure = _deliver_cancellation([*yielded, *(item for items in waiting.values() for item in items)])
            if failure is None:
                raise
            break
        ready = [*yielded, *(item for future in finished for item in waiting.pop(future))]
    if failure is not None:
        raise failure
    return results


def _deliver_cancellation(steps: list[tuple[int, Any]]) -> Exception | None:
    """The error a cancellation meant for a stepped coroutine became, or None for a cancellation of the request.

    A coroutine stepped here runs in the request's task, so an asyncio.timeout
    inside it (SQLAlchemy's wait for a pooled connection) cancels that task when
    it expires: the cancellation arrives here, not where the timeout waits for
    it. Each suspended coroutine is handed it: the timeout's own turns it into
    its TimeoutError and takes the cancellation back. If one is still pending
    after that, it came from outside and goes on up.
    """
    failure: Exception | None = None
    for _, step in steps:
        try:
            step.throw(asyncio.CancelledError())
        except asyncio.CancelledError:
            continue
        except StopIteration:
            continue
        except Exception as error:  # noqa: BLE001 - the timeout's own error, reported as the request's
            failure = failure or error
            continue
        step.close()
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return None
    return failure or TimeoutError()


class _Run:
    """One execution of a plan: the request's variables, context and root value."""

    def __init__(self, plan: QueryPlan, strawberry_schema: Schema, variables: Any, context: Any, root: Any) -> None:
        self.plan = plan
        self.strawberry_schema = strawberry_schema
        self.schema = strawberry_schema._schema
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
        lanes: list[tuple[FieldPlan, list[tuple[Any, dict[str, Any]]]]] = []
        try:
            self._begin(selection, targets, below, waiting, lanes)
            # The lanes first: a resolver of this level using the same loader is then answered from their rows.
            await self._lanes(lanes)
        except BaseException:
            # Resolvers called but never to be awaited (a refusal, a failed lane) are closed before they start.
            for *_, awaitable in waiting:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
            raise
        if waiting:
            # Every resolver of this level starts before any is awaited, so each
            # DataLoader sees the whole level's keys in one batch.
            values = await settle([item[3] for item in waiting])
            for (plan, out, nested, _), value in zip(waiting, values, strict=True):
                out[plan.key] = self._complete(plan, 0, value, nested)
        for children, nested in below:
            if nested:
                await self._level(children, nested)

    def _begin(self, selection: SelectionPlan, targets: list[tuple[Any, dict[str, Any]]],
               below: list[tuple[SelectionPlan, list[tuple[Any, dict[str, Any]]]]],
               waiting: list[tuple[FieldPlan, dict[str, Any], list[tuple[Any, dict[str, Any]]], Any]],
               lanes: list[tuple[FieldPlan, list[tuple[Any, dict[str, Any]]]]]) -> None:
        """Answers what a level's fields can answer at once, and collects its row lanes, the resolvers
        it awaits and the level below."""
        for plan in selection.fields:
            if plan.rows is not None:
                key = plan.rows.key
                lanes.append((plan, [(getattr(source, key), out) for source, out in targets]))
                continue
            nested: list[tuple[Any, dict[str, Any]]] = []
            if plan.children is not None:
                below.append((plan.children, nested))
            if plan.typename is not None:
                for _, out in targets:
                    out[plan.key] = plan.typename
                continue
            if plan.attribute is not None and plan.serialized is not None and plan.wrappers in ("", NON_NULL):
                # The most common field of all: a scalar attribute.
                attribute = plan.attribute
                _write_leaves(plan, [out for _, out in targets], [getattr(source, attribute) for source, _ in targets])
                continue
            if plan.attribute is not None and plan.children is not None and plan.wrappers in ("", NON_NULL):
                # An object attribute (an edge's node): completed here rather than by a call per source.
                attribute, key, keys, required = plan.attribute, plan.key, plan.children.keys, bool(plan.wrappers)
                for source, out in targets:
                    value = getattr(source, attribute)
                    if value is None:
                        if required:
                            raise Unsupported("null in a non-null position is graphql-core's error to report")
                        out[key] = None
                    else:
                        out[key] = child = dict.fromkeys(keys)
                        nested.append((value, child))
                continue
            if plan.attribute is not None:
                attribute = plan.attribute
                for source, out in targets:
                    out[plan.key] = self._complete(plan, 0, getattr(source, attribute), nested)
                continue
            if plan.method is not None:
                method = plan.method
                arguments: dict[str, Any] = {}
                if not plan.alone:
                    arguments, info = self._arguments(plan)
                    for permission in plan.permissions:
                        for source, _ in targets:
                            if permission.has_permission(source, info, **arguments) is not True:
                                raise Unsupported("a refusal is graphql-core's to report")
                    if plan.info_name is not None:
                        arguments[plan.info_name] = info
                if plan.passes_source:
                    values = [method(source, **arguments) for source, _ in targets]
                else:
                    values = [method(**arguments) for _ in targets]
                if (plan.serialized is not None and plan.wrappers in ("", NON_NULL)
                        and not any(map(optimized_is_awaitable, values))):
                    _write_leaves(plan, [out for _, out in targets], values)
                    continue
            else:
                resolve = plan.definition.resolve
                args = get_argument_values(plan.definition, plan.nodes[0], self.variables)
                info = self._info(plan)
                values = [resolve(source, info, **args) for source, _ in targets]
            for (_, out), value in zip(targets, values, strict=True):
                if optimized_is_awaitable(value):
                    waiting.append((plan, out, nested, value))
                else:
                    out[plan.key] = self._complete(plan, 0, value, nested)

    async def _lanes(self, lanes: list[tuple[FieldPlan, list[tuple[Any, dict[str, Any]]]]]) -> None:
        if len(lanes) == 1:
            await self._rows(*lanes[0])
        elif lanes:
            async with asyncio.TaskGroup() as group:
                for plan, parents in lanes:
                    group.create_task(self._rows(plan, parents))

    async def _rows(self, plan: FieldPlan, parents: list[tuple[Any, dict[str, Any]]]) -> None:
        """Answers a row-lane relationship for every (key, response object) of a level.

        Every parent's rows are gathered into one list and turned into response objects by one call of
        the lane's builder (a dict display per row: a page has hundreds of rows and a handful of fields),
        then handed out to the parents, a slice each.
        """
        lane, children = plan.rows, plan.children
        assert lane is not None and children is not None
        keys = list(dict.fromkeys(key for key, _ in parents if key is not None))
        loader = getattr(self.context.loaders, lane.loader)
        names: tuple[str, ...] = ()
        found: dict[Any, Any] = {}
        if keys:
            names, found = await loader.rows_by_key(keys)
        rows: list[Any] = []
        # Each parent's response object and where its rows start (and, with `many`, end) in `rows`.
        spans: list[tuple[dict[str, Any], int, int]] = []
        key_field, nullable, many = plan.key, not plan.wrappers.startswith(NON_NULL), loader.many
        for key, parent in parents:
            value: Any = found.get(key)
            if many:
                start = len(rows)
                if value:
                    rows += value
                spans.append((parent, start, len(rows)))
            elif value is not None:
                spans.append((parent, len(rows), 0))
                rows.append(value)
            elif nullable:
                parent[key_field] = None
            else:
                raise Unsupported("null in a non-null position is graphql-core's error to report")
        outs = _lane_builder(plan, names)(rows) if rows else []
        if many:
            for parent, start, end in spans:
                parent[key_field] = outs[start:end]
        else:
            for parent, start, _ in spans:
                parent[key_field] = outs[start]
        column = {name: index for index, name in enumerate(names)}
        lanes: list[tuple[FieldPlan, list[tuple[Any, dict[str, Any]]]]] = []
        sources: list[Any] | None = None
        for child in children.fields:
            if child.rows is not None:
                if outs:
                    at = column[child.rows.key]
                    lanes.append((child, [(row[at], out) for row, out in zip(rows, outs, strict=True)]))
            elif child.method is not None:
                if sources is None:
                    sources = [loader.shape.build(loader.node, row, names) for row in rows]
                _write_leaves(child, outs, [child.method(source) for source in sources])
        await self._lanes(lanes)

    def _arguments(self, plan: FieldPlan) -> tuple[dict[str, Any], Any]:
        """The resolver's keyword arguments, as Strawberry would convert them (the same for every source),
        and the Strawberry Info it is given."""
        assert plan.strawberry_field is not None
        info = self.strawberry_schema.config.info_class(_raw_info=self._info(plan), _field=plan.strawberry_field)
        coerced = self.variables.coerced
        values = tuple(coerced.get(name, _ABSENT) for name in plan.argument_variables)
        try:
            known = plan.converted.get(values)
        except TypeError:  # a list or an object among them: converted every time
            values, known = None, None  # type: ignore[assignment]
        if known is not None:
            # Input objects are handed out as copies: no request sees another's.
            return {name: _fresh(value) for name, value in known.items()}, info
        raw = get_argument_values(plan.definition, plan.nodes[0], self.variables)
        arguments = convert_arguments(
            raw, plan.strawberry_field.arguments,
            scalar_registry=self.strawberry_schema.schema_converter.scalar_registry,
            config=self.strawberry_schema.config, info=info,
        )
        if values is not None and len(plan.converted) < CONVERTED_PER_PLAN:
            plan.converted[values] = {name: _fresh(value) for name, value in arguments.items()}
        return arguments, info

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
            if plan.children is not None and wrappers[depth + 1:] == NON_NULL:
                # A list of objects (a connection's edges): each completed here rather than by a call.
                keys, objects = plan.children.keys, []
                for item in value:
                    if item is None:
                        raise Unsupported("null in a non-null position is graphql-core's error to report")
                    objects.append(completed := dict.fromkeys(keys))
                    nested.append((item, completed))
                return objects
            return [self._complete(plan, depth + 1, item, nested) for item in value]
        if plan.serialized is not None:
            return plan.serialized(value)
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
            optimized_is_awaitable,  # type: ignore[arg-type]
            None,
            None,  # type: ignore[arg-type]
        )


def _write_leaves(plan: FieldPlan, outs: list[dict[str, Any]], values: list[Any]) -> None:
    """Writes one leaf field into each response object: a value of the class it serializes to, or an enum member,
    as it is; anything else through the field's serializer; a null where the schema allows one."""
    key, plain, enum_names, serialized = plan.key, plan.plain, plan.enum_names, plan.serialized
    assert serialized is not None
    if plain is not None:
        for out, value in zip(outs, values, strict=True):
            out[key] = value if value.__class__ is plain else serialized(value)
    elif enum_names is not None:
        name_of = enum_names.get
        for out, value in zip(outs, values, strict=True):
            name = name_of(value)
            out[key] = name if name is not None else serialized(value)
    else:
        for out, value in zip(outs, values, strict=True):
            out[key] = serialized(value)


def _serialized(named: GraphQLScalarType | GraphQLEnumType, wrappers: str) -> Callable[[Any], Any]:
    """A leaf field's serialization of any value: a null where the schema allows one (else graphql-core reports
    it), and anything else through the type's serializer (a value it cannot serialize is graphql-core's too)."""
    serialize, nullable = named.serialize, not wrappers

    def serialized(value: Any) -> Any:
        if value is not None:
            result = serialize(value)
            if result is None:
                raise Unsupported("unserializable leaf")
            return result
        if nullable:
            return None
        raise Unsupported("null in a non-null position is graphql-core's error to report")

    return serialized


# Most builders a lane keeps: one per set of columns its rows come with (one per document, in practice).
BUILDERS_PER_PLAN = 8


def _lane_builder(plan: FieldPlan, names: tuple[str, ...]) -> Callable[[list[Any]], list[dict[str, Any]]]:
    """A function turning rows (of these columns) into the lane's response objects, one dict display per row,
    compiled once per plan and set of columns.

    The display holds each field of the selection in order: a `__typename`, a leaf read from its column (a value
    of the class it serializes to, or an enum member, as it is; anything else through the field's serializer),
    and a null where the caller writes a relationship's or a resolver's answer afterwards. The source names
    nothing but generated identifiers and column positions: response keys, serializers and classes are
    bound in its namespace.
    """
    builder = plan.builders.get(names)
    if builder is not None:
        return builder
    assert plan.children is not None
    column = {name: index for index, name in enumerate(names)}
    namespace: dict[str, Any] = {}
    items = []
    for number, child in enumerate(plan.children.fields):
        key = f"k{number}"
        namespace[key] = child.key
        if child.typename is not None:
            namespace[f"t{number}"] = child.typename
            value = f"t{number}"
        elif child.attribute is not None:
            at, serialized = column[child.attribute], f"s{number}"
            namespace[serialized] = child.serialized
            if child.plain is not None:
                namespace[f"p{number}"] = child.plain
                value = f"(v if (v := row[{at}]).__class__ is p{number} else {serialized}(v))"
            elif child.finite_float:
                namespace["isfinite"] = math.isfinite
                value = f"(v if (v := row[{at}]).__class__ is float and isfinite(v) else {serialized}(v))"
            elif child.enum_names is not None:
                namespace[f"e{number}"] = child.enum_names.get
                value = f"(n if (n := e{number}(row[{at}])) is not None else {serialized}(row[{at}]))"
            else:
                value = f"{serialized}(row[{at}])"
        else:
            value = "None"
        items.append(f"{key}: {value}")
    source = f"def build(rows):\n    return [{{{', '.join(items)}}} for row in rows]\n"
    exec(compile(source, f"<row lane {plan.parent.name}.{plan.name}>", "exec"), namespace)
    builder = namespace["build"]
    if len(plan.builders) < BUILDERS_PER_PLAN:
        plan.builders[names] = builder
    return builder


async def run_plan(plan: QueryPlan, strawberry_schema: Schema, variables: Any, context: Any,
                   root: Any = None) -> dict[str, Any]:
    """The data of one run of `plan` with coerced `variables`; raises whatever stopped it."""
    return await _Run(plan, strawberry_schema, variables, context, root).data()


Remember = Callable[[str, str | None, QueryPlan, DocumentNode], None]


class CompiledExecution(SchemaExtension):
    """Runs supported queries from a cached plan; everything else goes to graphql-core.

    `remember` is told of each operation a plan answered (graph/engine/prepared.py).
    """

    def __init__(self, cache: PlanCache, remember: Remember | None = None) -> None:
        self.cache = cache
        self.remember = remember

    async def on_execute(self) -> Any:  # type: ignore[override]
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            schema = context.schema._schema
            plan = self.cache.get(schema, parsed_text(document), document, context.operation_name)
            if plan is not None:
                variables = get_variable_values(schema, plan.operation.variable_definitions or (),
                                                context.variables or {})
                if not isinstance(variables, list):
                    try:
                        data = await run_plan(plan, context.schema, variables, context.context, context.root_value)
                    except WAITED_TOO_LONG as error:
                        # Running it again through graphql-core would only wait as long again.
                        context.result = ExecutionResult(data=None, errors=[GraphQLError(
                            str(error), original_error=error)])
                    except Exception:  # any failure is graphql-core's to report
                        logger.debug("compiled execution fell back to graphql-core", exc_info=True)
                    else:
                        context.result = ExecutionResult(data=data, errors=None)
                        if self.remember is not None:
                            # As the client named it: the same text and name find this plan again.
                            self.remember(parsed_text(document), context._provided_operation_name, plan, document)
        yield

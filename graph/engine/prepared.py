"""Prepared operations: a query the full pipeline has run from its compiled plan, answered again from the
HTTP body straight to JSON.

Once Strawberry has parsed a document, validated it and run it from its plan
(graph/engine/compiled.py), everything the document itself decides is settled: it
parses, it passes every validation rule and limit (depth, aliases, tokens,
introspection, trusted documents, the arguments it writes), and it names one
query operation. What is left to decide for a later request of the same text
and operation name is what that request brings: its token and its variables
(coercion, input bounds, NUL characters, the cost budget). graph/http/view.py
answers such a POST after those checks alone, from the same plan, without
Strawberry's request machinery (its request adapter, context, extension
runner and result processing: most of the CPU time of a small query).

Anything else goes the full way: a request of another shape (a GET, a batch,
extensions, uploads, an Accept that asks for a stream), a check that fails, a
token that does not verify, an execution that fails. The full path alone
decides how refusals and errors look, and running a query again has no effect.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import DocumentNode
from graphql.execution.values import get_variable_values
from strawberry.schema import Schema

from graph.engine.compiled import QueryPlan, run_plan
from graph.engine.cost import CostCache
from graph.engine.document_cache import DocumentCache
from graph.engine.document_text import normalised
from graph.engine.input_limits import InputBounds
from graph.engine.selection import FieldsCache
from graph.engine.text_inputs import nul_in_variables

Key = tuple[str, str | None]
# What a prepared operation's request may hold; anything else goes the full way.
REQUEST_KEYS = frozenset({"query", "variables", "operationName"})
# A body this small whose checks passed is remembered whole: a dashboard that polls sends the same bytes
# each time, and its next request skips parsing, coercion and the checks (its token is still verified).
REMEMBERED_BODY_BYTES = 4096
# Variable values that coerce to values nobody can change, so one coercion may serve many requests.
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class Prepared:
    plan: QueryPlan
    document: DocumentNode

    @property
    def operation_name(self) -> str | None:
        """What the request log and metrics name the operation (None for an anonymous one)."""
        name = self.plan.operation.name
        return name.value if name else None


@dataclass
class Checks:
    """The per-request checks of the schema's extensions, as they are configured."""

    costs: CostCache
    max_cost: int
    max_page_size: int
    bounds: InputBounds
    selections: FieldsCache


@dataclass(frozen=True, slots=True)
class Checked:
    """A request body's prepared operation, the normal form of its query text and its coerced variables."""

    prepared: Prepared
    query: str
    variables: Any


class PreparedOperations:
    """The query operations the full pipeline has run from their plans, by query text and operation name."""

    def __init__(self, schema: Schema, checks: Checks, max_bytes: int) -> None:
        self.schema = schema
        self.checks = checks
        self._prepared: DocumentCache[Key, Prepared] = DocumentCache(max_bytes)
        self._bodies: DocumentCache[bytes, Checked] = DocumentCache(max_bytes)

    def remember(self, query: str, operation_name: str | None, plan: QueryPlan, document: DocumentNode) -> None:
        """Called once the full pipeline has run this operation from its plan."""
        key = (query, operation_name)
        if key not in self._prepared:
            self._prepared[key] = Prepared(plan, document)

    def get(self, text: str, operation_name: str | None) -> Prepared | None:
        """The prepared operation, by the normal form of its document's text (graph/engine/document_text.py)."""
        return self._prepared.get((text, operation_name))

    def request(self, body: bytes, parsed: Callable[[], Any]) -> Checked | None:
        """The prepared operation a JSON request body names, with its variables coerced and checked;
        None when the body is of another shape, names no prepared operation, or a check refuses it.
        `parsed()` gives the body's JSON, asked for only when the body is not one remembered."""
        checked = self._bodies.get(body)
        if checked is not None:
            return checked
        try:
            sent = parsed()
        except orjson.JSONDecodeError:
            return None
        if not isinstance(sent, dict) or not sent.keys() <= REQUEST_KEYS:
            return None
        query, variables, name = sent.get("query"), sent.get("variables"), sent.get("operationName")
        variables = {} if variables is None else variables
        if not (isinstance(query, str) and isinstance(variables, dict) and isinstance(name, str | None)):
            return None
        text = normalised(query)
        prepared = self.get(text, name)
        if prepared is None or (coerced := self.variables(prepared, text, variables)) is None:
            return None
        checked = Checked(prepared, text, coerced)
        if len(body) <= REMEMBERED_BODY_BYTES and all(isinstance(value, _SCALARS) for value in variables.values()):
            self._bodies[body] = checked
        return checked

    def variables(self, prepared: Prepared, query: str, variables: dict[str, Any]) -> Any:
        """The request's variables coerced (graphql-core's VariableValues), or None when any check refuses them
        (the full path says why)."""
        checks, schema = self.checks, self.schema._schema
        coerced = get_variable_values(schema, prepared.plan.operation.variable_definitions or (), variables)
        if isinstance(coerced, list) or checks.bounds.variables_reason(variables) or nul_in_variables(variables):
            return None
        cost = checks.costs.cost(schema, query, prepared.document, prepared.operation_name, coerced.coerced,
                                 checks.max_page_size)
        return None if cost > checks.max_cost else coerced

    async def data(self, prepared: Prepared, query: str, variables: Any, context: Any) -> dict[str, Any]:
        """The operation's data; raises when the plan cannot answer (the full path then runs it)."""
        context.loaders.selection.fields = self.checks.selections.get(self.schema._schema, query, prepared.document)
        return await run_plan(prepared.plan, self.schema, variables, context)

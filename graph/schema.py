"""The root types composed from the domains, and the schema with its protective extensions."""

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import Any

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    get_operation_ast,
    parse,
)
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType

from db.settings import Settings
from graph.access.trusted_documents import TrustedDocumentsOnly
from graph.analyses.mutations import AnalysisMutations
from graph.analyses.queries import FindingQueries
from graph.dashboard.queries import DashboardQueries
from graph.engine.compiled import CompiledExecution, PlanCache
from graph.engine.cost import CostBudget, CostCache
from graph.engine.document_cache import DocumentCache
from graph.engine.document_text import in_client_text, normalised, parsed_text, without_comments
from graph.engine.execution import EventsForgetTheirFields
from graph.engine.extension_runner import ExtensionsRunner
from graph.engine.input_limits import InputBounds, InputLimits
from graph.engine.prepared import Checks, PreparedOperations
from graph.engine.replica_reads import QueriesReadTheReplica
from graph.engine.selection import FieldsCache, SelectedColumns
from graph.engine.text_inputs import NoNulInLiterals, NoNulInVariables
from graph.errors import ErrorCodes, in_response_order, public_error
from graph.loaders import Loaders
from graph.node import NodeQueries
from graph.observability.operations import OperationFacts
from graph.observability.tracing import tracing_enabled, tracing_extensions
from graph.scalars import SCALARS
from graph.tasks.mutations import TaskMutations
from graph.tasks.queries import TaskQueries
from graph.tasks.subscriptions import TaskSubscriptions
from graph.users.mutations import UserMutations
from graph.users.queries import UserQueries


@strawberry.type
class Query(NodeQueries, UserQueries, TaskQueries, FindingQueries, DashboardQueries):
    pass


@strawberry.type
class Mutation(UserMutations, TaskMutations, AnalysisMutations):
    pass


@strawberry.type
class Subscription(TaskSubscriptions):
    pass


class ParsedDocuments:
    """Parsed documents by their text and parse options (bounded in bytes: graph/engine/document_cache.py)."""

    def __init__(self, max_bytes: int) -> None:
        self.cache: DocumentCache[tuple[str, Any], DocumentNode] = DocumentCache(max_bytes)

    def document(self, query: str, options: Mapping[str, Any]) -> DocumentNode | None:
        """The parsed document, or None when it does not parse (Strawberry's parse step then says why).

        Parsed in its normal form (graph/engine/document_text.py), and kept by it: documents that differ only in
        their layout and comments share one entry.
        """
        text = normalised(query)
        key = (text, tuple(sorted(options.items())))
        document = self.cache.get(key)
        if document is None:
            with suppress(GraphQLError):
                document = self.cache[key] = parse(text, **options)
        return document


class AuditGraphSchema(strawberry.Schema):
    # The operations HTTP requests may take past Strawberry's machinery (graph/engine/prepared.py); None when off.
    prepared: PreparedOperations | None = None
    parsed: ParsedDocuments
    # As MaxTokensLimiter sets them, so a document parsed ahead of execution is the one execution finds.
    parse_options: Mapping[str, Any]

    def operation_type(self, query: str | None, operation_name: str | None) -> OperationType | None:
        """The type of the operation a request names, read ahead of execution (an HTTP answer's media type
        depends on it); None when the document does not parse or name one: execution then says why."""
        document = None if query is None else self.parsed.document(query, self.parse_options)
        operation = None if document is None else get_operation_ast(document, operation_name)
        return None if operation is None else OperationType(operation.operation.value)

    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        # ErrorCodes already logged what was unexpected; expected errors are
        # the client's business, not the server log's.
        return None

    async def subscribe(self, query: str | None, variable_values: dict[str, Any] | None = None,
                        context_value: Any | None = None, root_value: Any | None = None,
                        operation_name: str | None = None,
                        operation_extensions: dict[str, Any] | None = None) -> Any:
        # The legacy graphql-ws protocol (subscriptions-transport-ws) carries queries and
        # mutations too, and Strawberry's handler for it calls subscribe for every operation.
        return await self.stream(query, variable_values, context_value, root_value, operation_name,
                                 operation_extensions, allowed_operation_types=tuple(OperationType))

    def create_extensions_runner(self, execution_context: Any, extensions: list[SchemaExtension]) -> Any:
        return ExtensionsRunner(execution_context=execution_context, extensions=extensions)

    async def _handle_execution_result(self, context: Any, result: Any, extensions_runner: Any,
                                       **options: Any) -> Any:
        # A subscription yields many results inside one operation, each past
        # ErrorCodes.on_operation: give every one of them codes and masking too.
        if getattr(result, "errors", None):
            result.errors = [public_error(error) for error in in_response_order(result.errors, result.data)]
            in_client_text(result.errors, context.query)
        return await super()._handle_execution_result(context, result, extensions_runner, **options)


class ParsedOnce(SchemaExtension):
    """A parser cache, except that a document that does not parse is left to Strawberry.

    Its own parse step turns the syntax error into a request error on every
    transport; raised from the cache, it escaped the WebSocket handlers (a
    bare `complete`, or no answer at all on the legacy protocol).
    """

    def __init__(self, parsed: ParsedDocuments) -> None:
        self.parsed = parsed

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            document = self.parsed.document(context.query, context.parse_options)
            if document is None:
                # Strawberry's parse reports the error, at the same locations, without walking the comments.
                context.query = without_comments(context.query)
            else:
                context.graphql_document = document
        yield


class LocatedInClientText(SchemaExtension):
    """Every error's locations in the text the client sent, not in the normal form ParsedOnce parsed.

    Before ErrorCodes in the list of extensions, so it runs after it: ErrorCodes makes the errors anew.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        errors = getattr(self.execution_context.result, "errors", None)
        if errors:
            in_client_text(errors, self.execution_context.query)


def repeated_fields_reason(document: DocumentNode, max_aliases: int, max_repeats: int) -> str | None:
    """Why a document repeats fields past the limits, or None. One pass over its nodes: validation compares
    every pair of fields with the same name in a selection set, so 4,900 of them cost a quarter of a second."""
    aliases = 0
    for node in _nodes(document):
        if isinstance(node, SelectionSetNode):
            keys = Counter((field.alias or field.name).value for field in node.selections
                           if isinstance(field, FieldNode))
            key, times = keys.most_common(1)[0] if keys else ("", 0)
            if times > max_repeats:
                return f"'{key}' is asked for {times} times in one selection (at most {max_repeats})"
        elif isinstance(node, FieldNode) and node.alias is not None:
            aliases += 1
            if aliases > max_aliases:
                return f"this document has more than {max_aliases} aliases"
    return None


def _nodes(document: DocumentNode) -> Iterator[Node]:
    stack: list[Node] = list(document.definitions)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, FieldNode | OperationDefinitionNode | FragmentDefinitionNode | InlineFragmentNode):
            if node.selection_set is not None:
                stack.append(node.selection_set)
        elif isinstance(node, SelectionSetNode):
            stack.extend(node.selections)


class LimitedValidationCache(SchemaExtension):
    """A validation cache (bounded in bytes: graph/engine/document_cache.py), after a refusal of documents with too many
    aliases or repeats of one field, which never reach validation at all."""

    def __init__(self, cache: DocumentCache[tuple[str, Any], list[GraphQLError]], max_aliases: int,
                 max_repeats: int) -> None:
        self.cache = cache
        self.max_aliases = max_aliases
        self.max_repeats = max_repeats

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None
        reason = repeated_fields_reason(document, self.max_aliases, self.max_repeats)
        if reason is not None:
            context.pre_execution_errors = [GraphQLError(reason, extensions={"code": "QUERY_TOO_COMPLEX"})]
            yield
            return
        rules = tuple(context.validation_rules)
        key = (parsed_text(document), rules)
        errors = self.cache.get(key)
        if errors is None:
            errors = self.cache[key] = validate_document(context.schema._schema, document, rules)
        context.pre_execution_errors = errors
        yield


class OperationNameRequired(SchemaExtension):
    """A document with several operations runs only the one named in operationName.

    Strawberry would otherwise fill in the first operation's name, running an
    operation the client never chose. Placed after the validation cache, so the
    error joins the cached validation errors (as a new list: the cache's is shared).
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # An InitVar of the dataclass: what the client sent, before Strawberry guesses.
        if context._provided_operation_name is None and document is not None:
            operations = sum(isinstance(node, OperationDefinitionNode) for node in document.definitions)
            if operations > 1:
                error = GraphQLError("This document has several operations: name the one to run in operationName.")
                context.pre_execution_errors = [*(context.pre_execution_errors or ()), error]
        yield


def too_complex(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """A limit rule whose refusals carry the code QUERY_TOO_COMPLEX (Strawberry's carry none)."""

    def with_code(error: GraphQLError) -> GraphQLError:
        error.extensions = {**(error.extensions or {}), "code": "QUERY_TOO_COMPLEX"}
        return error

    class Coded(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            # Strawberry's depth rule reports while it is built, straight to the context.
            report = context.report_error
            context.report_error = lambda error: report(with_code(error))  # type: ignore[method-assign]
            try:
                super().__init__(context)
            finally:
                context.report_error = report  # type: ignore[method-assign]

        def report_error(self, error: GraphQLError) -> None:
            super().report_error(with_code(error))

    Coded.__name__ = rule.__name__
    return Coded


def build_schema(settings: Settings | None = None, trusted: Mapping[str, str] | None = None) -> strawberry.Schema:
    """The schema; with `trusted` (an allow-list by sha256) it runs only those documents."""
    settings = settings or Settings(_env_file=None)
    cache_bytes = settings.document_cache_max_bytes
    plans = PlanCache(cache_bytes, Loaders.kind)
    selections = FieldsCache(cache_bytes)
    # The limit rules are built once: ValidationCache keys on the rule
    # classes, so rebuilding them per request would defeat the cache.
    limit_rules = [
        *(too_complex(rule)
          for rule in (*QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
                       *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules)),
        NoNulInLiterals,
    ]
    costs = CostCache(cache_bytes)
    literal_reasons: DocumentCache[str, str | None] = DocumentCache(cache_bytes)
    parsed = ParsedDocuments(cache_bytes)
    validated: DocumentCache[tuple[str, Any], list[GraphQLError]] = DocumentCache(cache_bytes)
    input_bounds = InputBounds(settings.max_string_length, settings.max_list_length, settings.max_input_depth)
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        # First, so it sees every error after ErrorCodes gave it a code.
        OperationFacts,
        LocatedInClientText,
        ErrorCodes,
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: ParsedOnce(parsed),
        lambda: AddValidationRules(limit_rules),
        lambda: LimitedValidationCache(validated, settings.max_aliases, settings.max_repeated_fields),
        OperationNameRequired,
        # Before the input and cost checks, which pass over a document already refused.
        *([lambda: TrustedDocumentsOnly(trusted)] if trusted is not None else []),
        lambda: InputLimits(input_bounds, literal_reasons),
        NoNulInVariables,
        lambda: CostBudget(costs, settings.max_query_cost, settings.max_page_size),
        lambda: SelectedColumns(selections),
    ]
    # Traced requests keep their parsing and validation spans: they always go the full way.
    if settings.replica_database_url is not None:
        extensions.append(QueriesReadTheReplica)
    prepared: PreparedOperations | None = None
    if settings.compiled_execution:
        extensions.append(lambda: CompiledExecution(plans, prepared.remember if prepared else None))
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    extensions.extend(tracing_extensions(settings))
    schema = AuditGraphSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,  # type: ignore[arg-type]
        execution_context_class=EventsForgetTheirFields,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS),  # type: ignore[arg-type]
    )
    schema.parsed, schema.parse_options = parsed, {"max_tokens": settings.max_query_tokens}
    if settings.compiled_execution and not tracing_enabled(settings):
        checks = Checks(costs, settings.max_query_cost, settings.max_page_size, input_bounds, selections)
        schema.prepared = prepared = PreparedOperations(schema, checks, cache_bytes)
    return schema


def export_sdl() -> str:
    # The schema is the same whatever the settings: none is read (a DATABASE_URL, good or bad, is no concern).
    return build_schema(Settings.model_construct()).as_str() + "\n"


if __name__ == "__main__":
    print(export_sdl(), end="")

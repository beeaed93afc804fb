"""Which fields of which types a request's document asks for, so loaders select only those columns."""

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLObjectType,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    is_abstract_type,
    visit,
)
from strawberry.extensions import SchemaExtension

from graph.engine.document_cache import DocumentCache
from graph.engine.document_text import parsed_text
from graph.engine.rows import RowShape

Fields = Mapping[str, frozenset[str]]
NOTHING: frozenset[str] = frozenset()


class Selection:
    """Shared by one request's loaders. Until the document is known, everything is loaded."""

    def __init__(self) -> None:
        self.fields: Fields | None = None

    def names(self, node_type: type, shape: RowShape) -> tuple[str, ...]:
        """The columns of `shape` that `node_type` objects need for this request."""
        if self.fields is None:
            return shape.names
        # A type the document never names is still loaded for resolvers that
        # read it (a finding count reads severities): its always-selected keys.
        type_name = node_type.__strawberry_definition__.name  # type: ignore[attr-defined]
        return shape.names_for(self.fields.get(type_name, NOTHING))

    def asks(self, node_type: type, field: str) -> bool:
        """Whether the document asks for `field` (its Python name) of `node_type` objects; False until it is known."""
        return self.asks_of(node_type.__strawberry_definition__.name, field)  # type: ignore[attr-defined]

    def asks_of(self, type_name: str, field: str) -> bool:
        """`asks`, for a type known by its GraphQL name (a generic's specialisation, such as TaskConnection)."""
        if self.fields is None:
            return False
        return field in self.fields.get(type_name, ())


class _FieldCollector(Visitor):
    def __init__(self, schema: GraphQLSchema, type_info: TypeInfo) -> None:
        super().__init__()
        self.schema = schema
        self.type_info = type_info
        self.fields: dict[str, set[str]] = {}

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent, definition = self.type_info.get_parent_type(), self.type_info.get_field_def()
        if parent is None or definition is None:
            return  # __typename, or a field validation has already refused
        strawberry_field = definition.extensions.get("strawberry-definition")
        name = strawberry_field.python_name if strawberry_field is not None else node.name.value
        for object_type in self._object_types(parent):
            self.fields.setdefault(object_type.name, set()).add(name)

    def _object_types(self, parent: Any) -> Iterator[GraphQLObjectType]:
        if is_abstract_type(parent):
            yield from self.schema.get_possible_types(parent)
        elif isinstance(parent, GraphQLObjectType):
            yield parent


def requested_fields(schema: GraphQLSchema, document: DocumentNode) -> Fields:
    """Per object type, the Python names of the fields the document selects anywhere (fragments included)."""
    type_info = TypeInfo(schema)
    collector = _FieldCollector(schema, type_info)
    visit(document, TypeInfoVisitor(type_info, collector))
    return {type_name: frozenset(names) for type_name, names in collector.fields.items()}


class FieldsCache:
    """The fields of recently seen documents, bounded like the parser and validation caches."""

    def __init__(self, max_bytes: int) -> None:
        self._fields: DocumentCache[str, Fields] = DocumentCache(max_bytes)

    def get(self, schema: GraphQLSchema, query: str, document: DocumentNode) -> Fields:
        fields = self._fields.get(query)
        if fields is None:
            fields = self._fields[query] = requested_fields(schema, document)
        return fields


class SelectedColumns(SchemaExtension):
    """Tells the request's loaders what its document asks for, before anything is resolved."""

    def __init__(self, cache: FieldsCache) -> None:
        self.cache = cache

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        loaders = getattr(context.context, "loaders", None)
        document = context.graphql_document
        if loaders is not None and document is not None:
            loaders.selection.fields = self.cache.get(context.schema._schema, parsed_text(document), document)
        yield

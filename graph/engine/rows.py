"""The columns a GraphQL type is built from, paired with the fields they fill."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

from cachetools import LRUCache
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.types.base import get_object_definition

T = TypeVar("T")
# Sets of fields whose columns a shape remembers.
NAMES_CACHE_SIZE = 256


class RowShape:
    """`RowShape.of(Task, models.Task, pk=models.Task.id, owner_id=models.Task.user_id, ...)`:
    `select(*shape)`, then `Type.from_row(row)`.

    A request selects only the columns its document asks for (`names_for`):
    decoding columns nobody reads was a large share of a page's cost. `always`
    are the keys resolvers and loaders rely on; `needs` says which columns a
    resolver field reads. A field the shape knows nothing of loads every column.
    """

    def __init__(self, *, always: Iterable[str] = ("pk",), needs: Mapping[str, Iterable[str]] | None = None,
                 **columns: Any) -> None:
        self.names = tuple(columns)
        self.columns = tuple(columns.values())
        self._column_of = columns
        self.always = frozenset(always)
        self.needs = {field: frozenset(names) for field, names in (needs or {}).items()}
        assert self.always <= set(self.names), "always-selected fields must be columns"
        assert all(names <= set(self.names) for names in self.needs.values()), "needs must name columns"
        # Asked for several times by every request (by each loader and page that reads the type), and the same
        # for every request of a document: one entry per set of fields asked for, as many as recent documents.
        self._names_for: LRUCache[frozenset[str], tuple[str, ...]] = LRUCache(NAMES_CACHE_SIZE)

    @classmethod
    def of(cls, node: type, model: type, *, always: Iterable[str] = ("pk",),
           needs: Mapping[str, Iterable[str]] | None = None, **columns: Any) -> Self:
        """The shape of a Strawberry type read from rows of an ORM model: `columns` names the type's private
        attributes (keys, raw JSON), and every field without a resolver is read from the model's column of
        the same name, so a row-backed field is declared once, on the type. A field with neither a resolver
        nor such a column is refused here, when its module is imported."""
        needs = needs or {}
        for field in get_object_definition(node, strict=True).fields:
            name = field.python_name
            if field.base_resolver is not None or name in needs or name in columns:
                continue
            column = getattr(model, name, None)
            if not isinstance(column, InstrumentedAttribute):
                raise TypeError(f"{node.__name__}.{name} has no resolver and {model.__name__} no column {name}: "
                                f"add the column (and its migration), or give the field a resolver")
            columns[name] = column
        return cls(always=always, needs=needs, **columns)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.columns)

    def names_for(self, fields: frozenset[str]) -> tuple[str, ...]:
        """The columns that serve these fields (Python names of the type's GraphQL fields), in shape order."""
        names = self._names_for.get(fields)
        if names is None:
            names = self._names_for[fields] = self._columns_serving(fields)
        return names

    def _columns_serving(self, fields: frozenset[str]) -> tuple[str, ...]:
        wanted = set(self.always)
        for field in fields:
            if field in self.needs:
                wanted |= self.needs[field]
            elif field in self._column_of:
                wanted.add(field)
            else:
                return self.names
        return tuple(name for name in self.names if name in wanted)

    def columns_for(self, names: Sequence[str]) -> tuple[Any, ...]:
        return tuple(self._column_of[name] for name in names)

    def build(self, cls: type[T], row: Sequence[Any], names: Sequence[str] | None = None) -> T:
        # Rows are read by position (reading a Row by attribute costs about half
        # a microsecond a column), and the dataclass __init__ is skipped: a field
        # that was not selected is then missing, so touching it fails loudly
        # instead of answering None. A row may carry more columns after these
        # (a page's sort keys).
        instance = object.__new__(cls)
        instance.__dict__.update(zip(self.names if names is None else names, row))
        return instance

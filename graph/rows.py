"""The columns a GraphQL type is built from, paired with the fields they fill."""

from collections.abc import Iterator, Sequence
from typing import Any


class RowShape:
    """`RowShape(pk=models.Task.id, owner_id=models.Task.user_id, ...)`: `select(*shape)`,
    then build with `Type(**shape.fields_of(row))`.

    Rows are read by position: reading a SQLAlchemy Row by attribute costs
    about half a microsecond a column, for every column of every row of a page.
    """

    def __init__(self, **columns: Any) -> None:
        self.names = tuple(columns)
        self.columns = tuple(columns.values())

    def fields_of(self, row: Sequence[Any]) -> dict[str, Any]:
        # A row may carry more columns after the shape's (a page's sort keys);
        # one with fewer fails in the type's constructor.
        return dict(zip(self.names, row))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.columns)

"""The base of every DataLoader: one short-lived connection and one SELECT per batch."""

import functools
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any, ClassVar, Generic, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import ColumnElement, Select, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute

from db.access import VIEWER_ID, Viewer
from db.engine import Database
from db.enums import Role
from graph.engine.rows import RowShape
from graph.engine.selection import Selection
from graph.engine.visible import Visible
from graph.observability.metrics import DATALOADER_BATCH_SIZE

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
F = TypeVar("F", bound=Callable[..., Any])

KEYS = "keys"
KeyMatch = Callable[[ColumnElement[Any] | InstrumentedAttribute[Any]], ColumnElement[bool]]

# Statements are built for the role of a viewer, not for one viewer: the
# viewer's id is a parameter of each execution.
_SCOPE_SHAPES = {role: Viewer(user_id=None, role=role) for role in Role}
# The statement of a viewer who sees every task: for a batch of keys that are
# all of parents the viewer was shown, nothing more to scope (graph/engine/visible.py).
_WITHIN_SHOWN = Role.ADMIN


def key_match(dialect: str) -> KeyMatch:
    """`column` is one of the batch's keys, as a single parameter.

    On PostgreSQL `= ANY($1)` with an array: one prepared statement serves every
    batch size, where an expanded IN would be a new statement for each size.
    """
    if dialect == "postgresql":
        return lambda column: column == any_(bindparam(KEYS, type_=ARRAY(column.type)))
    return lambda column: column.in_(bindparam(KEYS, expanding=True))


class BatchLoader(DataLoader, Generic[K, V]):  # type: ignore[type-arg]
    """Built per request, so its cache never outlives one viewer's request.

    A loader of `node` objects names its statement in `statement`, selecting
    the columns it is given (those of `shape` that the request's document
    needs); it is built once per scope shape, dialect and column set and run
    with the batch's keys and the viewer's id. Each row answers the key in
    its `key_column`: one row per key, or with `many` a list of them in the
    statement's order, which is by key first (each key's rows then come
    together, and are gathered a run at a time). A loader whose keys are the
    primary keys of `parent` rows, and whose rows a viewer sees exactly when
    they see the parent, names it: a batch of parents the request has shown
    needs no scope.
    """

    node: ClassVar[type]
    parent: ClassVar[type | None] = None
    shape: ClassVar[RowShape]
    statement: ClassVar["staticmethod[[Viewer, KeyMatch, tuple[Any, ...]], Select]"]
    key_column: ClassVar[str] = "pk"
    many: ClassVar[bool] = False
    batch_sizes: ClassVar[Any]

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        # A histogram of batch sizes per loader class.
        cls.batch_sizes = DATALOADER_BATCH_SIZE.labels(cls.__name__)
        if "batch_load_fn" in cls.__dict__ or "statement" in cls.__dict__:
            batch_load_fn = cls.__dict__.get("batch_load_fn", BatchLoader._nodes_by_key)
            cls.batch_load_fn = _counted(batch_load_fn)  # type: ignore[misc]

    def __init__(self, database: Database, viewer: Viewer, selection: Selection | None = None,
                 visible: Visible | None = None) -> None:
        super().__init__()
        self.database = database
        self.viewer = viewer
        self.selection = selection or Selection()
        # Kept only for a viewer whose statements carry a scope.
        self.visible = None if viewer.sees_every_task else visible
        # The row lane's last read (graph/engine/compiled.py): the keys asked, the column names, the rows by key.
        self._read: tuple[frozenset[Any], tuple[str, ...], dict[Any, Any]] | None = None
        # Objects the request already holds, by key (`remember`).
        self._known: dict[Any, Any] = {}

    def remember(self, nodes: Sequence[Any]) -> None:
        """Objects a scoped statement of the request read (a page of tasks): loads of their keys then need
        no statement, and they count as shown (graph/engine/visible.py).

        Cheaper than `prime` (no future per object) for the many objects a page holds and nobody loads again.
        """
        column = self.key_column
        self._known.update((getattr(node, column), node) for node in nodes)
        if self.visible is not None:
            self.visible.shown_keys(self.node, (node.pk for node in nodes))

    def remember_joined(self, keys: Sequence[Any], rows: Sequence[Any], start: int) -> None:
        """The rows of a scoped statement that joined this loader's columns (as `load_rows` selects them) from
        column `start` on, a row per key (a page of tasks with their analyses): loads of the keys then need no
        statement. A key whose joined primary key is null has no row. Only for a loader of one row per key."""
        assert not self.many, "a join of many rows per key repeats the rows it joins to"
        names = self.selection.names(self.node, self.shape)
        end, pk_at = start + len(names), start + names.index("pk")
        found = {key: row[start:end] for key, row in zip(keys, rows, strict=True) if row[pk_at] is not None}
        self._read = (frozenset(keys), names, found)
        if self.visible is not None:
            self.visible.shown(self.node, list(found.values()), names.index("pk"))

    def _held(self, keys: Iterable[Any]) -> dict[Any, Any] | None:
        """Every key's answer, when all are already at hand (remembered, or loaded before); else None."""
        answers: dict[Any, Any] = {}
        for key in keys:
            if key in self._known:
                answers[key] = self._known[key]
                continue
            future = self._cache.get(key)
            if future is None or not future.done() or future.cancelled() or future.exception() is not None:
                return None
            answers[key] = future.result()
        return answers

    async def fetch(self, statement: Select, parameters: dict[str, Any] | None = None) -> Sequence[Any]:
        # A connection per batch, not a shared session: aiodataloader runs
        # batches concurrently, and an AsyncSession cannot be shared.
        return await self.database.rows(statement, parameters)

    async def load_rows(self, keys: Sequence[K]) -> tuple[tuple[str, ...], Sequence[Any]]:
        """The rows matching these keys, and the names of their columns."""
        names = self.selection.names(self.node, self.shape)
        visible, scope = self.visible, self.viewer.role
        if visible is not None and self.parent is not None and visible.all_shown(self.parent, keys):
            scope = _WITHIN_SHOWN
        statement = _prepared(type(self), scope, self.database.dialect, names)  # type: ignore[arg-type]
        # Built once per shape (below), so the driver runs it compiled once.
        rows = await self.database.prepared_rows(statement, {KEYS: list(keys), VIEWER_ID: self.viewer.user_id})
        if visible is not None:
            visible.shown(self.node, rows, names.index("pk"))
        return names, rows

    async def load_nodes(self, keys: Sequence[K]) -> list[Any]:
        """The `node` objects of the rows matching these keys, in no particular order."""
        names, rows = await self.load_rows(keys)
        build, node = self.shape.build, self.node
        return [build(node, row, names) for row in rows]

    async def rows_by_key(self, keys: Sequence[K]) -> tuple[tuple[str, ...], dict[K, Any]]:
        """What `load_many(keys)` answers, as rows rather than objects and without the cache:
        each key's row (with `many`, its list of rows), and the names of their columns.

        Keys whose rows or objects the request already holds (a page's tasks, or the analyses read with them)
        are answered from them, without a statement; the answer may then hold other keys too.
        """
        read = self._read
        if read is not None and read[0].issuperset(keys):
            return read[1], read[2]
        held = self._held(keys)
        if held is not None:
            names = self.selection.names(self.node, self.shape)
            return names, {key: _as_rows(value, names, self.many) for key, value in held.items()}
        self.batch_sizes.observe(len(keys))
        names, rows = await self.load_rows(keys)
        at = names.index(self.key_column)
        grouped: dict[Any, Any]
        if not self.many:
            grouped = {row[at]: row for row in rows}
        else:
            grouped = {}
            # A run of one key's rows at a time; should an order not group them, a key seen before gets the
            # later run added to its list.
            for key, run in groupby(rows, itemgetter(at)):
                if key in grouped:
                    grouped[key].extend(run)
                else:
                    grouped[key] = list(run)
        self._read = (frozenset(keys), names, grouped)
        return names, grouped

    async def _nodes_by_key(self, keys: Sequence[K]) -> list[Any]:
        build, node_type, column = self.shape.build, self.node, self.key_column
        if self._read is not None and self._read[0].issuperset(keys):
            # Another field of the same objects read these rows in the row lane: no second statement.
            _, names, found = self._read
            rows = [row for key in keys for row in (found.get(key, ()) if self.many else (found.get(key),))
                    if row is not None]
            nodes = [build(node_type, row, names) for row in rows]
        elif self._known:
            unknown = [key for key in keys if key not in self._known]
            nodes = [self._known[key] for key in keys if key in self._known]
            if unknown:
                nodes += await self.load_nodes(unknown)
        else:
            nodes = await self.load_nodes(keys)
        if self.many:
            return many_per_key(keys, ((getattr(node, column), node) for node in nodes))
        return one_per_key(keys, {getattr(node, column): node for node in nodes})


@dataclass(frozen=True, slots=True)
class Loads:
    loader: str
    key: str


def loads(loader: str, *, key: str) -> Callable[[F], F]:
    """Marks a resolver that, given no arguments, answers `await info.context.loaders.<loader>.load(self.<key>)`.

    Compiled execution then answers the field for a whole level of objects
    from that loader's rows, without a resolver call, a future or an object
    per row (graph/engine/compiled.py); graphql-core calls the resolver as usual.
    """
    def mark(resolver: F) -> F:
        resolver.loads = Loads(loader, key)  # type: ignore[attr-defined]
        return resolver

    return mark


def _counted(batch_load_fn: Callable[..., Any]) -> Callable[..., Any]:
    """The batch function, with its batch's size recorded."""

    @functools.wraps(batch_load_fn)
    async def counted(self: Any, keys: Sequence[Any]) -> Any:
        self.batch_sizes.observe(len(keys))
        return await batch_load_fn(self, keys)

    return counted


def _as_rows(value: Any, names: tuple[str, ...], many: bool) -> Any:
    """A loader's answer (an object, a list of them or None) as the rows they were built from."""
    if value is None:
        return None
    if many:
        return [tuple(vars(item)[name] for name in names) for item in value]
    return tuple(vars(value)[name] for name in names)


@functools.lru_cache(maxsize=1024)
def _prepared(loader: type[BatchLoader[Any, Any]], role: Role, dialect: str, names: tuple[str, ...]) -> Select:
    return loader.statement(_SCOPE_SHAPES[role], key_match(dialect), loader.shape.columns_for(names))


def one_per_key(keys: Iterable[K], values: dict[K, V]) -> list[V | None]:
    return [values.get(key) for key in keys]


def many_per_key(keys: Iterable[K], rows: Iterable[tuple[K, V]]) -> list[list[V]]:
    grouped: dict[K, list[V]] = {}
    for key, value in rows:
        grouped.setdefault(key, []).append(value)
    return [grouped.get(key, []) for key in keys]

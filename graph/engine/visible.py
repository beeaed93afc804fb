"""The rows one request has shown its viewer, by node type: parents whose children need no scope join.

A USER sees an analysis, an artifact, a finding or a source exactly when they
see the task above it, and a task's owner never changes. So when every key of
a batch of children is the primary key of a parent row that a statement scoped
for this viewer returned earlier in the same request, the scope join in the
children's statement cannot remove a row: it is left out, and PostgreSQL
probes one index where it probed three (EXPLAIN at a page of 10: 0.14 ms of
execution for the findings against 0.33). Keys from anywhere else, a client's
id above all, leave the statement its scope.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any


class Visible:
    """Per request, beside its loaders; a key enters only with a row its viewer was shown."""

    def __init__(self) -> None:
        self._keys: dict[type, set[Any]] = {}
        # Rows not yet read for their keys: most are never asked about (a page's findings).
        self._unread: defaultdict[type, list[tuple[Sequence[Any], int]]] = defaultdict(list)

    def shown(self, node: type, rows: Sequence[Any], at: int) -> None:
        """`rows` (whose primary key is column `at`), read for this viewer with their scope, were shown."""
        if rows:
            self._unread[node].append((rows, at))

    def shown_keys(self, node: type, keys: Iterable[Any]) -> None:
        """The `node` rows with these primary keys, read for this viewer with their scope, were shown."""
        self._keys.setdefault(node, set()).update(keys)

    def all_shown(self, node: type, keys: Iterable[Any]) -> bool:
        """Whether every key is the primary key of a `node` row this request has shown."""
        known = self._keys.setdefault(node, set())
        for rows, at in self._unread.pop(node, ()):
            known.update(row[at] for row in rows)
        return known.issuperset(keys)

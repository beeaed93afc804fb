"""The caches of what is worked out from a document (its parse, validation, plan, cost, fields), bounded in bytes.

Bounded by the number of entries, 512 documents of 1 MiB each kept half a
gigabyte per cache; over WebSocket, where a message may be larger, far more.
Here each entry counts as its key's text (the document, and its operation
name or variables) times ENTRY_FACTOR, a generous estimate of what the parsed
document and everything made from it hold per byte of text. A document too
large for a share of the bound is not kept at all: it is worked out again
each time, which costs its sender, not the cache's other users.
"""

from typing import Any, TypeVar

from cachetools import LRUCache

K = TypeVar("K")
V = TypeVar("V")
# Bytes held per byte of document text, from the parsed tree and what is made from it (plans, costs, fields).
ENTRY_FACTOR = 10
# Per entry, whatever its text: the entry itself, its key and its value's objects.
ENTRY_OVERHEAD = 512
# No one entry may take more than this share of the cache.
LARGEST_SHARE = 8


def _text_bytes(key: Any) -> int:
    if isinstance(key, str | bytes):
        return len(key)
    if isinstance(key, tuple):
        return sum(_text_bytes(part) for part in key)
    return 0


class DocumentCache(LRUCache[K, V]):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(maxsize=max_bytes)
        self._largest = max_bytes // LARGEST_SHARE
        self._next_size = 0

    def __setitem__(self, key: K, value: V) -> None:  # type: ignore[override]
        size = ENTRY_OVERHEAD + ENTRY_FACTOR * _text_bytes(key)
        if size > self._largest:
            return
        self._next_size = size
        super().__setitem__(key, value)

    def getsizeof(self, value: V) -> int:  # type: ignore[override]
        return self._next_size

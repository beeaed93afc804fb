"""`auditgraph serve` that reports on itself, for `python -m bench.subscribers`.

On SIGUSR1 the server writes to the file OBSERVED_REPORT names a JSON object:
the garbage collector's pauses since the last report ([generation, wall
seconds, CPU seconds] each: on a busy machine the two differ) and, when OBSERVED_HEAP is set, the size of the Python heap tracemalloc
traces. Tracing makes every allocation slower: measure memory with it,
latency without it. OBSERVED_HEAP is the number of frames kept per allocation
(1 says where; more say how it got there).

On SIGUSR2, for `python -m bench.soak --observe`, it writes into the folder
OBSERVED_SNAPSHOTS names, in a folder named for its pid, the next numbered pair,
taken after a full collection (so that they show what is reachable): a
tracemalloc snapshot (N.snapshot, when tracing) and N.json: the count of live
objects the collector tracks, by type, the heap (traced bytes, allocated
blocks) before and after that collection, and the allocators' statistics.
"""

import ctypes
import gc
import json
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

if os.environ.get("OBSERVED_HEAP"):
    tracemalloc.start(int(os.environ["OBSERVED_HEAP"]))

# Imported once tracing is on, so that the app's heap is traced too.
from graph.cli.main import main

pauses: list[tuple[int, float, float]] = []
started = (0.0, 0.0)


def time_collections(phase: str, info: dict[str, Any]) -> None:
    global started
    if phase == "start":
        started = (time.perf_counter(), time.thread_time())
    else:
        pauses.append((info["generation"], time.perf_counter() - started[0], time.thread_time() - started[1]))


def report(_signal: int, _frame: FrameType | None) -> None:
    path = Path(os.environ["OBSERVED_REPORT"])
    partial = path.with_suffix(".partial")
    heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    partial.write_text(json.dumps({"heap": heap, "gc": pauses}))
    partial.replace(path)  # the benchmark never reads half a report
    pauses.clear()


MALLINFO_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                   "keepcost")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO_FIELDS]


def glibc_malloc() -> dict[str, int]:
    """glibc's view of its arenas: bytes from the system (arena; hblkhd for mmapped blocks), in use, free."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return {name: getattr(info, name) for name in MALLINFO_FIELDS}


def pymalloc_stats() -> str:
    # It writes to the C stream stderr, under Python's sys.stderr.
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return captured.read().decode(errors="replace")


def snapshot(_signal: int, _frame: FrameType | None) -> None:
    folder = Path(os.environ["OBSERVED_SNAPSHOTS"]) / str(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.glob("*.json"))) + 1
    heap_before = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    blocks_before = sys.getallocatedblocks()
    rss = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    # What is still reachable, not cyclic garbage the rare full collections have yet to free.
    gc.collect()
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(folder / f"{number}.snapshot"))
    types = Counter(type(thing).__qualname__ for thing in gc.get_objects())
    partial = folder / f"{number}.partial"
    partial.write_text(json.dumps({
        "rss": rss, "heap_before_collection": heap_before,
        "heap": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        "blocks_before_collection": blocks_before, "blocks": sys.getallocatedblocks(),
        "frozen": gc.get_freeze_count(), "types": types, "malloc": glibc_malloc(), "pymalloc": pymalloc_stats()}))
    partial.replace(folder / f"{number}.json")


if __name__ == "__main__":
    gc.callbacks.append(time_collections)
    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGUSR2, snapshot)
    sys.exit(main())

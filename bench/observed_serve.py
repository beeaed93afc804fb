"""`auditgraph serve` that reports on itself, for `python -m bench.subscribers`.

On SIGUSR1 the server writes to the file OBSERVED_REPORT names a JSON object:
the garbage collector's pauses since the last report ([generation, wall
seconds, CPU seconds] each: on a busy machine the two differ) and, when OBSERVED_HEAP is set, the size of the Python heap tracemalloc
traces. Tracing makes every allocation slower: measure memory with it,
latency without it.
"""

import gc
import json
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

if os.environ.get("OBSERVED_HEAP"):
    tracemalloc.start()

# Imported once tracing is on, so that the app's heap is traced too.
from graph.cli import main

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


if __name__ == "__main__":
    gc.callbacks.append(time_collections)
    signal.signal(signal.SIGUSR1, report)
    sys.exit(main())

"""`auditgraph serve` with tracemalloc on, for `python -m bench.subscribers --heap`.

On SIGUSR1 the server writes the size of the Python heap tracemalloc traces,
in bytes, to the file HEAP_REPORT names. Tracing makes every allocation
slower: measure memory with it, latency without it.
"""

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

tracemalloc.start()

from graph.cli import main  # noqa: E402 - imported once tracing is on, so that the app's heap is traced too


def report(_signal: int, _frame: FrameType | None) -> None:
    path = Path(os.environ["HEAP_REPORT"])
    partial = path.with_suffix(".partial")
    partial.write_text(str(tracemalloc.get_traced_memory()[0]))
    partial.replace(path)  # the benchmark never reads half a number


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, report)
    sys.exit(main())

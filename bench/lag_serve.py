"""`auditgraph serve` that measures its own event loop's stalls, for `python -m bench.writes`.

A task on the serving loop sleeps 2 ms again and again; whatever it oversleeps
by is a stall: the loop was busy (or waiting for the interpreter, or for a CPU)
and served no one. On SIGUSR1 the server writes to the file LAG_REPORT names a
JSON object, the longest stall since the last report, `[wall seconds, CPU
seconds the loop's thread used in it]` (on a busy machine the two differ: the
rest was waiting), and starts over.
"""

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from graph.cli.main import main
from graph.live import housekeeping

INTERVAL = 0.002
longest = (0.0, 0.0)


async def watch() -> None:
    global longest
    while True:
        wall, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(INTERVAL)
        stall = time.perf_counter() - wall - INTERVAL
        if stall > longest[0]:
            longest = (stall, time.thread_time() - cpu)


def report(_signal: int, _frame: FrameType | None) -> None:
    global longest
    path = Path(os.environ["LAG_REPORT"])
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(longest))
    partial.replace(path)
    longest = (0.0, 0.0)


_start = housekeeping.Housekeeping.start
_watching: set[asyncio.Task[None]] = set()


async def start_watching_too(self: housekeeping.Housekeeping) -> None:
    # The app's own background work starts on the serving loop: so does the watch.
    await _start(self)
    _watching.add(asyncio.create_task(watch()))


if __name__ == "__main__":
    housekeeping.Housekeeping.start = start_watching_too  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, report)
    sys.exit(main())

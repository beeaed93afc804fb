"""Pure-Python work too long for the event loop (checking and encoding thousands of findings), one piece at a time.

Such work holds the interpreter's lock throughout, so threads running it in
parallel finish no sooner; they only make the event loop wait longer for the
lock between its own steps. With six large analyses checked at once on the
default executor, a reader's request waited behind all six for every step
it took. One thread takes the pieces in turn, and the loop shares the lock with
that one thread alone. (File and password work, which releases the lock, stays
on the default executor.)

While a piece runs, the interpreter lets a thread that waits for the lock in after
1 ms instead of its usual 5: every SQLite statement is a hand-off to a thread of
its own and back, and at 5 ms a read of a dozen hand-offs took 100-200 ms beside
an analysis being checked. Only then: at 1 ms throughout, the switching cost the
SQLite default a sixth of its throughput under load.
"""

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Shared by every event loop of the process, as the default executor is: a thread, not state.
_ONE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auditgraph-python-work")


SHORT_TURNS_SECONDS = 0.001


async def off_the_loop(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in the one thread for pure-Python work."""
    return await asyncio.get_running_loop().run_in_executor(_ONE_THREAD, partial(_in_short_turns, function, *args,
                                                                                 **kwargs))


def _in_short_turns(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    # The one thread runs one piece at a time, so the interval it restores is never another piece's.
    usual = sys.getswitchinterval()
    sys.setswitchinterval(SHORT_TURNS_SECONDS)
    try:
        return function(*args, **kwargs)
    finally:
        sys.setswitchinterval(usual)

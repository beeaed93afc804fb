"""Pure-Python work too long for the event loop (checking and encoding thousands of findings), one piece at a time.

Such work holds the interpreter's lock throughout, so threads running it in
parallel finish no sooner; they only make the event loop wait longer for the
lock between its own steps. With six large analyses checked at once on the
default executor, a reader's request waited behind all six for every step
it took. One thread takes the pieces in turn, and the loop shares the lock with
that one thread alone. (File and password work, which releases the lock, stays
on the default executor.)
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Shared by every event loop of the process, as the default executor is: a thread, not state.
_ONE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auditgraph-python-work")


async def off_the_loop(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in the one thread for pure-Python work."""
    return await asyncio.get_running_loop().run_in_executor(_ONE_THREAD, partial(function, *args, **kwargs))

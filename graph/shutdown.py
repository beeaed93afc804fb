"""Learning that the process is asked to stop, so live streams end at once instead of holding the shutdown open.

On SIGTERM (or Ctrl-C) uvicorn stops accepting, closes every WebSocket with
1012 (service restart: graphql-ws clients reconnect, to another worker), and
then waits for HTTP responses in flight, up to SHUTDOWN_TIMEOUT_SECONDS (`serve`
passes it as uvicorn's timeout_graceful_shutdown). A Server-Sent Events stream
is such a response and would last until that bound; so each stream watches
`stopping` and ends as soon as it is set, without a `complete` event, which is
what makes an EventSource or a graphql-sse client reconnect (with
Last-Event-ID: it misses nothing).

uvicorn tells an application nothing before its lifespan shutdown, which comes
after that wait; the signal itself is the one place to learn it. The handler
installed here sets `stopping` and hands the signal on to whoever handled it
before (uvicorn), and the lifespan puts that handler back when it ends.
"""

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Shutdown:
    def __init__(self) -> None:
        self.stopping = asyncio.Event()

    @contextmanager
    def on_stop_signals(self) -> Iterator[None]:
        # Python runs signal handlers in the main thread only; elsewhere (a server in a thread) there is none to chain.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {number: signal.getsignal(number) for number in STOP_SIGNALS}

        def handle(number: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.stopping.set)
            handed_on = previous[number]
            if callable(handed_on):
                handed_on(number, frame)
            elif handed_on == signal.SIG_DFL:
                signal.signal(number, signal.SIG_DFL)
                signal.raise_signal(number)

        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, handle)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

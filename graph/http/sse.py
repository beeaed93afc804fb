"""Subscriptions over Server-Sent Events (GraphQL over SSE, distinct connections mode), resumable.

Strawberry speaks the protocol; this adds the SSE `id` of each event: the
position the subscription reports for the event it just yielded. A browser's
EventSource sends the last one back as `Last-Event-ID` when it reconnects, and
the subscription resumes right after it, as with `afterSequence`.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import suppress
from typing import Any

from strawberry.http.streaming import AsyncTextStream, SSETransport, merge_stream_with_heartbeat

from graph.http.negotiation import accepts_stream


class NegotiatedSSETransport(SSETransport):
    """Strawberry's, for a client whose Accept takes a stream at a q-value above 0 (`text/event-stream;q=0`
    refuses one). Whether a query or mutation then streams too is the view's choice (answer_protocol)."""

    def accepts(self, accept: str) -> bool:
        return accepts_stream(accept)


def with_event_id(encoded_event: str, event_id: str | None) -> str:
    # Field order inside an SSE event does not matter; the id line comes first.
    return encoded_event if event_id is None else f"id: {event_id}\r\n{encoded_event}"


async def until_stopping(results: AsyncGenerator[Any, None], stopping: asyncio.Event) -> AsyncIterator[Any]:
    """The results until the process begins to stop; then the subscription is closed and nothing more comes."""
    stop = asyncio.ensure_future(stopping.wait())
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(results))
            await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                return
            try:
                value = step.result()
            except StopAsyncIteration:
                return
            step = None
            yield value
    finally:
        stop.cancel()
        # The subscription is closed only once no step of it runs (the client may have left mid-step).
        if step is not None and not step.done():
            step.cancel()
            with suppress(asyncio.CancelledError, StopAsyncIteration):
                await step
        await results.aclose()


def resumable_stream(view: Any, request: Any, result: Any, transport: SSETransport,
                     take_position: Callable[[], str | None], stopping: asyncio.Event) -> AsyncTextStream:
    """Strawberry's SSE stream, each `next` event carrying the position `take_position()` names.

    The subscription's generator stays suspended at its `yield` until the
    result built from that value is encoded, so the position taken is the one
    of the event this result shows. When the process begins to stop
    (graph/http/shutdown.py) the stream ends without `complete`, so the client reconnects.
    """

    async def stream() -> AsyncGenerator[str, None]:
        pending: list[Any] = []
        async for value in until_stopping(result, stopping):
            response, pending = await view._process_stream_result(request, value, pending)
            yield with_event_id(transport.encode_next(response, view.encode_json_string), take_position())
        if not stopping.is_set():
            yield transport.encode_complete()

    return merge_stream_with_heartbeat(
        stream,
        lambda: transport.heartbeat_message(view.encode_json_string),
        interval=transport.heartbeat_interval,
        send_initial_heartbeat=transport.send_initial_heartbeat,
    )

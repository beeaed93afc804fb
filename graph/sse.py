"""Subscriptions over Server-Sent Events (GraphQL over SSE, distinct connections mode), resumable.

Strawberry speaks the protocol; this adds the SSE `id` of each event: the
position the subscription reports for the event it just yielded. A browser's
EventSource sends the last one back as `Last-Event-ID` when it reconnects, and
the subscription resumes right after it, as with `afterSequence`.
"""

from collections.abc import AsyncGenerator, Callable
from typing import Any

from strawberry.http.streaming import AsyncTextStream, SSETransport, merge_stream_with_heartbeat


def with_event_id(encoded_event: str, event_id: str | None) -> str:
    # Field order inside an SSE event does not matter; the id line comes first.
    return encoded_event if event_id is None else f"id: {event_id}\r\n{encoded_event}"


def resumable_stream(view: Any, request: Any, result: Any, transport: SSETransport,
                     take_position: Callable[[], str | None]) -> AsyncTextStream:
    """Strawberry's SSE stream, each `next` event carrying the position `take_position()` names.

    The subscription's generator stays suspended at its `yield` until the
    result built from that value is encoded, so the position taken is the one
    of the event this result shows.
    """

    async def stream() -> AsyncGenerator[str, None]:
        pending: list[Any] = []
        async for value in result:
            response, pending = await view._process_stream_result(request, value, pending)
            yield with_event_id(transport.encode_next(response, view.encode_json_string), take_position())
        yield transport.encode_complete()

    return merge_stream_with_heartbeat(
        stream,
        lambda: transport.heartbeat_message(view.encode_json_string),
        interval=transport.heartbeat_interval,
        send_initial_heartbeat=transport.send_initial_heartbeat,
    )

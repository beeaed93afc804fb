"""A WebSocket message is bounded like an HTTP body (MAX_REQUEST_BYTES): a larger one closes the socket with
1009 (message too big), and the server goes on serving."""

import orjson
import pytest

from db.settings import Settings
from tests.live import PROTOCOLS, Refused, bearer, graphql_socket, live_server
from tests.seeding import account

LIMIT = 20_000


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_websocket_message_over_the_request_limit_closes_the_socket(settings: Settings, protocol: str
                                                                             ) -> None:
    async with live_server(settings.model_copy(update={"max_request_bytes": LIMIT})) as server:
        _, token = await account(server)
        padded = "# " + "x" * LIMIT + "\nsubscription { myTaskEvents { sequence } }"
        kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
        async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
            await socket.connection.send(orjson.dumps({"id": "1", "type": kind, "payload": {"query": padded}}).decode())
            with pytest.raises(Refused) as closed:
                await socket.receive()
        async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
            await socket.subscribe("subscription { myTaskEvents { sequence } }")
            assert await socket.silent()

    assert closed.value.code == 1009

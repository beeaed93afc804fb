"""Live streams end when access ends (deactivation, a role change, token expiry), on every worker;
and live connections and subscriptions are bounded."""

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.enums import EventType, Role
from db.events import append_event
from db.models import User
from db.settings import Settings
from graph.access.tokens import issue_token
from graph.relay import to_global_id
from tests.conftest import make_settings
from tests.factories import make_task, make_user
from tests.live import PROTOCOLS, TRANSPORT_WS, LiveServer, Refused, bearer, graphql_socket, live_server

TASK_EVENTS = "subscription($taskId: ID!) { taskEvents(taskId: $taskId) { sequence type } }"
SET_ACTIVE = "mutation($id: ID!, $active: Boolean!) { setUserActive(userId: $id, active: $active) { isActive } }"
SET_ROLE = "mutation($id: ID!, $role: Role!) { setUserRole(userId: $id, role: $role) { role } }"


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param



async def user_with_task(server: LiveServer, role: Role = Role.USER,
                         settings: Settings | None = None) -> tuple[User, str, uuid.UUID]:
    async with server.app.state.database.transaction() as session:
        user = await make_user(session, role=role)
        task = await make_task(session, user)
    return user, issue_token(user.id, settings or server.app.state.settings)[0], task.id


async def admin_call(server: LiveServer, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with server.app.state.database.transaction() as session:
        admin = await make_user(session, role=Role.ADMIN)
    token = issue_token(admin.id, server.app.state.settings)[0]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/graphql",
                                     json={"query": query, "variables": variables},
                                     headers={"authorization": f"Bearer {token}"})
    body = response.json()
    assert "errors" not in body, body
    return body


async def ended(socket: Any) -> dict[str, Any]:
    """The error a stream ended with: an error result, then `complete`."""
    payload = await socket.next()
    assert "errors" in payload, payload
    assert (await socket.receive())["type"] == "complete"
    return payload["errors"][0]


@pytest.mark.parametrize(("change", "variables"), [
    (SET_ACTIVE, {"active": False}),
    (SET_ROLE, {"role": "WORKER"}),
])
async def test_a_deactivation_or_role_change_on_another_worker_ends_open_subscriptions(
    workers: tuple[LiveServer, LiveServer], protocol: str, change: str, variables: dict[str, Any]
) -> None:
    # given: a user subscribed on the first worker
    serving, other = workers
    user, token, task_id = await user_with_task(serving)
    async with graphql_socket(serving.ws_url, protocol, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id)})
        await asyncio.sleep(0.2)  # the subscription is reading the log; it ends either way

        # when: an ADMIN changes the account through the other worker
        await admin_call(other, change, {"id": to_global_id("User", user.id), **variables})

        # then
        error = await ended(socket)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert await socket.silent()


async def test_an_access_change_that_changes_nothing_leaves_the_stream_open(
    workers: tuple[LiveServer, LiveServer],
) -> None:
    serving, other = workers
    user, token, task_id = await user_with_task(serving)
    async with graphql_socket(serving.ws_url, TRANSPORT_WS, bearer(token)) as socket:
        await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id)})
        await asyncio.sleep(0.2)

        # when: the account is "activated" again, and then an event is written
        await admin_call(other, SET_ACTIVE, {"id": to_global_id("User", user.id), "active": True})
        async with serving.app.state.database.transaction() as session:
            await append_event(session, task_id, EventType.PROGRESS)

        # then
        payload = await socket.next()
        assert payload["data"]["taskEvents"] == {"sequence": 2, "type": "PROGRESS"}


async def test_a_subscription_ends_when_its_token_expires(database_url: str, data_dir: Path, protocol: str) -> None:
    async with live_server(make_settings(database_url, data_dir, token_ttl_seconds=1)) as server:
        _, token, task_id = await user_with_task(server)
        async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
            await socket.subscribe(TASK_EVENTS, {"taskId": to_global_id("Task", task_id)})

            error = await ended(socket)

    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "expired" in error["message"]


async def test_a_user_holds_at_most_the_configured_live_connections(database_url: str, data_dir: Path) -> None:
    async with live_server(make_settings(database_url, data_dir, max_connections_per_user=1)) as server:
        _, token, _ = await user_with_task(server)
        async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)):
            # when: a second connection while the first is open
            with pytest.raises(Refused) as refused:
                async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)):
                    pass
        # then: refused with a code; once the first has closed, a new one is admitted
        assert refused.value.code == 4403
        async with graphql_socket(server.ws_url, TRANSPORT_WS, bearer(token)) as again:
            assert again is not None


async def test_the_legacy_protocol_names_the_connection_limit_with_a_code(database_url: str, data_dir: Path) -> None:
    async with live_server(make_settings(database_url, data_dir, max_connections_per_user=1)) as server:
        _, token, _ = await user_with_task(server)
        async with graphql_socket(server.ws_url, "graphql-ws", bearer(token)):
            with pytest.raises(Refused) as refused:
                async with graphql_socket(server.ws_url, "graphql-ws", bearer(token)):
                    pass

    assert refused.value.payload["code"] == "RATE_LIMITED"


async def test_a_connection_holds_at_most_the_configured_subscriptions(
    database_url: str, data_dir: Path, protocol: str
) -> None:
    async with live_server(make_settings(database_url, data_dir, max_subscriptions_per_connection=1)) as server:
        _, token, task_id = await user_with_task(server)
        variables = {"taskId": to_global_id("Task", task_id)}
        async with graphql_socket(server.ws_url, protocol, bearer(token)) as socket:
            await socket.subscribe(TASK_EVENTS, variables)
            await asyncio.sleep(0.2)

            # when
            await socket.subscribe(TASK_EVENTS, variables)
            error = await ended(socket)

            # then: the second is refused with a code; the first still delivers
            assert error["extensions"]["code"] == "RATE_LIMITED"
            async with server.app.state.database.transaction() as session:
                await append_event(session, task_id, EventType.PROGRESS)
            assert (await socket.next())["data"]["taskEvents"]["sequence"] == 2

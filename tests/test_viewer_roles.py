"""A worker remembers a viewer's role between requests only while it hears every access change,
and forgets it the moment one is made, on this worker or another."""

import asyncio
from typing import Any

import httpx

from db.enums import Role
from db.models import User
from graph.access.tokens import issue_token
from graph.relay import to_global_id
from tests.factories import make_user
from tests.live import LiveServer
from tests.sql_counter import count_statements

ME = "{ me { role } }"
SET_ACTIVE = "mutation($id: ID!, $active: Boolean!) { setUserActive(userId: $id, active: $active) { isActive } }"
SET_ROLE = "mutation($id: ID!, $role: Role!) { setUserRole(userId: $id, role: $role) { role } }"
# A notice from another worker arrives in milliseconds; this only bounds a broken test.
DEADLINE_SECONDS = 10.0



async def account(server: LiveServer, role: Role = Role.USER) -> tuple[User, str]:
    async with server.app.state.database.transaction() as session:
        user = await make_user(session, role=role)
    return user, issue_token(user.id, server.app.state.settings)[0]


async def post(server: LiveServer, query: str, token: str, variables: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/graphql",
                                     json={"query": query, "variables": variables or {}},
                                     headers={"authorization": f"Bearer {token}"})
    return response.json()


async def role_reads(server: LiveServer, token: str) -> int:
    with count_statements(server.app.state.database) as statements:
        assert "errors" not in await post(server, ME, token)
    return sum("users.is_active IS" in statement or "users.is_active =" in statement for statement in statements)


async def until(condition: Any) -> Any:
    """Polls `condition()` until it returns something true, within the deadline."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while not (outcome := await condition()):
        assert asyncio.get_running_loop().time() < deadline, "the change never reached the worker"
        await asyncio.sleep(0.02)
    return outcome


async def test_on_postgresql_a_worker_reads_a_viewers_role_once_and_on_sqlite_every_time(
    workers: tuple[LiveServer, LiveServer], backend: str
) -> None:
    # given
    serving, _ = workers
    _, token = await account(serving)

    # when
    first, second, third = [await role_reads(serving, token) for _ in range(3)]

    # then: the embedded default cannot hear a change made by another process (the CLI)
    assert first == 1
    assert (second, third) == ((0, 0) if backend == "postgresql" else (1, 1))


async def remembered(workers: tuple[LiveServer, LiveServer]) -> tuple[LiveServer, LiveServer, User, str, str]:
    """A user whose role the first worker remembers, and an ADMIN's token for the other: (serving,
    other, user, the user's token, the admin's token)."""
    serving, other = workers
    user, token = await account(serving)
    _, admin = await account(other, Role.ADMIN)
    await role_reads(serving, token)
    return serving, other, user, token, admin


async def test_a_deactivation_on_another_worker_refuses_the_next_request_here(
    workers: tuple[LiveServer, LiveServer],
) -> None:
    # given
    serving, other, user, token, admin = await remembered(workers)

    # when
    changed = await post(other, SET_ACTIVE, admin, {"id": to_global_id("User", user.id), "active": False})

    # then
    assert changed["data"]["setUserActive"] == {"isActive": False}
    refused = await until(lambda: _refused(serving, token))
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def _refused(server: LiveServer, token: str) -> Any:
    body = await post(server, ME, token)
    return body if "errors" in body else None


async def test_a_role_change_on_this_worker_ends_the_session_for_its_very_next_request(
    workers: tuple[LiveServer, LiveServer],
) -> None:
    # given
    serving, _ = workers
    user, token = await account(serving)
    _, admin = await account(serving, Role.ADMIN)
    assert (await post(serving, ME, token))["data"]["me"]["role"] == "USER"

    # when
    await post(serving, SET_ROLE, admin, {"id": to_global_id("User", user.id), "role": "WORKER"})

    # then: no waiting for the NOTIFY to come back; a token issued now carries the new role
    assert (await post(serving, ME, token))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    fresh = issue_token(user.id, serving.app.state.settings, generation=1)[0]
    assert (await post(serving, ME, fresh))["data"]["me"]["role"] == "WORKER"


async def test_a_role_change_on_another_worker_reaches_this_one(
    workers: tuple[LiveServer, LiveServer],
) -> None:
    # given
    serving, other, user, token, admin = await remembered(workers)

    # when
    await post(other, SET_ROLE, admin, {"id": to_global_id("User", user.id), "role": "ADMIN"})

    # then
    refused = await until(lambda: _refused(serving, token))
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    fresh = issue_token(user.id, serving.app.state.settings, generation=1)[0]
    assert (await post(serving, ME, fresh))["data"]["me"]["role"] == "ADMIN"


async def test_a_role_is_read_every_time_while_the_listener_is_deaf(
    workers: tuple[LiveServer, LiveServer], backend: str
) -> None:
    # given: the user's role is remembered, then the listener loses its connection
    serving, _ = workers
    _, token = await account(serving)
    await role_reads(serving, token)
    broker = serving.app.state.broker
    if backend == "postgresql":
        broker._connected.clear()

    # when
    reads = [await role_reads(serving, token) for _ in range(2)]

    # then
    assert reads == [1, 1]

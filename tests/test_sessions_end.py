"""Sessions end when the password changes, the account is deactivated or its role changes: the tokens issued
before stop working (UNAUTHENTICATED) and the streams they opened end."""

import asyncio
from typing import Any

import httpx
import pytest

from db.enums import Role
from db.settings import Settings
from tests.api import Api, error_codes
from tests.cli import run_cli
from tests.live import PROTOCOLS, Refused, bearer, graphql_socket, live_server

ME = "{ me { id email } }"
MY_TASK_EVENTS = "subscription { myTaskEvents { sequence } }"
SET_ACTIVE = "mutation($id: ID!, $active: Boolean!) { setUserActive(userId: $id, active: $active) { isActive } }"
SET_ROLE = "mutation($id: ID!, $role: Role!) { setUserRole(userId: $id, role: $role) { role } }"
NEW_PASSWORD = "a new and much longer password"


def set_password(settings: Settings, email: str) -> None:
    changed = run_cli("users", "set-password", email, input=NEW_PASSWORD + "\n",
                      DATABASE_URL=settings.database_url, DATA_DIR=str(settings.data_dir))
    assert changed.returncode == 0, changed.stderr


async def test_an_old_token_after_set_password_is_unauthenticated(api: Api, settings: Settings) -> None:
    # given
    old = await api.sign_up("ann@example.com")

    # when
    await asyncio.to_thread(set_password, settings, "ann@example.com")

    # then: the old token is refused; the new password signs in
    assert error_codes(await api.post(ME, token=old)) == ["UNAUTHENTICATED"]
    new = await api.login("ann@example.com", NEW_PASSWORD)
    assert (await api.data(ME, token=new))["me"]["email"] == "ann@example.com"


@pytest.mark.parametrize(("change", "variables"), [
    (SET_ACTIVE, {"active": False}),
    (SET_ROLE, {"role": "WORKER"}),
])
async def test_an_old_token_after_an_access_change_stays_unauthenticated(
    api: Api, change: str, variables: dict[str, Any]
) -> None:
    # given
    old = await api.sign_up("ann@example.com")
    admin = await api.sign_up("root@example.com", Role.ADMIN)
    ann = (await api.data(ME, token=old))["me"]["id"]

    # when: the change (and, for a deactivation, a reactivation after it)
    await api.data(change, {"id": ann, **variables}, token=admin)
    await api.data(SET_ACTIVE, {"id": ann, "active": True}, token=admin)

    # then
    assert error_codes(await api.post(ME, token=old)) == ["UNAUTHENTICATED"]
    assert (await api.data(ME, token=await api.login("ann@example.com")))["me"]["id"] == ann


async def test_a_download_with_an_old_token_is_refused(api: Api, settings: Settings) -> None:
    old = await api.sign_up("ann@example.com")

    await asyncio.to_thread(set_password, settings, "ann@example.com")
    response = await api.client.get("/files/tasks/00000000-0000-0000-0000-000000000000",
                                    headers={"authorization": f"Bearer {old}"})

    assert response.status_code == 401


def change_by_cli(settings: Settings, *args: str) -> None:
    changed = run_cli("users", *args, DATABASE_URL=settings.database_url, DATA_DIR=str(settings.data_dir))
    assert changed.returncode == 0, changed.stderr


# Each change is made by the CLI, another process than the server: on PostgreSQL the server hears its NOTIFY, on
# the embedded SQLite default it reads the access_changes log the CLI's transaction appended to.
CLI_CHANGES = {
    "set-password": lambda settings: set_password(settings, "ann@example.com"),
    "set-active no": lambda settings: change_by_cli(settings, "set-active", "ann@example.com", "no"),
    "set-role": lambda settings: change_by_cli(settings, "set-role", "ann@example.com", "WORKER"),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("change", CLI_CHANGES)
async def test_an_access_change_by_the_cli_ends_the_accounts_open_subscriptions(
    settings: Settings, protocol: str, change: str
) -> None:
    async with live_server(settings) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            old = await Api(client=client, database=server.app.state.database).sign_up("ann@example.com")
        async with graphql_socket(server.ws_url, protocol, bearer(old)) as socket:
            await socket.subscribe(MY_TASK_EVENTS)
            await asyncio.sleep(0.2)  # the subscription is open

            # when
            await asyncio.to_thread(CLI_CHANGES[change], settings)

            # then: the stream ends with UNAUTHENTICATED
            try:
                payload = await socket.next()
            except Refused as closed:
                raise AssertionError(f"the socket closed ({closed.code}) instead of ending the stream") from None
    assert [error["extensions"]["code"] for error in payload["errors"]] == ["UNAUTHENTICATED"]

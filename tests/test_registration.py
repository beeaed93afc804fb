"""Who may register (REGISTRATION): anyone, holders of an invitation for the email, or nobody; a stranger
learns nothing of which emails have an account."""

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from sqlalchemy import select

from db.enums import Role
from db.models import User
from db.settings import Settings
from tests.api import PASSWORD, Api, error_codes
from tests.cli import run_cli
from tests.conftest import make_settings
from tests.sql_counter import count_statements

MAX_REGISTRATIONS = 5
REGISTER = """
mutation($email: String!, $password: String!, $invitation: String) {
  register(email: $email, password: $password, invitation: $invitation) { token user { email role } }
}
"""
INVITE = """
mutation($email: String!, $role: Role!) {
  createInvitation(email: $email, role: $role) { token email role expiresAt }
}
"""
ME = "{ me { email role } }"
TAKEN = "taken@example.com"
FREE = "free@example.com"


@pytest.fixture
def registration() -> str:
    return "invite"


@pytest.fixture
def settings(database_url: str, data_dir: Path, registration: str) -> Settings:
    return make_settings(database_url, data_dir, registration=registration, register_max_attempts=MAX_REGISTRATIONS)


async def invitation(api: Api, email: str, role: Role = Role.USER) -> str:
    admin = await api.sign_up(f"admin-{email}", Role.ADMIN)
    return str((await api.data(INVITE, {"email": email, "role": role.value}, admin))["createInvitation"]["token"])


async def register(api: Api, email: str, invitation: str | None = None) -> httpx.Response:
    return await api.client.post("/graphql", json={
        "query": REGISTER, "variables": {"email": email, "password": PASSWORD, "invitation": invitation}})


def without_request_id(response: httpx.Response) -> bytes:
    return response.content.replace(response.headers["x-request-id"].encode(), b"<request id>")


async def emails(api: Api) -> list[str]:
    async with api.database.sessions() as session:
        return sorted((await session.scalars(select(User.email))).all())


def resigned(token: str, settings: Settings, **claims: Any) -> str:
    """The token with some claims changed and signed again with the server's key: what time passing would make."""
    payload = jwt.decode(token, options={"verify_signature": False}) | claims
    return jwt.encode(payload, settings.secret_key, algorithm="HS256")


def tampered(token: str, **claims: Any) -> str:
    """The token with some claims changed and its signature kept: what a holder can make without the key."""
    header, payload, signature = token.split(".")
    changed = orjson.loads(base64.urlsafe_b64decode(payload + "==")) | claims
    return ".".join([header, base64.urlsafe_b64encode(orjson.dumps(changed)).rstrip(b"=").decode(), signature])


async def test_a_stranger_gets_the_same_answer_for_a_taken_and_a_free_email_and_nothing_changes(api: Api) -> None:
    # given
    await api.sign_up(TAKEN)

    # when
    with count_statements(api.database) as statements:
        taken = await register(api, TAKEN)
        free = await register(api, FREE)
        no_email = await register(api, "not-an-email")

    # then: the same bytes, and no statement that could take longer for one than another
    assert error_codes(taken.json()) == ["FORBIDDEN"]
    assert len({(answer.status_code, without_request_id(answer)) for answer in (taken, free, no_email)}) == 1
    assert statements == []
    assert await emails(api) == [TAKEN]


async def test_an_invitation_registers_its_email_in_any_spelling_with_the_role_it_grants(api: Api) -> None:
    # given
    token = await invitation(api, "ann@example.com", Role.WORKER)

    # when
    registered = (await register(api, "  ANN@Example.com ", token)).json()

    # then
    assert "errors" not in registered, registered["errors"]
    assert registered["data"]["register"]["user"] == {"email": "ann@example.com", "role": "WORKER"}
    me = await api.data(ME, token=registered["data"]["register"]["token"])
    assert me == {"me": {"email": "ann@example.com", "role": "WORKER"}}


async def test_only_the_holder_of_an_invitation_learns_that_its_email_is_taken(api: Api) -> None:
    # given
    await api.sign_up(TAKEN)
    token = await invitation(api, TAKEN)

    # when
    body = (await register(api, TAKEN, token)).json()

    # then
    assert error_codes(body) == ["CONFLICT"]
    assert await emails(api) == ["admin-taken@example.com", TAKEN]


@pytest.mark.parametrize("kind", ["for another email", "expired", "tampered", "a login token", "not a token"])
async def test_a_bad_invitation_is_refused_for_a_taken_and_a_free_email_alike(
    api: Api, settings: Settings, kind: str
) -> None:
    # given
    login = await api.sign_up(TAKEN)
    for_free = await invitation(api, FREE)
    sent = {
        "for another email": await invitation(api, "someone-else@example.com"),
        "expired": resigned(for_free, settings, exp=datetime.now(UTC) - timedelta(seconds=1)),
        "tampered": tampered(for_free, role="ADMIN"),
        "a login token": login,
        "not a token": "not.a.token",
    }[kind]
    before = await emails(api)

    # when
    free = await register(api, FREE, sent)
    taken = await register(api, TAKEN, sent)

    # then
    assert error_codes(free.json()) == ["FORBIDDEN"]
    assert ("expired" in free.json()["errors"][0]["message"]) is (kind == "expired")
    assert without_request_id(free) == without_request_id(taken)
    assert await emails(api) == before


async def test_an_invitation_is_no_bearer_token(api: Api) -> None:
    token = await invitation(api, FREE)

    body = await api.post(ME, token=token)

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "data" not in body


async def test_only_an_admin_creates_invitations(api: Api) -> None:
    user = await api.sign_up("ann@example.com")

    as_user = await api.post(INVITE, {"email": FREE, "role": "ADMIN"}, user)
    anonymous = await api.post(INVITE, {"email": FREE, "role": "ADMIN"})

    assert error_codes(as_user) == ["FORBIDDEN"]
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_an_invitation_lasts_invitation_days_and_names_its_email_as_stored(api: Api) -> None:
    admin = await api.sign_up("admin@example.com", Role.ADMIN)

    created = (await api.data(INVITE, {"email": "Ann@ＥＸＡＭＰＬＥ.com", "role": "USER"}, admin))["createInvitation"]

    lasts = datetime.fromisoformat(created["expiresAt"]) - datetime.now(UTC)
    assert created["email"] == "ann@example.com" and created["role"] == "USER"
    assert timedelta(days=7) - timedelta(minutes=1) < lasts <= timedelta(days=7)


async def test_refused_registrations_count_towards_the_throttle(api: Api) -> None:
    # given: a valid invitation, after as many refused attempts from this client as the throttle allows
    token = await invitation(api, FREE)
    for number in range(MAX_REGISTRATIONS):
        assert error_codes((await register(api, f"stranger{number}@example.com")).json()) == ["FORBIDDEN"]

    # when
    body = (await register(api, FREE, token)).json()

    # then
    assert error_codes(body) == ["RATE_LIMITED"]
    assert FREE not in await emails(api)


@pytest.mark.parametrize("registration", ["closed"])
async def test_closed_registration_refuses_everyone_invited_or_not(api: Api) -> None:
    # given
    await api.sign_up(TAKEN)
    token = await invitation(api, FREE)
    before = await emails(api)

    # when
    answers = [await register(api, TAKEN), await register(api, FREE), await register(api, FREE, token)]

    # then
    assert [error_codes(answer.json()) for answer in answers] == [["FORBIDDEN"]] * 3
    assert len({without_request_id(answer) for answer in answers}) == 1
    assert await emails(api) == before


@pytest.mark.parametrize("registration", ["open"])
async def test_open_registration_makes_users_and_says_when_an_email_is_taken(api: Api) -> None:
    # given
    await api.sign_up(TAKEN)

    # when
    free = (await register(api, FREE)).json()
    taken = (await register(api, TAKEN)).json()

    # then
    assert free["data"]["register"]["user"] == {"email": FREE, "role": "USER"}
    assert error_codes(taken) == ["CONFLICT"]


@pytest.mark.parametrize("registration", ["open"])
async def test_open_registration_still_checks_an_invitation_it_is_given(api: Api) -> None:
    # given
    worker = await invitation(api, "ann@example.com", Role.WORKER)

    # when
    invited = (await register(api, "ann@example.com", worker)).json()
    misused = (await register(api, FREE, worker)).json()

    # then
    assert invited["data"]["register"]["user"] == {"email": "ann@example.com", "role": "WORKER"}
    assert error_codes(misused) == ["FORBIDDEN"]
    assert FREE not in await emails(api)


async def test_an_operator_invites_from_the_cli(api: Api, settings: Settings) -> None:
    # when
    result = await asyncio.to_thread(
        run_cli, "users", "invite", "Ann@Example.com", "--role", "WORKER", "--days", "2",
        SECRET_KEY=settings.secret_key, DATABASE_URL=settings.database_url, DATA_DIR=str(settings.data_dir),
    )

    # then: the invitation alone on stdout, what it grants on stderr
    assert result.returncode == 0, result.stderr
    assert "ann@example.com to register as WORKER, valid until" in result.stderr
    (token,) = result.stdout.split()
    registered = (await register(api, "ann@example.com", token)).json()
    assert registered["data"]["register"]["user"] == {"email": "ann@example.com", "role": "WORKER"}


def test_the_cli_refuses_to_invite_what_can_be_no_account(tmp_path: Path) -> None:
    result = run_cli("users", "invite", "not-an-email", DATA_DIR=str(tmp_path))

    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.startswith("invalid email")


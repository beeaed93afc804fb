import asyncio
import logging
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select

from db.enums import Role
from db.models import User
from db.settings import Settings
from tests.api import LOGIN, PASSWORD, Api, error_codes
from tests.cli import run_cli

REGISTER = """
mutation($email: String!, $password: String!) {
  register(email: $email, password: $password) { token user { email role } }
}
"""
ME = "{ me { email role isActive } }"


async def test_register_then_login_then_me_returns_the_account(api: Api) -> None:
    # given
    registered = await api.data(REGISTER, {"email": "Ada@Example.com", "password": PASSWORD})

    # when
    token = await api.login("ada@example.COM")
    me = await api.data(ME, token=token)

    # then
    assert registered["register"]["user"] == {"email": "ada@example.com", "role": "USER"}
    assert me == {"me": {"email": "ada@example.com", "role": "USER", "isActive": True}}


async def test_the_stored_password_is_an_argon2_hash(api: Api) -> None:
    await api.data(REGISTER, {"email": "ada@example.com", "password": PASSWORD})

    async with api.database.sessions() as session:
        stored = await session.scalar(select(User.hashed_password))

    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_registering_an_email_twice_in_any_case_is_a_conflict(api: Api) -> None:
    await api.data(REGISTER, {"email": "ada@example.com", "password": PASSWORD})

    body = await api.post(REGISTER, {"email": "ADA@example.com", "password": PASSWORD})

    assert error_codes(body) == ["CONFLICT"]
    async with api.database.sessions() as session:
        assert len((await session.scalars(select(User))).all()) == 1


@pytest.mark.parametrize("password", ["short", " " * 12, "ada@example.com", "x" * 257])
async def test_a_password_outside_the_policy_is_refused(api: Api, password: str) -> None:
    body = await api.post(REGISTER, {"email": "ada@example.com", "password": password})

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "password needs" in body["errors"][0]["message"]
    async with api.database.sessions() as session:
        assert (await session.scalars(select(User))).all() == []


async def test_an_invalid_email_is_refused(api: Api) -> None:
    body = await api.post(REGISTER, {"email": "not-an-email", "password": PASSWORD})
    assert error_codes(body) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)],
    ids=["wrong password", "unknown email"],
)
async def test_a_failed_login_is_unauthenticated_with_no_data(api: Api, email: str, password: str) -> None:
    await api.sign_up("ada@example.com")

    body = await api.post(LOGIN, {"email": email, "password": password})

    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    assert body["errors"][0]["message"] == "invalid email or password"


async def test_an_inactive_user_cannot_log_in_and_their_token_stops_working(api: Api) -> None:
    # given
    token = await api.sign_up("ada@example.com")
    async with api.database.transaction() as session:
        (await session.scalar(select(User))).is_active = False  # type: ignore[union-attr]

    # when
    login = await api.post(LOGIN, {"email": "ada@example.com", "password": PASSWORD})
    me = await api.post(ME, token=token)

    # then
    assert error_codes(login) == ["UNAUTHENTICATED"]
    assert error_codes(me) == ["UNAUTHENTICATED"] and "data" not in me


def _token(settings: Settings, **claims: object) -> str:
    now = datetime.now(UTC)
    payload = {"sub": "00000000-0000-0000-0000-000000000000", "iat": now,
               "exp": now + timedelta(hours=1), "iss": "auditgraph"} | claims
    return jwt.encode(payload, str(claims.pop("key", settings.secret_key)), algorithm="HS256")


@pytest.mark.parametrize("kind", ["malformed", "expired", "wrongly signed", "no bearer scheme"])
async def test_a_bad_token_is_unauthenticated_with_no_data(api: Api, settings: Settings, kind: str) -> None:
    # given
    token = await api.sign_up("ada@example.com")
    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    now = datetime.now(UTC)
    header = {
        "malformed": "Bearer not.a.token",
        "expired": "Bearer " + jwt.encode(
            {"sub": user_id, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1), "iss": "auditgraph"},
            settings.secret_key, algorithm="HS256"),
        "wrongly signed": "Bearer " + jwt.encode(
            {"sub": user_id, "iat": now, "exp": now + timedelta(hours=1), "iss": "auditgraph"},
            "another-secret-key-that-is-long-enough-000000", algorithm="HS256"),
        "no bearer scheme": token,
    }[kind]

    # when
    response = await api.client.post("/graphql", json={"query": ME}, headers={"Authorization": header})

    # then
    body = response.json()
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "data" not in body  # refused before execution


async def test_a_token_accepted_before_is_refused_once_it_expires(api: Api, settings: Settings) -> None:
    # given: a token a request has already been served with (its claims checked and remembered)
    token = await api.sign_up("ada@example.com")
    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    short = jwt.encode({"sub": user_id, "iat": datetime.now(UTC), "exp": expires, "iss": "auditgraph"},
                       settings.secret_key, algorithm="HS256")
    assert (await api.data(ME, token=short))["me"]

    # when
    while datetime.now(UTC) <= expires:
        await asyncio.sleep(0.1)
    body = await api.post(ME, token=short)

    # then
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == "the token has expired"


async def test_no_token_is_unauthenticated(api: Api) -> None:
    body = await api.post(ME)
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_repeated_failed_logins_are_rate_limited_even_with_the_right_password(api: Api, settings: Settings) -> None:
    # given
    await api.sign_up("ada@example.com")
    for _ in range(settings.login_max_failures):
        await api.post(LOGIN, {"email": "ada@example.com", "password": "wrong password!"})

    # when
    body = await api.post(LOGIN, {"email": "ada@example.com", "password": PASSWORD})

    # then
    assert error_codes(body) == ["RATE_LIMITED"]


async def test_no_response_or_log_line_contains_a_password_or_its_hash(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = await api.sign_up("ada@example.com")
    bodies = [
        await api.post(LOGIN, {"email": "ada@example.com", "password": "wrong password!"}),
        await api.post(REGISTER, {"email": "ada@example.com", "password": PASSWORD}),
        await api.post("{ me { email } users { edges { node { email } } } }", token=token),
    ]
    async with api.database.sessions() as session:
        stored = await session.scalar(select(User.hashed_password))

    everything = repr(bodies) + caplog.text
    for secret in (PASSWORD, "wrong password!", str(stored)):
        assert secret not in everything


async def test_a_user_calling_an_admin_operation_is_forbidden_and_nothing_changes(api: Api) -> None:
    token = await api.sign_up("ada@example.com")
    me_id = (await api.data("{ me { id } }", token=token))["me"]["id"]

    body = await api.post(
        "mutation($id: ID!) { setUserActive(userId: $id, active: false) { isActive } }", {"id": me_id}, token
    )
    users = await api.post("{ users { totalCount } }", token=token)

    assert error_codes(body) == ["FORBIDDEN"]
    assert error_codes(users) == ["FORBIDDEN"]
    assert (await api.data(ME, token=token))["me"]["isActive"] is True


async def test_an_admin_lists_users_and_deactivates_one(api: Api) -> None:
    admin = await api.sign_up("admin@example.com", Role.ADMIN)
    user = await api.sign_up("ada@example.com")
    user_id = (await api.data("{ me { id } }", token=user))["me"]["id"]

    listed = await api.data("{ users { totalCount edges { node { email role } } } }", token=admin)
    changed = await api.data(
        "mutation($id: ID!) { setUserActive(userId: $id, active: false) { email isActive } }", {"id": user_id}, admin
    )

    assert listed["users"]["totalCount"] == 2
    assert [e["node"] for e in listed["users"]["edges"]] == [
        {"email": "admin@example.com", "role": "ADMIN"}, {"email": "ada@example.com", "role": "USER"}
    ]
    assert changed["setUserActive"] == {"email": "ada@example.com", "isActive": False}


async def test_create_user_from_the_cli_makes_an_account_that_can_log_in(api: Api, settings: Settings) -> None:
    # when: in another process, while the server's loop goes on (its background work holds the write lock at times)
    result = await asyncio.to_thread(
        run_cli, "create-user", "--email", "pipeline@example.com", "--role", "WORKER",
        input=PASSWORD + "\n", DATABASE_URL=settings.database_url, DATA_DIR=str(settings.data_dir),
    )

    # then
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    token = await api.login("pipeline@example.com")
    assert (await api.data(ME, token=token))["me"]["role"] == "WORKER"

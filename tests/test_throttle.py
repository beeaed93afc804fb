"""Throttled logins and registrations: every spelling of an email counts as the address, and a refusal says when to retry."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from db.models import User
from db.settings import Settings
from tests.api import LOGIN, PASSWORD, Api, error_codes
from tests.conftest import make_settings

MAX_FAILURES = 3
LOCKOUT_SECONDS = 300
MAX_REGISTRATIONS = 2
REGISTER = "mutation($email: String!, $password: String!) { register(email: $email, password: $password) { token } }"
VICTIM = "victim@example.com"
SPELLINGS = {
    "fullwidth letters": "victim@ｅｘａｍｐｌｅ.ｃｏｍ",
    "ideographic full stop": "victim@example。com",
    "upper case": "VICTIM@EXAMPLE.COM",
    "surrounding spaces": "  victim@example.com  ",
}


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(database_url, data_dir, login_max_failures=MAX_FAILURES,
                         login_lockout_seconds=LOCKOUT_SECONDS, register_max_attempts=MAX_REGISTRATIONS)


@asynccontextmanager
async def client_at(app: Starlette, address: str) -> AsyncIterator[Api]:
    """A client calling from its own address, so only the per-email count can refuse it."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield Api(client=http, database=app.state.database)


async def fail_logins(app: Starlette, email: str, times: int, first_address: int = 1) -> None:
    for number in range(first_address, first_address + times):
        async with client_at(app, f"10.0.0.{number}") as api:
            body = await api.post(LOGIN, {"email": email, "password": "wrong password!"})
            assert error_codes(body) == ["UNAUTHENTICATED"]


async def login_from_a_new_address(app: Starlette, email: str) -> dict[str, object]:
    async with client_at(app, "10.0.1.1") as api:
        return await api.post(LOGIN, {"email": email, "password": PASSWORD})


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
async def test_failures_in_any_spelling_lock_the_plain_address(api: Api, app: Starlette, spelling: str) -> None:
    # given
    await api.sign_up(VICTIM)

    # when
    await fail_logins(app, spelling, MAX_FAILURES)
    body = await login_from_a_new_address(app, VICTIM)

    # then
    assert error_codes(body) == ["RATE_LIMITED"]


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
async def test_a_locked_address_is_locked_in_every_spelling(api: Api, app: Starlette, spelling: str) -> None:
    # given
    await api.sign_up(VICTIM)
    await fail_logins(app, VICTIM, MAX_FAILURES)

    # when
    body = await login_from_a_new_address(app, spelling)

    # then
    assert error_codes(body) == ["RATE_LIMITED"]


async def test_rate_limited_says_when_to_retry_in_the_error_and_the_header(api: Api, app: Starlette) -> None:
    # given
    await api.sign_up(VICTIM)
    await fail_logins(app, VICTIM, MAX_FAILURES)

    # when
    async with client_at(app, "10.0.1.1") as other:
        response = await other.client.post("/graphql", json={"query": LOGIN,
                                                             "variables": {"email": VICTIM, "password": PASSWORD}})

    # then
    error = response.json()["errors"][0]
    retry_after = error["extensions"]["retryAfter"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert isinstance(retry_after, int) and 0 < retry_after <= LOCKOUT_SECONDS
    assert response.headers["Retry-After"] == str(retry_after)
    assert f"try again in {retry_after} seconds" in error["message"]


async def _accounts(api: Api) -> int:
    async with api.database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(User)) or 0


async def test_one_client_is_refused_registrations_past_the_limit(api: Api) -> None:
    # given: attempts count whatever becomes of them
    await api.post(REGISTER, {"email": "ann@example.com", "password": "short"})
    await api.data(REGISTER, {"email": "bob@example.com", "password": PASSWORD})

    # when
    response = await api.client.post("/graphql", json={"query": REGISTER,
                                                       "variables": {"email": "cy@example.com", "password": PASSWORD}})

    # then
    body = response.json()
    assert error_codes(body) == ["RATE_LIMITED"]
    assert response.headers["Retry-After"] == str(body["errors"][0]["extensions"]["retryAfter"])
    assert await _accounts(api) == 1


async def test_one_email_is_refused_registrations_past_the_limit_from_any_client(api: Api, app: Starlette) -> None:
    # given
    async with client_at(app, "10.0.0.1") as first, client_at(app, "10.0.0.2") as second:
        await first.data(REGISTER, {"email": VICTIM, "password": PASSWORD})
        await second.post(REGISTER, {"email": SPELLINGS["upper case"], "password": PASSWORD})

    # when
    async with client_at(app, "10.0.0.3") as third:
        body = await third.post(REGISTER, {"email": SPELLINGS["fullwidth letters"], "password": PASSWORD})

    # then
    assert error_codes(body) == ["RATE_LIMITED"]
    assert await _accounts(api) == 1

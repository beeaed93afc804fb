"""Counting a request's statements leaves out what the housekeeping loops run meanwhile, however often they run."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from db.settings import Settings
from graph.app import create_app
from tests.api import Api
from tests.sql_counter import count_statements


@pytest.fixture
async def busy_housekeeping(settings: Settings) -> AsyncIterator[Api]:
    application = create_app(settings.model_copy(update={"lease_check_seconds": 0.005}))
    async with LifespanManager(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as client:
            yield Api(client=client, database=application.state.database)


async def test_the_lease_checks_running_meanwhile_are_not_counted(busy_housekeeping: Api) -> None:
    token = await busy_housekeeping.sign_up("ann@example.com")

    with count_statements(busy_housekeeping.database) as statements:
        await busy_housekeeping.data("{ me { email } }", token=token)
        await asyncio.sleep(0.2)  # dozens of lease checks

    assert statements and not any("lease_expires_at" in statement for statement in statements)

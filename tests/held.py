"""An app of its own settings, and a transaction that holds up every registration: for tests of waits."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from db.engine import Database
from db.settings import Settings
from graph.app import create_app


@asynccontextmanager
async def served(settings: Settings, **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    """A client of the app with these settings changed, and its database."""
    application = create_app(settings.model_copy(update=overrides))
    async with LifespanManager(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as client:
            yield client, application.state.database


@asynccontextmanager
async def registrations_held(database: Database) -> AsyncIterator[None]:
    """Another transaction holds what a registration writes until the block ends: SQLite's write lock (the
    write engine begins with BEGIN IMMEDIATE), the users table's lock on PostgreSQL."""
    async with database.write_sessions.kw["bind"].connect() as holder:
        sqlite = database.dialect == "sqlite"
        await holder.execute(text("SELECT 1" if sqlite else "LOCK TABLE users IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await holder.rollback()

"""The ASGI application: create_app(settings) builds everything in its lifespan."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from db import migrations
from db.engine import Database
from db.settings import Settings
from graph.health import healthz, readyz

logger = logging.getLogger("auditgraph")


def create_app(settings: Settings) -> Starlette:
    settings.check_production_ready()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database.from_settings(settings)
        app.state.settings = settings
        app.state.database = database
        app.state.schema_head = migrations.head_revision()
        try:
            yield
        finally:
            await database.dispose()

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz)],
        lifespan=lifespan,
    )


def create_app_from_environment() -> Starlette:
    """The factory uvicorn workers call: settings come from the environment."""
    return create_app(Settings())

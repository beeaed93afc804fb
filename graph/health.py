"""Liveness and readiness: is the process up, and is its database reachable and at head."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from db import migrations
from db.engine import Database


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    head: str = request.app.state.schema_head
    try:
        current = await migrations.current_revision(database.engine)
    except Exception:  # noqa: BLE001 - any failure to reach the database means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != head:
        return JSONResponse(
            {"status": "unavailable", "database": "reachable", "schema": "not at head"}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "reachable", "schema": "head"})

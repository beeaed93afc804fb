"""Liveness and readiness: is the process up; is its database reachable and at head, and does it hear every commit."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from db import migrations
from db.engine import Database


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    head: str = request.app.state.schema_head
    # A worker that cannot hear other workers' commits would leave its subscribers waiting.
    events = "listening" if request.app.state.broker.listening else "not listening"
    try:
        current = await migrations.current_revision(database.engine)
    except Exception:  # noqa: BLE001 - any failure to reach the database means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable", "events": events}, status_code=503)
    schema = "head" if current == head else "not at head"
    ready = schema == "head" and events == "listening"
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "database": "reachable", "schema": schema, "events": events},
        status_code=200 if ready else 503,
    )

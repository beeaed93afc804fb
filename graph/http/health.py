"""Liveness and readiness: is the process up; is its database reachable and at head, does it hear every commit,
and does it share its upload folder with the other processes."""

from starlette.requests import Request
from starlette.responses import JSONResponse

from db import migrations
from db.engine import Database
from db.settings import Settings
from db.storage_marker import unshared_storage


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    settings: Settings = request.app.state.settings
    head: str = request.app.state.schema_head
    # A worker that cannot hear other workers' commits would leave its subscribers waiting.
    events = "listening" if request.app.state.broker.listening else "not listening"
    try:
        current = await migrations.current_revision(database.engine)
        # A worker that does not see the others' files would serve some downloads and lose others;
        # why is `auditgraph check`'s to say (no path goes to a client).
        problem = await unshared_storage(database, settings.upload_dir) if current == head else None
    except Exception:  # noqa: BLE001 - any failure to reach the database means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable", "events": events}, status_code=503)
    schema = "head" if current == head else "not at head"
    storage = "unchecked" if current != head else "not shared" if problem else "shared"
    ready = schema == "head" and events == "listening" and storage == "shared"
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "database": "reachable", "schema": schema, "events": events,
         "storage": storage},
        status_code=200 if ready else 503,
    )

"""Downloads of stored files: a task's original and its artifacts, for whoever may read the task."""

import logging
import mimetypes
import uuid
from collections.abc import Callable

from sqlalchemy import Row, Select, select
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from db.access import Viewer, task_scope
from db.availability import WAITED_TOO_LONG, as_unavailable
from db.engine import Database
from db.errors import DatabaseUnavailable, Unauthenticated
from db.models import Artifact, Task
from db.settings import Settings
from db.storage import stored_path
from graph.access.tokens import bearer_token
from graph.http import unavailable
from graph.http.graphql_http import CHALLENGE, error_body
from graph.http.view import viewer_from_token

logger = logging.getLogger("auditgraph.downloads")

# Served as attachments that the browser must not reinterpret: an uploaded
# file is never rendered as a page of this origin.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}


def _refused(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    # As GraphQL's refusals read: a coded JSON error carrying the request's id, never plain text.
    return JSONResponse(error_body(message, code), status_code=status, headers=headers)


def _not_found() -> Response:
    # Another user's file and a missing one look the same.
    return _refused(404, "no such file", "NOT_FOUND")


async def _visible_row(request: Request, statement_for: Callable[[Viewer], Select]) -> Row | Response:
    """The one row `statement_for(viewer)` finds for the bearer of the request's token, or the response refusing it."""
    settings: Settings = request.app.state.settings
    database: Database = request.app.state.database
    try:
        viewer = await viewer_from_token(bearer_token(request.headers.get("authorization")), database, settings)
    except Unauthenticated as error:
        viewer, reason = None, error.message
    except DatabaseUnavailable as error:
        return _unavailable(error)
    else:
        reason = "send a bearer token in the Authorization header"
    if viewer is None:
        return _refused(401, reason, "UNAUTHENTICATED", CHALLENGE)
    try:
        async with database.read() as connection:
            row = (await connection.execute(statement_for(viewer))).one_or_none()
    except WAITED_TOO_LONG as error:
        return _unavailable(as_unavailable(error) or DatabaseUnavailable())
    return _not_found() if row is None else row


def _unavailable(error: DatabaseUnavailable) -> Response:
    """While the database cannot answer: 503 with Retry-After, as GraphQL requests get."""
    return _refused(503, error.message, "SERVICE_UNAVAILABLE", unavailable.RETRY_AFTER)


def _file(request: Request, relative_path: str, content_type: str | None, filename: str) -> Response:
    settings: Settings = request.app.state.settings
    path = stored_path(settings.upload_dir, relative_path)
    if not path.is_file():
        logger.error("stored file %s is missing", relative_path)
        return _not_found()
    return FileResponse(
        path, media_type=content_type or "application/octet-stream", filename=filename, headers=FILE_HEADERS
    )


async def download_task_file(request: Request) -> Response:
    task_id: uuid.UUID = request.path_params["task_id"]
    row = await _visible_row(request, lambda viewer: select(
        Task.file_path, Task.content_type, Task.original_filename
    ).where(Task.id == task_id, Task.file_path.is_not(None), viewer.visible_tasks()))
    if isinstance(row, Response):
        return row
    return _file(request, row.file_path, row.content_type, row.original_filename or "download")


async def download_artifact(request: Request) -> Response:
    artifact_id: uuid.UUID = request.path_params["artifact_id"]
    row = await _visible_row(request, lambda viewer: select(
        Artifact.file_path, Artifact.content_type, Artifact.kind, Artifact.index
    ).where(Artifact.id == artifact_id, task_scope(viewer, Artifact.task_id)))
    if isinstance(row, Response):
        return row
    extension = mimetypes.guess_extension(row.content_type) or ""
    return _file(request, row.file_path, row.content_type, f"{row.kind}-{row.index}{extension}")

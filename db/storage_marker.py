"""Whether this process's upload folder is the one every process shares: a marker file the database names.

Every process of a deployment must see the same stored files: a file uploaded
through one is downloaded, swept and deduplicated through the others. The
database names one marker (table storage_markers); its file,
`<upload_dir>/.storage-markers/<id>`, must be in each process's upload folder.
The first process to find none recorded writes a file named by a new id, makes
it durable, then records the id if no other process has recorded one
meanwhile: of processes racing, one id wins, and the others remove their own
file. A process whose DATA_DIR is another folder (a local disk where a shared
volume was meant, a volume that did not mount, a copy) does not find the
file: /readyz answers 503 and `auditgraph check` fails, saying so. A check is
one read by key and one stat.
"""

import asyncio
import os
import uuid
from contextlib import suppress
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from db.engine import Database
from db.models import StorageMarker

MARKERS = ".storage-markers"
UPLOADS = "uploads"


def marker_file(upload_dir: Path, marker: uuid.UUID) -> Path:
    return upload_dir / MARKERS / str(marker)


async def recorded_marker(database: Database) -> uuid.UUID | None:
    rows = await database.rows(select(StorageMarker.id).where(StorageMarker.folder == UPLOADS))
    return rows[0][0] if rows else None


def _write_marker(upload_dir: Path, marker: uuid.UUID) -> None:
    path = marker_file(upload_dir, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(descriptor, b"This file tells AuditGraph that every process shares this folder. Keep it.\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


async def storage_marker(database: Database, upload_dir: Path) -> uuid.UUID:
    """The marker the database names; when it names none, one written in `upload_dir` and recorded now."""
    recorded = await recorded_marker(database)
    if recorded is not None:
        return recorded
    candidate = uuid.uuid4()
    # The file first: a recorded id whose file is not yet durable would fail every other process's check.
    await asyncio.to_thread(_write_marker, upload_dir, candidate)
    insert = postgres_insert if database.dialect == "postgresql" else sqlite_insert
    async with database.transaction() as session:
        await session.execute(insert(StorageMarker).values(id=candidate, folder=UPLOADS)
                              .on_conflict_do_nothing(index_elements=[StorageMarker.folder]))
    recorded = await recorded_marker(database)
    assert recorded is not None
    if recorded != candidate:
        with suppress(OSError):
            marker_file(upload_dir, candidate).unlink()
    return recorded


async def unshared_storage(database: Database, upload_dir: Path) -> str | None:
    """Why `upload_dir` is not the folder the other processes use, or None when it holds the database's marker."""
    try:
        marker = await storage_marker(database, upload_dir)
    except OSError as error:
        return f"cannot write the storage marker in {upload_dir}: {error.strerror}"
    if await asyncio.to_thread(marker_file(upload_dir, marker).is_file):
        return None
    return (f"{upload_dir} does not hold the storage marker this database names ({MARKERS}/{marker}): every "
            "process must use the same DATA_DIR, on a filesystem all hosts share")

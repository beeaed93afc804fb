"""Operations that store a file and commit the rows referencing it together; each owns its transactions."""

import logging
import uuid
from collections.abc import AsyncIterable

from sqlalchemy.ext.asyncio import AsyncSession

from db.access import Viewer
from db.artifacts import create_artifact
from db.engine import Database
from db.errors import DuplicateTask
from db.settings import Settings
from db.storage import StagedFile, release_files, stage_upload, store_and_commit
from db.tasks import StoredFile, create_file_task, delete_task

logger = logging.getLogger("auditgraph.uploads")


def _stored_file(staged: StagedFile, relative_path: str, filename: str) -> StoredFile:
    return StoredFile(
        original_filename=filename,
        content_type=staged.content_type,
        file_size=staged.size,
        file_hash=staged.sha256,
        file_path=relative_path,
        page_count=staged.page_count,
    )


async def upload_document(
    database: Database, settings: Settings, owner_id: uuid.UUID, filename: str, chunks: AsyncIterable[bytes]
) -> tuple[uuid.UUID, bool]:
    """Store an upload and queue a task for it; returns the task id and whether it already existed."""
    staged = await stage_upload(chunks, settings.data_dir, settings.max_upload_bytes)

    async def write_task(session: AsyncSession, relative_path: str) -> tuple[uuid.UUID, bool]:
        try:
            task = await create_file_task(session, owner_id, _stored_file(staged, relative_path, filename))
        except DuplicateTask as duplicate:
            return duplicate.task_id, True  # type: ignore[return-value]
        return task.id, False

    return await store_and_commit(database, staged, settings.upload_dir, write_task)


async def add_artifact(
    database: Database,
    settings: Settings,
    task_id: uuid.UUID,
    chunks: AsyncIterable[bytes],
    *,
    kind: str,
    label: str | None,
    viewer: Viewer,
    claim_id: uuid.UUID | None,
) -> uuid.UUID:
    """Store a file and attach it to a task as its next artifact; returns the artifact id."""
    staged = await stage_upload(chunks, settings.data_dir, settings.max_upload_bytes)

    async def write_artifact(session: AsyncSession, relative_path: str) -> uuid.UUID:
        artifact = await create_artifact(
            session, task_id, _stored_file(staged, relative_path, kind), kind=kind, label=label, viewer=viewer,
            claim_id=claim_id,
        )
        return artifact.id

    return await store_and_commit(database, staged, settings.upload_dir, write_artifact)


async def delete_task_and_files(
    database: Database, settings: Settings, task_id: uuid.UUID, *, viewer: Viewer
) -> None:
    """Delete a task, then remove the stored files that no remaining row references."""
    async with database.transaction() as session:
        paths = await delete_task(session, task_id, viewer=viewer)
    try:
        async with database.transaction() as session:
            await release_files(session, settings.upload_dir, paths)
    except Exception:
        # The task is gone, which is what was asked; a leftover file is only disk space.
        logger.exception("could not remove the files of deleted task %s", task_id)

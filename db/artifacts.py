"""Artifacts: files the pipeline attaches to a task, numbered per task."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import Viewer
from db.base import utcnow
from db.claims import check_claim
from db.enums import EventType
from db.events import add_event, take_event_sequence
from db.inputs import ArtifactInput, validate_input
from db.models import Artifact
from db.tasks import StoredFile


async def create_artifact(
    session: AsyncSession,
    task_id: uuid.UUID,
    file: StoredFile,
    *,
    kind: str,
    label: str | None = None,
    viewer: Viewer,
    claim_id: uuid.UUID | None,
) -> Artifact:
    """Attach a stored file to a task as its next artifact, with an ARTIFACT_ADDED event.

    A task being processed takes artifacts only under its claim.
    """
    facts = validate_input(ArtifactInput, {"kind": kind, "label": label})
    # Taking the event sequence locks the task row, so concurrent attachers get
    # distinct indexes.
    held, sequence = await take_event_sequence(session, task_id, viewer)
    check_claim(held, claim_id)
    index = await session.scalar(
        select(func.coalesce(func.max(Artifact.index) + 1, 0)).where(Artifact.task_id == task_id)
    )
    now = utcnow()
    artifact = Artifact(
        id=uuid.uuid4(),
        task_id=task_id,
        kind=facts.kind,
        label=facts.label,
        index=index,
        content_type=file.content_type,
        file_size=file.file_size,
        file_path=file.file_path,
        file_hash=file.file_hash,
        created_at=now,
        updated_at=now,
    )
    session.add(artifact)
    add_event(
        session,
        task_id,
        sequence,
        EventType.ARTIFACT_ADDED,
        {"artifactId": str(artifact.id), "kind": artifact.kind, "label": artifact.label, "index": index},
    )
    await session.flush()
    return artifact

"""Small row factories: each writes one thing through the domain operations where one exists."""

import hashlib
import uuid
from datetime import datetime
from itertools import count
from typing import Any

from sqlalchemy import Uuid, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db import figures
from db.access import SYSTEM
from db.analyses import record_analysis
from db.enums import Role, TaskStatus
from db.models import Analysis, Task, User
from db.tasks import StoredFile, create_file_task, transition_task

_serial = count(1)


async def make_user(session: AsyncSession, *, role: Role = Role.USER, email: str | None = None,
                    is_active: bool = True) -> User:
    user = User(
        id=uuid.uuid4(),
        email=email or f"user{next(_serial)}@example.com",
        hashed_password="not-a-real-hash",
        role=role,
        is_active=is_active,
    )
    session.add(user)
    await session.flush()
    return user


def stored_file(content: bytes | None = None, **overrides: Any) -> StoredFile:
    content = content if content is not None else f"file {next(_serial)}".encode()
    digest = hashlib.sha256(content).hexdigest()
    facts: dict[str, Any] = {
        "original_filename": "report.pdf",
        "content_type": "application/pdf",
        "file_size": len(content),
        "file_hash": digest,
        "file_path": f"{digest[:2]}/{digest}",
    } | overrides
    return StoredFile(**facts)


async def make_task(session: AsyncSession, owner: User, **overrides: Any) -> Task:
    return await create_file_task(session, owner.id, stored_file(**overrides))


async def backdate_task(session: AsyncSession, task: Task, created_at: datetime) -> None:
    """Give a new QUEUED task an earlier creation time, its figures moving to that day with it: history
    a test needs and no API can write."""
    figures.counted(session, task.user_id, task.created_at, {"queued": 1}, sign=-1)
    await session.execute(update(Task).where(Task.id == task.id).values(created_at=created_at))
    figures.counted(session, task.user_id, created_at, {"queued": 1})


async def make_processing_task(session: AsyncSession, owner: User, **overrides: Any) -> Task:
    """A task claimed by the system: pass its claim_id to pipeline writes."""
    task = await make_task(session, owner, **overrides)
    return await transition_task(session, task.id, TaskStatus.PROCESSING, viewer=SYSTEM)


async def move_task(session: AsyncSession, task_id: uuid.UUID, status: TaskStatus | str, **options: Any) -> Task:
    """transition_task as the task's claim holder calls it, naming the claim the task has now."""
    claim_id = await session.scalar(select(Task.claim_id).where(Task.id == task_id))
    return await transition_task(session, task_id, status, viewer=SYSTEM, claim_id=claim_id, **options)


def analysis_input(**overrides: Any) -> dict[str, Any]:
    return {
        "verdict": "REVIEW",
        "equipment_type": "transformer",
        "test_type": "insulation resistance",
        "compliance_score": 72.5,
        "confidence_score": 0.9,
        "summary": "two findings",
        "extraction_result": {"pages": 3},
        "findings": [
            {
                "severity": "CRITICAL",
                "rule_id": "GND-01",
                "category": "grounding",
                "message": "ground resistance above limit",
                "evidence": {"measured": 12.5, "limit": 10},
                "remediation": "re-bond the ground",
                "confidence": 0.8,
                "sources": [{"page_number": 2, "section": "4.1", "snippet": "12.5 ohm"}],
            },
            {
                "severity": "MINOR",
                "rule_id": "DOC-03",
                "message": "signature missing",
                "sources": [],
            },
        ],
    } | overrides


async def make_analysed_task(session: AsyncSession, owner: User, **analysis: Any) -> tuple[Task, Analysis]:
    task = await make_processing_task(session, owner)
    recorded = await record_analysis(session, task.id, analysis_input(**analysis), viewer=SYSTEM,
                                     claim_id=task.claim_id)
    return task, recorded




async def task_at_old_revision(connection: AsyncConnection, status: str, last_event_sequence: int) -> uuid.UUID:
    """A user and a URL task written with only the columns every revision has, for upgrade tests."""
    user_id, task_id = uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        text("INSERT INTO users (id, email, hashed_password, is_active, role) "
             "VALUES (:id, :email, 'x', :active, 'USER')")
        .bindparams(bindparam("id", type_=Uuid())),
        {"id": user_id, "email": f"old{next(_serial)}@example.com", "active": True})
    await connection.execute(
        text("INSERT INTO tasks (id, user_id, status, source_url, last_event_sequence) "
             "VALUES (:id, :user_id, :status, 'https://example.com/', :sequence)")
        .bindparams(bindparam("id", type_=Uuid()), bindparam("user_id", type_=Uuid())),
        {"id": task_id, "user_id": user_id, "status": status, "sequence": last_event_sequence})
    return task_id

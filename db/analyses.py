"""Recording an analysis: the analysis, its findings and their sources, all or nothing."""

import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import Viewer
from db.base import utcnow
from db.claims import check_claim
from db.enums import EventType, TaskStatus
from db.errors import AlreadyExists, Conflict, InvalidInput
from db.events import add_event, take_event_sequence
from db.inputs import AnalysisInput, validate_input
from db.models import Analysis, Artifact, Finding, SourceReference

RECORDABLE_STATUSES = frozenset({TaskStatus.PROCESSING, TaskStatus.COMPLETED})



async def record_analysis(
    session: AsyncSession,
    task_id: uuid.UUID,
    data: AnalysisInput | dict[str, Any],
    *,
    viewer: Viewer,
    claim_id: uuid.UUID | None,
    replace: bool = False,
) -> Analysis:
    """Record the analysis of a task under the claim that processes (or completed) it."""
    analysis_input = validate_input(AnalysisInput, data)

    # Taking the event sequence locks the task row, which also serialises
    # concurrent recorders of the same task.
    held, sequence = await take_event_sequence(session, task_id, viewer)
    check_claim(held, claim_id)
    if held.status not in RECORDABLE_STATUSES:
        raise Conflict(
            f"an analysis can be recorded only while a task is PROCESSING or COMPLETED, not {held.status}"
        )

    existing = None
    recorded = (
        await session.execute(select(Analysis.id, Analysis.claim_id).where(Analysis.task_id == task_id))
    ).one_or_none()
    if recorded is not None:
        existing, recorded_under = recorded
        # An earlier attempt's analysis is not in this attempt's way: the claim now holding the task replaces it.
        if recorded_under == held.claim_id and not replace:
            raise AlreadyExists(
                "this task already has an analysis, recorded under the claim that holds it now; "
                "pass replace: true to swap it"
            )
        await session.execute(delete(Analysis).where(Analysis.id == existing))

    await _check_artifacts_belong_to_task(session, task_id, analysis_input)

    now = utcnow()
    analysis_id = uuid.uuid4()
    fields = analysis_input.model_dump(exclude={"findings"})
    await session.execute(
        insert(Analysis).values(
            id=analysis_id, task_id=task_id, claim_id=held.claim_id, created_at=now, updated_at=now, **fields
        )
    )
    finding_rows: list[dict[str, Any]] = []
    source_rows: list[dict[str, Any]] = []
    for finding in analysis_input.findings:
        finding_id = uuid.uuid4()
        finding_rows.append(
            {
                "id": finding_id,
                "analysis_id": analysis_id,
                "created_at": now,
                "updated_at": now,
                **finding.model_dump(exclude={"sources"}),
            }
        )
        source_rows.extend(
            {"id": uuid.uuid4(), "finding_id": finding_id, "created_at": now, "updated_at": now,
             **source.model_dump()}
            for source in finding.sources
        )
    if finding_rows:
        await session.execute(insert(Finding), finding_rows)
    if source_rows:
        await session.execute(insert(SourceReference), source_rows)

    add_event(
        session,
        task_id,
        sequence,
        EventType.ANALYSIS_RECORDED,
        {
            "analysisId": str(analysis_id),
            "verdict": analysis_input.verdict.value,
            "findingCount": len(finding_rows),
            "replaced": existing is not None,
        },
    )
    await session.flush()
    analysis = await session.get_one(Analysis, analysis_id)
    return analysis


async def _check_artifacts_belong_to_task(
    session: AsyncSession, task_id: uuid.UUID, analysis_input: AnalysisInput
) -> None:
    wanted = {f.artifact_id for f in analysis_input.findings if f.artifact_id is not None}
    if not wanted:
        return
    found = await session.scalar(
        select(func.count()).where(Artifact.id.in_(wanted), Artifact.task_id == task_id)
    )
    if found != len(wanted):
        raise InvalidInput("a finding names an artifact that is not attached to this task")

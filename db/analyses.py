"""Recording an analysis: the analysis, its findings and their sources, all or nothing."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import figures
from db.access import Viewer
from db.base import utcnow
from db.bulk import Row, RowEncoder, columns_of, insert_rows
from db.claims import check_claim
from db.enums import EventType, TaskStatus
from db.errors import AlreadyExists, Conflict, InvalidInput
from db.events import add_event, take_event_sequence
from db.inputs import AnalysisInput, FindingInput, validate_analysis
from db.models import Analysis, Artifact, Finding, SourceReference, Task
from db.python_work import off_the_loop

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
    # Thousands of findings take a while to check: in a worker thread, so the event loop keeps serving.
    analysis_input = await off_the_loop(validate_analysis, data)

    # Taking the event sequence locks the task row, which also serialises
    # concurrent recorders of the same task.
    held, sequence = await take_event_sequence(session, task_id, viewer)
    check_claim(held, claim_id)
    if held.status not in RECORDABLE_STATUSES:
        raise Conflict(
            f"an analysis can be recorded only while a task is PROCESSING or COMPLETED, not {held.status}"
        )

    existing = None
    replaced = figures.Figures()
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
        replaced = await figures.stored_contribution(session, task_id)
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
    finding_count = await _insert_findings(session, analysis_id, analysis_input.findings, now)
    owner_id, created_at = (await session.execute(
        update(Task).where(Task.id == task_id)
        .values(verdict=analysis_input.verdict,
                compliance_key=-1.0 if analysis_input.compliance_score is None else analysis_input.compliance_score)
        .returning(Task.user_id, Task.created_at)
    )).one()
    figures.counted(session, owner_id, created_at, replaced, sign=-1)
    figures.counted(session, owner_id, created_at, figures.analysis_figures(
        analysis_input.verdict, analysis_input.compliance_score, analysis_input.confidence_score,
        (finding.severity for finding in analysis_input.findings)))

    add_event(
        session,
        task_id,
        sequence,
        EventType.ANALYSIS_RECORDED,
        {
            "analysisId": str(analysis_id),
            "verdict": analysis_input.verdict.value,
            "findingCount": finding_count,
            "replaced": existing is not None,
        },
    )
    await session.flush()
    analysis = await session.get_one(Analysis, analysis_id)
    return analysis


# The order _finding_rows writes values in; checked against the tables when the module loads.
FINDING_COLUMNS = ("id", "analysis_id", "severity", "rule_id", "category", "message", "evidence", "remediation",
                   "confidence", "artifact_id", "created_at", "updated_at")
SOURCE_COLUMNS = ("id", "finding_id", "page_number", "section", "snippet", "created_at", "updated_at")
assert set(FINDING_COLUMNS) == set(columns_of(Finding)), "findings has columns _finding_rows does not write"
assert set(SOURCE_COLUMNS) == set(columns_of(SourceReference)), "source_references has columns not written"


async def _insert_findings(
    session: AsyncSession, analysis_id: uuid.UUID, findings: Sequence[FindingInput], now: datetime
) -> int:
    """Insert the findings and their sources set-wise, one statement per table; returns how many findings."""
    encoder = RowEncoder(session.get_bind().dialect.name)
    finding_rows, source_rows = await off_the_loop(_finding_rows, encoder, analysis_id, findings, now)
    await insert_rows(session, Finding, FINDING_COLUMNS, finding_rows)
    await insert_rows(session, SourceReference, SOURCE_COLUMNS, source_rows)
    return len(finding_rows)


def _finding_rows(
    encoder: RowEncoder, analysis_id: uuid.UUID, findings: Sequence[FindingInput], now: datetime
) -> tuple[list[Row], list[Row]]:
    stamp, analysis = encoder.time(now), encoder.id(analysis_id)
    finding_ids = encoder.new_ids(len(findings))
    source_ids = iter(encoder.new_ids(sum(len(finding.sources) for finding in findings)))
    finding_rows: list[Row] = []
    source_rows: list[Row] = []
    for finding, finding_id in zip(findings, finding_ids, strict=True):
        finding_rows.append((
            finding_id, analysis, finding.severity.value, finding.rule_id, finding.category, finding.message,
            encoder.json(finding.evidence), finding.remediation, finding.confidence,
            encoder.id(finding.artifact_id), stamp, stamp,
        ))
        source_rows.extend(
            (next(source_ids), finding_id, source.page_number, source.section, source.snippet, stamp, stamp)
            for source in finding.sources
        )
    return finding_rows, source_rows


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

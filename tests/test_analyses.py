from typing import Any

import pytest
from sqlalchemy import func, select

from db.access import SYSTEM
from db.analyses import record_analysis
from db.engine import Database
from db.enums import EventType, Severity, Verdict
from db.errors import Conflict, InvalidInput
from db.models import Analysis, Finding, SourceReference, TaskEvent
from tests.factories import analysis_input, make_processing_task, make_task, make_user


async def _counts(db: Database) -> dict[str, int]:
    async with db.sessions() as session:
        return {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Analysis, Finding, SourceReference, TaskEvent)
        }


async def test_an_analysis_is_recorded_with_its_findings_sources_and_an_event(db: Database) -> None:
    # given
    async with db.transaction() as session:
        task = await make_processing_task(session, await make_user(session))

    # when
    async with db.transaction() as session:
        analysis = await record_analysis(session, task.id, analysis_input(), viewer=SYSTEM, claim_id=task.claim_id)

    # then
    async with db.sessions() as session:
        findings = (await session.scalars(select(Finding).order_by(Finding.rule_id))).all()
        sources = (await session.scalars(select(SourceReference))).all()
        event = await session.scalar(select(TaskEvent).where(TaskEvent.sequence == 3))
    assert (analysis.verdict, analysis.compliance_score) == (Verdict.REVIEW, 72.5)
    assert [(f.rule_id, f.severity) for f in findings] == [("DOC-03", Severity.MINOR), ("GND-01", Severity.CRITICAL)]
    assert findings[1].evidence == {"measured": 12.5, "limit": 10}
    assert [(s.page_number, s.finding_id) for s in sources] == [(2, findings[1].id)]
    assert event is not None and event.type is EventType.ANALYSIS_RECORDED
    assert event.data == {"analysisId": str(analysis.id), "verdict": "REVIEW", "findingCount": 2, "replaced": False}


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ({"compliance_score": 100.5}, "compliance_score"),
        ({"confidence_score": -0.1}, "confidence_score"),
        ({"verdict": "MAYBE"}, "verdict"),
        ({"findings": [{"severity": "MAJOR", "rule_id": "X-1", "message": "m", "confidence": 2}]}, "confidence"),
        ({"findings": [{"severity": "MAJOR", "rule_id": "X-1", "message": "m",
                        "sources": [{"page_number": 0}]}]}, "page_number"),
    ],
)
async def test_out_of_range_input_is_refused_and_changes_nothing(
    db: Database, bad: dict[str, Any], complaint: str
) -> None:
    async with db.transaction() as session:
        task = await make_processing_task(session, await make_user(session))
    before = await _counts(db)

    with pytest.raises(InvalidInput, match=complaint):
        async with db.transaction() as session:
            await record_analysis(session, task.id, analysis_input(**bad), viewer=SYSTEM, claim_id=task.claim_id)

    assert await _counts(db) == before


async def test_a_second_analysis_is_refused_unless_replacement_is_asked_for(db: Database) -> None:
    # given
    async with db.transaction() as session:
        task = await make_processing_task(session, await make_user(session))
        await record_analysis(session, task.id, analysis_input(), viewer=SYSTEM, claim_id=task.claim_id)
    before = await _counts(db)

    # when / then
    with pytest.raises(Conflict, match="already has an analysis"):
        async with db.transaction() as session:
            await record_analysis(session, task.id, analysis_input(verdict="APPROVED"), viewer=SYSTEM,
                                  claim_id=task.claim_id)
    assert await _counts(db) == before

    async with db.transaction() as session:
        replaced = await record_analysis(
            session, task.id, analysis_input(verdict="APPROVED", findings=[]), viewer=SYSTEM, replace=True,
            claim_id=task.claim_id,
        )
    counts = await _counts(db)
    assert replaced.verdict is Verdict.APPROVED
    assert (counts["analyses"], counts["findings"], counts["source_references"]) == (1, 0, 0)


async def test_an_analysis_for_a_queued_task_is_a_conflict(db: Database) -> None:
    async with db.transaction() as session:
        task = await make_task(session, await make_user(session))
    before = await _counts(db)

    with pytest.raises(Conflict, match="PROCESSING or COMPLETED"):
        async with db.transaction() as session:
            await record_analysis(session, task.id, analysis_input(), viewer=SYSTEM, claim_id=task.claim_id)

    assert await _counts(db) == before

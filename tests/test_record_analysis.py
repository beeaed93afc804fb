"""recordAnalysis over HTTP: the analysis, its findings and their sources, all or nothing."""

import uuid
from typing import Any

import pytest

from db.enums import Role
from db.models import Task
from graph.relay import to_global_id
from tests.api import Api, error_codes
from tests.factories import make_processing_task, make_task
from tests.rows import snapshot, user_by_email

RECORD = """
mutation($input: RecordAnalysisInput!) {
  recordAnalysis(input: $input) {
    analysis {
      verdict complianceScore confidenceScore summary extractionResult
      findings { severity ruleId message evidence confidence sources { pageNumber section snippet } }
      task { id }
    }
    task { id status analysis { verdict } events { edges { node { type data } } } }
  }
}
"""


def analysis(task_id: uuid.UUID, claim_id: uuid.UUID | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        "taskId": to_global_id("Task", task_id),
        "claimId": None if claim_id is None else str(claim_id),
        "verdict": "REVIEW",
        "complianceScore": 72.5,
        "confidenceScore": 0.9,
        "summary": "two findings",
        "extractionResult": {"pages": 3},
        "findings": [
            {
                "severity": "CRITICAL",
                "ruleId": "GND-01",
                "message": "ground resistance above limit",
                "evidence": {"measured": 12.5},
                "confidence": 0.8,
                "sources": [{"pageNumber": 2, "section": "4.1", "snippet": "12.5 ohm"}],
            },
            {"severity": "MINOR", "ruleId": "DOC-03", "message": "signature missing"},
        ],
    } | overrides


@pytest.fixture
async def worker(api: Api) -> str:
    await api.sign_up("owner@example.com")
    return await api.sign_up("pipeline@example.com", Role.WORKER)


@pytest.fixture
async def processing_task(api: Api, worker: str) -> Task:
    owner = await user_by_email(api.database, "owner@example.com")
    async with api.database.transaction() as session:
        return await make_processing_task(session, owner)


async def test_an_analysis_comes_back_with_its_findings_and_sources(
    api: Api, worker: str, processing_task: Task
) -> None:
    # when
    data = await api.data(RECORD, {"input": analysis(processing_task.id, processing_task.claim_id)}, worker)

    # then
    recorded = data["recordAnalysis"]["analysis"]
    assert recorded["verdict"] == "REVIEW"
    assert recorded["complianceScore"] == 72.5
    assert recorded["extractionResult"] == {"pages": 3}
    assert [finding["ruleId"] for finding in recorded["findings"]] == ["GND-01", "DOC-03"]
    assert recorded["findings"][0]["sources"] == [{"pageNumber": 2, "section": "4.1", "snippet": "12.5 ohm"}]
    assert recorded["findings"][0]["evidence"] == {"measured": 12.5}
    task = data["recordAnalysis"]["task"]
    assert task["analysis"] == {"verdict": "REVIEW"}
    assert task["events"]["edges"][-1]["node"]["type"] == "ANALYSIS_RECORDED"


@pytest.mark.parametrize(
    "overrides",
    [
        {"complianceScore": 100.5},
        {"complianceScore": -1},
        {"confidenceScore": 1.5},
        {"findings": [{"severity": "MAJOR", "ruleId": "X-1", "message": "m", "confidence": 2}]},
        {"findings": [{"severity": "MAJOR", "ruleId": "X-1", "message": "m", "sources": [{"pageNumber": 0}]}]},
        {"findings": [{"severity": "MAJOR", "ruleId": " ", "message": "m"}]},
    ],
    ids=["score-above-100", "score-below-0", "confidence-above-1", "finding-confidence", "page-0", "blank-rule"],
)
async def test_an_out_of_range_value_is_refused_and_changes_nothing(
    api: Api, worker: str, processing_task: Task, overrides: dict[str, Any]
) -> None:
    # given
    before = await snapshot(api.database)

    # when
    body = await api.post(RECORD, {"input": analysis(processing_task.id, processing_task.claim_id, **overrides)}, worker)

    # then
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await snapshot(api.database) == before


async def test_a_failure_halfway_through_leaves_no_analysis_and_no_finding(
    api: Api, worker: str, processing_task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the analysis, findings and sources are written, then the event fails
    before = await snapshot(api.database)

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("db.analyses.add_event", fail)

    # when
    body = await api.post(RECORD, {"input": analysis(processing_task.id, processing_task.claim_id)}, worker)

    # then
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert await snapshot(api.database) == before


async def test_a_second_analysis_is_a_conflict_unless_it_replaces_the_first(
    api: Api, worker: str, processing_task: Task
) -> None:
    # given
    await api.data(RECORD, {"input": analysis(processing_task.id, processing_task.claim_id)}, worker)
    before = await snapshot(api.database)

    # when
    refused = await api.post(RECORD, {"input": analysis(processing_task.id, processing_task.claim_id, verdict="APPROVED")}, worker)
    replaced = await api.data(
        RECORD, {"input": analysis(processing_task.id, processing_task.claim_id, verdict="APPROVED", findings=[], replace=True)}, worker
    )

    # then
    assert error_codes(refused) == ["CONFLICT"]
    assert replaced["recordAnalysis"]["analysis"]["verdict"] == "APPROVED"
    assert replaced["recordAnalysis"]["analysis"]["findings"] == []
    assert len((await snapshot(api.database))["findings"]) == 0
    assert len(before["findings"]) == 2


async def test_an_analysis_of_a_queued_task_is_a_conflict(api: Api, worker: str) -> None:
    owner = await user_by_email(api.database, "owner@example.com")
    async with api.database.transaction() as session:
        task = await make_task(session, owner)
    before = await snapshot(api.database)

    body = await api.post(RECORD, {"input": analysis(task.id)}, worker)

    assert error_codes(body) == ["CONFLICT"]
    assert await snapshot(api.database) == before


async def test_an_analysis_of_an_unknown_task_is_not_found(api: Api, worker: str) -> None:
    body = await api.post(RECORD, {"input": analysis(uuid.uuid4())}, worker)

    assert error_codes(body) == ["NOT_FOUND"]


async def test_a_user_cannot_record_an_analysis(api: Api, worker: str, processing_task: Task) -> None:
    user = await api.login("owner@example.com")
    before = await snapshot(api.database)

    body = await api.post(RECORD, {"input": analysis(processing_task.id, processing_task.claim_id)}, user)

    assert error_codes(body) == ["FORBIDDEN"]
    assert await snapshot(api.database) == before

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
from tests.sql_counter import count_statements

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


async def test_a_second_analysis_under_the_same_claim_is_already_exists_unless_it_replaces_the_first(
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
    assert error_codes(refused) == ["ALREADY_EXISTS"]
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


def many_findings(count: int) -> list[dict[str, Any]]:
    return [
        {"severity": ("CRITICAL", "MAJOR", "MINOR", "INFO")[number % 4], "ruleId": f"R-{number:04d}",
         "message": f"finding {number}", "evidence": {"number": number, "note": "é ✓"}, "confidence": 0.5,
         "sources": [{"pageNumber": number + 1, "section": "1", "snippet": f"a{number}"},
                     {"pageNumber": number + 2, "snippet": f"b{number}"}]}
        for number in range(count)
    ]


READ_FINDINGS = """
query($t: ID!) {
  task(id: $t) { analysis { findingCounts { total } findings { ruleId severity evidence confidence createdAt
    sources { pageNumber section snippet } } } }
}
"""


async def test_a_thousand_findings_are_written_set_wise_and_read_back_whole(
    api: Api, worker: str, processing_task: Task
) -> None:
    # given: the statements recording 10 findings take
    few_task = processing_task
    owner = await user_by_email(api.database, "owner@example.com")
    async with api.database.transaction() as session:
        many_task = await make_processing_task(session, owner)
    await api.data("{ me { id } }", token=worker)  # the worker's role, read once and cached
    with count_statements(api.database) as few:
        await api.data(RECORD, {"input": analysis(few_task.id, few_task.claim_id, findings=many_findings(10))}, worker)

    # when
    with count_statements(api.database) as many:
        await api.data(RECORD, {"input": analysis(many_task.id, many_task.claim_id,
                                                  findings=many_findings(1000))}, worker)
    read = await api.data(READ_FINDINGS, {"t": to_global_id("Task", many_task.id)}, await api.login("owner@example.com"))

    # then: as many statements for 1,000 findings as for 10, and every value back as sent
    assert len(many) == len(few), many
    findings = read["task"]["analysis"]["findings"]
    assert read["task"]["analysis"]["findingCounts"]["total"] == 1000
    sent = {finding["ruleId"]: finding for finding in many_findings(1000)}
    for finding in findings:
        expected = sent[finding["ruleId"]]
        assert (finding["severity"], finding["evidence"], finding["confidence"]) == (
            expected["severity"], expected["evidence"], expected["confidence"])
        assert finding["sources"] == [{"section": None} | source for source in expected["sources"]]
        assert finding["createdAt"].endswith("+00:00")


async def test_a_bad_finding_far_down_the_list_is_bad_input_naming_its_place_and_changes_nothing(
    api: Api, worker: str, processing_task: Task
) -> None:
    # given
    findings = many_findings(500)
    findings[321]["sources"][1]["pageNumber"] = 0
    before = await snapshot(api.database)

    # when
    body = await api.post(RECORD, {"input": analysis(processing_task.id, processing_task.claim_id,
                                                     findings=findings)}, worker)

    # then
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == "findings.321.sources.1.pageNumber: Input should be greater than or equal to 1"
    assert await snapshot(api.database) == before


async def test_findings_written_in_the_document_itself_are_recorded(
    api: Api, worker: str, processing_task: Task
) -> None:
    document = """
    mutation($t: ID!, $c: ID!) {
      recordAnalysis(input: {taskId: $t, claimId: $c, verdict: APPROVED, findings: [
        {severity: MAJOR, ruleId: "LIT-1", message: "inline", evidence: {a: [1, 2]}, sources: [{pageNumber: 3}]}
      ]}) { analysis { findings { severity ruleId evidence sources { pageNumber } } } }
    }
    """

    data = await api.data(document, {"t": to_global_id("Task", processing_task.id),
                                      "c": str(processing_task.claim_id)}, worker)

    assert data["recordAnalysis"]["analysis"]["findings"] == [
        {"severity": "MAJOR", "ruleId": "LIT-1", "evidence": {"a": [1, 2]}, "sources": [{"pageNumber": 3}]}]


ADD_ARTIFACT = """
mutation($t: ID!, $c: ID, $file: Upload!) { addArtifact(taskId: $t, claimId: $c, file: $file, kind: "photo") {
  artifact { id } } }
"""


async def test_a_finding_may_name_an_artifact_of_its_task_by_its_global_id(
    api: Api, worker: str, processing_task: Task
) -> None:
    # given
    task, claim = to_global_id("Task", processing_task.id), str(processing_task.claim_id)
    added = await api.upload(ADD_ARTIFACT, {"t": task, "c": claim, "file": None}, {"file": ("p.txt", b"a photo")},
                             worker)
    artifact = added.json()["data"]["addArtifact"]["artifact"]["id"]
    findings = many_findings(3)
    findings[1]["artifactId"] = artifact

    # when
    document = "mutation($input: RecordAnalysisInput!) { recordAnalysis(input: $input) { analysis { findings { ruleId artifact { id } } } } }"
    data = await api.data(document, {"input": analysis(processing_task.id, processing_task.claim_id,
                                                       findings=findings)}, worker)

    # then
    assert {f["ruleId"]: f["artifact"] for f in data["recordAnalysis"]["analysis"]["findings"]} == {
        "R-0000": None, "R-0001": {"id": artifact}, "R-0002": None}

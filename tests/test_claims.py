"""Fencing over HTTP: every pipeline write names its claim, and a claim that is no longer the task's changes nothing."""

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from db.base import utcnow
from db.enums import Role
from db.leases import requeue_expired_leases
from db.models import Task
from db.settings import Settings
from graph.relay import to_global_id
from tests.api import Api, error_codes
from tests.conftest import make_settings
from tests.factories import make_task
from tests.rows import snapshot, user_by_email

CLAIM = "mutation { claimNextTask { claimId attempt leaseExpiresAt task { id status } } }"
UPDATE_STATUS = """
mutation($taskId: ID!, $status: TaskStatus!, $claim: ID) {
  updateTaskStatus(taskId: $taskId, status: $status, claimId: $claim) {
    task { status } claim { claimId attempt }
  }
}
"""
REPORT_PROGRESS = """
mutation($taskId: ID!, $claim: ID!) { reportProgress(taskId: $taskId, claimId: $claim, percent: 50) { event { type } } }
"""
HEARTBEAT = "mutation($taskId: ID!, $claim: ID!) { heartbeat(taskId: $taskId, claimId: $claim) { leaseExpiresAt } }"
RECORD = """
mutation($taskId: ID!, $claim: ID) {
  recordAnalysis(input: {taskId: $taskId, claimId: $claim, verdict: APPROVED}) { analysis { verdict } }
}
"""
ADD_ARTIFACT = """
mutation($taskId: ID!, $claim: ID, $file: Upload!) {
  addArtifact(taskId: $taskId, claimId: $claim, file: $file, kind: "report") { artifact { index } }
}
"""


@pytest.fixture
def settings(database_url: str, data_dir: Path) -> Settings:
    # No sweep during a test: a lease that lapses stays PROCESSING until a write meets it.
    return make_settings(database_url, data_dir, lease_check_seconds=3600)


@pytest.fixture
async def worker(api: Api) -> str:
    await api.sign_up("owner@example.com")
    return await api.sign_up("pipeline@example.com", Role.WORKER)


async def queued(api: Api) -> uuid.UUID:
    owner = await user_by_email(api.database, "owner@example.com")
    async with api.database.transaction() as session:
        return (await make_task(session, owner)).id


async def claim(api: Api, token: str) -> dict[str, Any]:
    claimed = (await api.data(CLAIM, token=token))["claimNextTask"]
    assert claimed is not None
    return claimed


async def expire_lease(api: Api, task_id: uuid.UUID) -> None:
    """What the service does to a claim whose worker fell silent, without waiting for the lease to run out."""
    async with api.database.transaction() as session:
        await session.execute(
            update(Task).where(Task.id == task_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        assert await requeue_expired_leases(session, max_attempts=3) == 1


async def lapse_lease(api: Api, task_id: uuid.UUID) -> None:
    """A lease that ran out and that no sweep has met yet."""
    async with api.database.transaction() as session:
        await session.execute(
            update(Task).where(Task.id == task_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def pipeline_write(api: Api, token: str, mutation: str, task_id: uuid.UUID, claim_id: str | None) -> dict[str, Any]:
    variables = {"taskId": to_global_id("Task", task_id), "claim": claim_id}
    if mutation == "addArtifact":
        response = await api.upload(ADD_ARTIFACT, variables | {"file": None}, {"file": ("r.txt", b"a report")}, token)
        assert response.status_code == 200, response.text
        return response.json()
    document = {"updateTaskStatus": UPDATE_STATUS, "reportProgress": REPORT_PROGRESS, "recordAnalysis": RECORD,
                "heartbeat": HEARTBEAT}
    if mutation == "updateTaskStatus":
        variables["status"] = "COMPLETED"
    return await api.post(document[mutation], variables, token)


PIPELINE_WRITES = ["updateTaskStatus", "reportProgress", "recordAnalysis", "addArtifact"]


@pytest.mark.parametrize("mutation", PIPELINE_WRITES)
async def test_a_write_under_the_claim_of_a_requeued_and_reclaimed_task_is_a_conflict_and_changes_nothing(
    api: Api, worker: str, mutation: str, data_dir: Path
) -> None:
    # given: the first claim's lease ran out and the task was claimed again
    task_id = await queued(api)
    first = await claim(api, worker)
    await expire_lease(api, task_id)
    second = await claim(api, worker)
    before = await snapshot(api.database)

    # when
    body = await pipeline_write(api, worker, mutation, task_id, first["claimId"])

    # then
    assert error_codes(body) == ["CONFLICT"], body
    assert "no longer the task's" in body["errors"][0]["message"]
    assert second["attempt"] == 2 and second["task"]["id"] == first["task"]["id"]
    assert await snapshot(api.database) == before
    assert not any(path.is_file() for path in (data_dir / "files").rglob("*"))


@pytest.mark.parametrize("mutation", [*PIPELINE_WRITES, "heartbeat"])
async def test_a_write_under_a_lapsed_lease_is_a_conflict_before_any_sweep_and_changes_nothing(
    api: Api, worker: str, mutation: str, data_dir: Path
) -> None:
    # given: the claim's lease ran out, and the task is still PROCESSING under it
    task_id = await queued(api)
    claimed = await claim(api, worker)
    await lapse_lease(api, task_id)
    before = await snapshot(api.database)

    # when
    body = await pipeline_write(api, worker, mutation, task_id, claimed["claimId"])

    # then: refused at once, and the lease is not renewed (heartbeat, reportProgress) either
    assert error_codes(body) == ["CONFLICT"], body
    assert "lease expired" in body["errors"][0]["message"]
    assert await snapshot(api.database) == before
    assert not any(path.is_file() for path in (data_dir / "files").rglob("*"))


# reportProgress and heartbeat take claimId as a required argument.
@pytest.mark.parametrize("mutation", ["updateTaskStatus", "recordAnalysis", "addArtifact"])
async def test_a_write_to_a_task_being_processed_that_names_no_claim_is_a_conflict(
    api: Api, worker: str, mutation: str
) -> None:
    task_id = await queued(api)
    await claim(api, worker)
    before = await snapshot(api.database)

    body = await pipeline_write(api, worker, mutation, task_id, None)

    assert error_codes(body) == ["CONFLICT"], body
    assert await snapshot(api.database) == before


async def test_the_claim_holder_writes_then_completes_its_task(api: Api, worker: str) -> None:
    # given
    task_id = await queued(api)
    claimed = await claim(api, worker)

    # when
    writes = {mutation: await pipeline_write(api, worker, mutation, task_id, claimed["claimId"])
              for mutation in ("reportProgress", "addArtifact", "recordAnalysis", "updateTaskStatus")}

    # then
    assert {mutation: body.get("errors") for mutation, body in writes.items()} == dict.fromkeys(writes)
    assert writes["updateTaskStatus"]["data"]["updateTaskStatus"]["task"]["status"] == "COMPLETED"


async def test_a_heartbeat_extends_the_lease_and_a_stale_one_is_a_conflict(api: Api, worker: str) -> None:
    # given
    task_id = await queued(api)
    first = await claim(api, worker)

    # when
    renewed = await api.data(HEARTBEAT, {"taskId": to_global_id("Task", task_id), "claim": first["claimId"]}, worker)
    await expire_lease(api, task_id)
    stale = await api.post(HEARTBEAT, {"taskId": to_global_id("Task", task_id), "claim": first["claimId"]}, worker)

    # then
    assert renewed["heartbeat"]["leaseExpiresAt"] > first["leaseExpiresAt"]
    assert error_codes(stale) == ["CONFLICT"]


async def test_moving_a_queued_task_to_processing_claims_it_for_the_caller(api: Api, worker: str) -> None:
    task_id = await queued(api)

    data = await api.data(UPDATE_STATUS, {"taskId": to_global_id("Task", task_id), "status": "PROCESSING"}, worker)

    moved = data["updateTaskStatus"]
    assert moved["task"]["status"] == "PROCESSING"
    assert moved["claim"]["attempt"] == 1
    progress = await api.post(REPORT_PROGRESS, {"taskId": to_global_id("Task", task_id),
                                                "claim": moved["claim"]["claimId"]}, worker)
    assert "errors" not in progress, progress


async def test_the_owner_cancels_a_task_being_processed_and_its_claim_can_no_longer_write(
    api: Api, worker: str
) -> None:
    # given
    owner = await api.login("owner@example.com")
    task_id = await queued(api)
    claimed = await claim(api, worker)

    # when
    cancelled = await api.data("mutation($t: ID!) { cancelTask(taskId: $t) { task { status } } }",
                               {"t": to_global_id("Task", task_id)}, owner)
    late = await pipeline_write(api, worker, "addArtifact", task_id, claimed["claimId"])

    # then
    assert cancelled["cancelTask"]["task"]["status"] == "CANCELLED"
    assert error_codes(late) == ["CONFLICT"]


async def test_a_claim_id_that_was_never_issued_is_bad_input(api: Api, worker: str) -> None:
    task_id = await queued(api)
    await claim(api, worker)

    body = await pipeline_write(api, worker, "reportProgress", task_id, "not-a-claim")

    assert error_codes(body) == ["BAD_USER_INPUT"]


RECORD_VERDICT = """
mutation($taskId: ID!, $claim: ID, $verdict: Verdict!) {
  recordAnalysis(input: {taskId: $taskId, claimId: $claim, verdict: $verdict}) { analysis { verdict } }
}
"""
TASK_ANALYSIS = "query($taskId: ID!) { task(id: $taskId) { analysis { verdict } events { edges { node { data } } } } }"


async def test_the_next_attempt_records_its_analysis_over_the_one_a_lapsed_attempt_left(
    api: Api, worker: str
) -> None:
    # given: the first attempt recorded an analysis, then its lease ran out and the task was claimed again
    task_id = await queued(api)
    first = await claim(api, worker)
    task = to_global_id("Task", task_id)
    await api.data(RECORD_VERDICT, {"taskId": task, "claim": first["claimId"], "verdict": "REJECTED"}, worker)
    await expire_lease(api, task_id)
    second = await claim(api, worker)

    # when: the second attempt records its own, without asking to replace anything
    recorded = await api.post(RECORD_VERDICT, {"taskId": task, "claim": second["claimId"], "verdict": "APPROVED"},
                              worker)

    # then
    assert "errors" not in recorded, recorded
    owner = await api.login("owner@example.com")
    view = (await api.data(TASK_ANALYSIS, {"taskId": task}, owner))["task"]
    assert view["analysis"] == {"verdict": "APPROVED"}
    assert view["events"]["edges"][-1]["node"]["data"]["replaced"] is True


async def test_a_second_analysis_under_the_same_claim_is_already_exists_and_a_stale_claim_is_a_conflict(
    api: Api, worker: str
) -> None:
    # given
    task_id = await queued(api)
    first = await claim(api, worker)
    task = to_global_id("Task", task_id)
    await api.data(RECORD_VERDICT, {"taskId": task, "claim": first["claimId"], "verdict": "REJECTED"}, worker)

    # when
    again = await api.post(RECORD_VERDICT, {"taskId": task, "claim": first["claimId"], "verdict": "APPROVED"}, worker)
    await expire_lease(api, task_id)
    await claim(api, worker)
    stale = await api.post(RECORD_VERDICT, {"taskId": task, "claim": first["claimId"], "verdict": "APPROVED"}, worker)

    # then: two codes, two messages, each saying what to do
    assert error_codes(again) == ["ALREADY_EXISTS"]
    assert "replace: true" in again["errors"][0]["message"]
    assert error_codes(stale) == ["CONFLICT"]
    assert "claim another task" in stale["errors"][0]["message"]

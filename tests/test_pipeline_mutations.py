"""The pipeline's mutations over HTTP: the work queue, the lifecycle, progress and artifacts."""

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from db.enums import Role, TaskStatus
from db.models import Artifact, Task, TaskEvent
from graph.relay import to_global_id
from tests.api import Api, error_codes
from tests.factories import make_task, move_task
from tests.rows import snapshot, user_by_email

CLAIM = "mutation { claimNextTask { claimId attempt leaseExpiresAt task { id status startedAt } } }"
UPDATE_STATUS = """
mutation($taskId: ID!, $status: TaskStatus!, $expected: TaskStatus, $error: String, $claim: ID) {
  updateTaskStatus(taskId: $taskId, status: $status, expectedStatus: $expected, errorMessage: $error,
                   claimId: $claim) {
    task { id status startedAt completedAt errorMessage events { edges { node { type data } } } }
  }
}
"""
REPORT_PROGRESS = """
mutation($taskId: ID!, $claim: ID!, $percent: Int!, $message: String) {
  reportProgress(taskId: $taskId, claimId: $claim, percent: $percent, message: $message) {
    event { sequence type data }
    task { id status }
  }
}
"""
ADD_ARTIFACT = """
mutation($taskId: ID!, $file: Upload!, $kind: String!, $label: String, $claim: ID) {
  addArtifact(taskId: $taskId, file: $file, kind: $kind, label: $label, claimId: $claim) {
    artifact { id kind label index contentType fileSize downloadUrl }
    task { id artifacts { index } events { edges { node { type data } } } }
  }
}
"""


async def queued_tasks(api: Api, email: str, count: int) -> list[uuid.UUID]:
    owner = await user_by_email(api.database, email)
    ids = []
    for _ in range(count):
        # One transaction each, so created_at orders them.
        async with api.database.transaction() as session:
            ids.append((await make_task(session, owner)).id)
    return ids


async def task_in(api: Api, email: str, status: TaskStatus) -> uuid.UUID:
    (task_id,) = await queued_tasks(api, email, 1)
    path = {
        TaskStatus.QUEUED: [],
        TaskStatus.PROCESSING: [TaskStatus.PROCESSING],
        TaskStatus.COMPLETED: [TaskStatus.PROCESSING, TaskStatus.COMPLETED],
        TaskStatus.FAILED: [TaskStatus.PROCESSING, TaskStatus.FAILED],
        TaskStatus.CANCELLED: [TaskStatus.CANCELLED],
    }[status]
    for step in path:
        async with api.database.transaction() as session:
            await move_task(session, task_id, step)
    return task_id


async def claim_of(api: Api, task_id: uuid.UUID) -> str:
    async with api.database.sessions() as session:
        return str(await session.scalar(select(Task.claim_id).where(Task.id == task_id)))


async def status_of(api: Api, task_id: uuid.UUID) -> TaskStatus:
    async with api.database.sessions() as session:
        return (await session.scalars(select(Task.status).where(Task.id == task_id))).one()


@pytest.fixture
async def worker(api: Api) -> str:
    await api.sign_up("owner@example.com")
    return await api.sign_up("pipeline@example.com", Role.WORKER)


async def test_a_worker_claims_the_oldest_queued_task(api: Api, worker: str) -> None:
    # given
    oldest, _newer = await queued_tasks(api, "owner@example.com", 2)

    # when
    data = await api.data(CLAIM, token=worker)

    # then
    claim = data["claimNextTask"]
    assert claim["task"]["id"] == to_global_id("Task", oldest)
    assert claim["task"]["status"] == "PROCESSING"
    assert claim["task"]["startedAt"] is not None
    assert claim["attempt"] == 1
    assert claim["claimId"] == await claim_of(api, oldest)
    assert claim["leaseExpiresAt"] > claim["task"]["startedAt"]
    assert await status_of(api, oldest) is TaskStatus.PROCESSING


async def test_claiming_with_nothing_queued_returns_null(api: Api, worker: str) -> None:
    await task_in(api, "owner@example.com", TaskStatus.PROCESSING)

    data = await api.data(CLAIM, token=worker)

    assert data["claimNextTask"] is None


async def test_twenty_concurrent_claims_over_ten_queued_tasks_hand_each_task_out_once(
    api: Api, worker: str
) -> None:
    # given
    queued = await queued_tasks(api, "owner@example.com", 10)

    # when
    results = await asyncio.gather(*(api.data(CLAIM, token=worker) for _ in range(20)))

    # then
    claimed = [result["claimNextTask"]["task"]["id"] for result in results if result["claimNextTask"]]
    assert len(claimed) == 10
    assert set(claimed) == {to_global_id("Task", task_id) for task_id in queued}
    assert sum(result["claimNextTask"] is None for result in results) == 10


async def test_a_user_cannot_call_a_worker_mutation_and_nothing_changes(api: Api, worker: str) -> None:
    # given
    user = await api.login("owner@example.com")
    (task_id,) = await queued_tasks(api, "owner@example.com", 1)
    before = await snapshot(api.database)

    # when
    claim = await api.post(CLAIM, token=user)
    update = await api.post(UPDATE_STATUS, {"taskId": to_global_id("Task", task_id), "status": "PROCESSING"}, user)

    # then
    assert error_codes(claim) == ["FORBIDDEN"]
    assert error_codes(update) == ["FORBIDDEN"]
    assert await snapshot(api.database) == before


async def test_completing_a_task_returns_it_with_its_completion_time_and_event(api: Api, worker: str) -> None:
    # given
    task_id = await task_in(api, "owner@example.com", TaskStatus.PROCESSING)

    # when
    data = await api.data(UPDATE_STATUS, {"taskId": to_global_id("Task", task_id), "status": "COMPLETED",
                                          "expected": "PROCESSING", "claim": await claim_of(api, task_id)}, worker)

    # then
    task = data["updateTaskStatus"]["task"]
    assert task["status"] == "COMPLETED"
    assert task["completedAt"] is not None
    assert task["events"]["edges"][-1]["node"] == {
        "type": "STATUS_CHANGED", "data": {"from": "PROCESSING", "to": "COMPLETED"}
    }


async def test_a_failed_task_keeps_its_error_message(api: Api, worker: str) -> None:
    task_id = await task_in(api, "owner@example.com", TaskStatus.PROCESSING)

    data = await api.data(UPDATE_STATUS, {"taskId": to_global_id("Task", task_id), "status": "FAILED",
                                          "error": "OCR engine crashed", "claim": await claim_of(api, task_id)},
                          worker)

    assert data["updateTaskStatus"]["task"]["status"] == "FAILED"
    assert data["updateTaskStatus"]["task"]["errorMessage"] == "OCR engine crashed"


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (TaskStatus.QUEUED, "COMPLETED"),
        (TaskStatus.QUEUED, "FAILED"),
        (TaskStatus.PROCESSING, "QUEUED"),
        (TaskStatus.COMPLETED, "PROCESSING"),
        (TaskStatus.COMPLETED, "CANCELLED"),
        (TaskStatus.FAILED, "COMPLETED"),
        (TaskStatus.CANCELLED, "QUEUED"),
    ],
)
async def test_an_illegal_transition_is_refused_and_changes_nothing(
    api: Api, worker: str, start: TaskStatus, target: str
) -> None:
    # given
    task_id = await task_in(api, "owner@example.com", start)
    before = await snapshot(api.database)

    # when
    body = await api.post(UPDATE_STATUS, {"taskId": to_global_id("Task", task_id), "status": target}, worker)

    # then
    assert error_codes(body) == ["INVALID_TRANSITION"], body
    assert body["errors"][0]["extensions"]["currentStatus"] == start.value, body
    assert await snapshot(api.database) == before


async def test_a_stale_expected_status_is_a_conflict_and_changes_nothing(api: Api, worker: str) -> None:
    task_id = await task_in(api, "owner@example.com", TaskStatus.PROCESSING)
    before = await snapshot(api.database)

    body = await api.post(UPDATE_STATUS, {"taskId": to_global_id("Task", task_id), "status": "PROCESSING",
                                          "expected": "QUEUED"}, worker)

    assert error_codes(body) == ["CONFLICT"]
    assert await snapshot(api.database) == before


async def test_concurrent_updates_with_the_same_expected_status_have_one_winner(api: Api, worker: str) -> None:
    # given
    task_id = await task_in(api, "owner@example.com", TaskStatus.QUEUED)
    variables = {"taskId": to_global_id("Task", task_id), "status": "PROCESSING", "expected": "QUEUED"}

    # when
    results = await asyncio.gather(*(api.post(UPDATE_STATUS, variables, worker) for _ in range(8)))

    # then
    winners = [result for result in results if not result.get("errors")]
    losers = [code for result in results for code in error_codes(result)]
    assert len(winners) == 1
    assert len(losers) == 7
    assert set(losers) <= {"CONFLICT", "INVALID_TRANSITION"}
    async with api.database.sessions() as session:
        events = (await session.scalars(select(TaskEvent.type).where(TaskEvent.task_id == task_id))).all()
    assert len(events) == 2


async def test_an_unknown_task_is_not_found(api: Api, worker: str) -> None:
    body = await api.post(UPDATE_STATUS, {"taskId": to_global_id("Task", uuid.uuid4()), "status": "PROCESSING"},
                          worker)

    assert error_codes(body) == ["NOT_FOUND"]


async def test_a_malformed_task_id_is_bad_input(api: Api, worker: str) -> None:
    body = await api.post(UPDATE_STATUS, {"taskId": "not-an-id", "status": "PROCESSING"}, worker)

    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_progress_is_appended_as_an_event_of_the_task(api: Api, worker: str) -> None:
    task_id = await task_in(api, "owner@example.com", TaskStatus.PROCESSING)

    data = await api.data(REPORT_PROGRESS, {"taskId": to_global_id("Task", task_id), "percent": 40,
                                            "message": "page 2 of 5", "claim": await claim_of(api, task_id)}, worker)

    assert data["reportProgress"]["event"] == {
        "sequence": 3, "type": "PROGRESS", "data": {"percent": 40, "message": "page 2 of 5"}
    }
    assert data["reportProgress"]["task"]["status"] == "PROCESSING"


@pytest.mark.parametrize("percent", [-1, 101])
async def test_progress_outside_0_to_100_is_refused_and_changes_nothing(
    api: Api, worker: str, percent: int
) -> None:
    task_id = await task_in(api, "owner@example.com", TaskStatus.PROCESSING)
    before = await snapshot(api.database)

    body = await api.post(REPORT_PROGRESS, {"taskId": to_global_id("Task", task_id), "percent": percent,
                                            "claim": await claim_of(api, task_id)}, worker)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await snapshot(api.database) == before


async def test_progress_on_a_task_not_being_processed_is_a_conflict(api: Api, worker: str) -> None:
    task_id = await task_in(api, "owner@example.com", TaskStatus.QUEUED)
    before = await snapshot(api.database)

    body = await api.post(REPORT_PROGRESS, {"taskId": to_global_id("Task", task_id), "percent": 10,
                                            "claim": str(uuid.uuid4())}, worker)

    assert error_codes(body) == ["CONFLICT"]
    assert await snapshot(api.database) == before


async def test_artifacts_are_stored_numbered_per_task_and_announced_by_an_event(
    api: Api, worker: str, data_dir: Path
) -> None:
    # given
    task_id = await task_in(api, "owner@example.com", TaskStatus.PROCESSING)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    variables = {"taskId": to_global_id("Task", task_id), "file": None, "kind": "screenshot", "label": "page 1",
                 "claim": await claim_of(api, task_id)}

    # when
    first = await api.upload(ADD_ARTIFACT, variables, {"file": ("p1.png", png)}, token=worker)
    second = await api.upload(ADD_ARTIFACT, variables | {"label": "report"},
                              {"file": ("r.txt", b"the report")}, token=worker)

    # then
    artifact = first.json()["data"]["addArtifact"]["artifact"]
    assert artifact["kind"] == "screenshot"
    assert artifact["label"] == "page 1"
    assert artifact["index"] == 0
    assert artifact["contentType"] == "image/png"
    assert artifact["fileSize"] == str(len(png))
    payload = second.json()["data"]["addArtifact"]
    assert payload["artifact"]["index"] == 1
    assert payload["task"]["artifacts"] == [{"index": 0}, {"index": 1}]
    assert payload["task"]["events"]["edges"][-1]["node"]["type"] == "ARTIFACT_ADDED"
    async with api.database.sessions() as session:
        paths = (await session.scalars(select(Artifact.file_path).order_by(Artifact.index))).all()
    assert (data_dir / "files" / paths[0]).read_bytes() == png


async def test_an_artifact_for_an_unknown_task_is_refused_and_leaves_no_file(
    api: Api, worker: str, data_dir: Path
) -> None:
    variables = {"taskId": to_global_id("Task", uuid.uuid4()), "file": None, "kind": "screenshot"}

    response = await api.upload(ADD_ARTIFACT, variables, {"file": ("a.txt", b"orphan?")}, token=worker)

    assert error_codes(response.json()) == ["NOT_FOUND"]
    assert not any(path.is_file() for path in (data_dir / "files").rglob("*"))

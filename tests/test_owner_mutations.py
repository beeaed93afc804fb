"""cancelTask and deleteTask over HTTP: who may, what changes, which files go."""

from pathlib import Path

import pytest

from db.access import SYSTEM
from db.enums import Role, TaskStatus
from db.tasks import transition_task
from graph.relay import from_global_id
from tests.api import Api, error_codes
from tests.factories import move_task
from tests.rows import snapshot
from tests.test_uploads import UPLOAD, stored_files

CANCEL = "mutation($id: ID!) { cancelTask(taskId: $id) { task { id status completedAt } } }"
DELETE = "mutation($id: ID!) { deleteTask(taskId: $id) { deletedTaskId } }"
TASK = "query($id: ID!) { task(id: $id) { id } }"
ADD_ARTIFACT = """
mutation($taskId: ID!, $file: Upload!) { addArtifact(taskId: $taskId, file: $file, kind: "report") { artifact { id } } }
"""


async def uploaded_task(api: Api, token: str, content: bytes) -> str:
    response = await api.upload(UPLOAD, {"file": None}, {"file": ("a.txt", content)}, token=token)
    return response.json()["data"]["uploadDocument"]["task"]["id"]


@pytest.fixture
async def ann(api: Api) -> str:
    return await api.sign_up("ann@example.com")


@pytest.fixture
async def bob(api: Api) -> str:
    return await api.sign_up("bob@example.com")


async def test_the_owner_cancels_a_queued_task(api: Api, ann: str) -> None:
    task_id = await uploaded_task(api, ann, b"to be cancelled")

    data = await api.data(CANCEL, {"id": task_id}, ann)

    assert data["cancelTask"]["task"]["status"] == "CANCELLED"
    assert data["cancelTask"]["task"]["completedAt"] is not None


async def test_a_worker_cancels_a_processing_task(api: Api, ann: str) -> None:
    worker = await api.sign_up("pipeline@example.com", Role.WORKER)
    task_id = await uploaded_task(api, ann, b"being processed")
    async with api.database.transaction() as session:
        await transition_task(session, from_global_id(task_id)[1], TaskStatus.PROCESSING, viewer=SYSTEM)

    data = await api.data(CANCEL, {"id": task_id}, worker)

    assert data["cancelTask"]["task"]["status"] == "CANCELLED"


async def test_another_user_cannot_cancel_and_learns_nothing(api: Api, ann: str, bob: str) -> None:
    task_id = await uploaded_task(api, ann, b"ann's file")
    before = await snapshot(api.database)

    body = await api.post(CANCEL, {"id": task_id}, bob)

    assert error_codes(body) == ["NOT_FOUND"]
    assert await snapshot(api.database) == before


async def test_a_completed_task_cannot_be_cancelled(api: Api, ann: str) -> None:
    task_id = await uploaded_task(api, ann, b"done")
    async with api.database.transaction() as session:
        for step in (TaskStatus.PROCESSING, TaskStatus.COMPLETED):
            await move_task(session, from_global_id(task_id)[1], step)
    before = await snapshot(api.database)

    body = await api.post(CANCEL, {"id": task_id}, ann)

    assert error_codes(body) == ["INVALID_TRANSITION"]
    assert await snapshot(api.database) == before


async def test_deleting_a_task_removes_its_rows_and_its_file(api: Api, ann: str, data_dir: Path) -> None:
    # given
    task_id = await uploaded_task(api, ann, b"delete me")

    # when
    data = await api.data(DELETE, {"id": task_id}, ann)

    # then
    assert data["deleteTask"]["deletedTaskId"] == task_id
    assert (await api.data(TASK, {"id": task_id}, ann))["task"] is None
    assert all(rows == [] for rows in (await snapshot(api.database)).values())
    assert stored_files(data_dir) == []


async def test_deleting_a_task_removes_its_artifacts_files(api: Api, ann: str, data_dir: Path) -> None:
    # given
    worker = await api.sign_up("pipeline@example.com", Role.WORKER)
    task_id = await uploaded_task(api, ann, b"with an artifact")
    await api.upload(ADD_ARTIFACT, {"taskId": task_id, "file": None}, {"file": ("r.txt", b"the report")},
                     token=worker)
    assert len(stored_files(data_dir)) == 2

    # when
    await api.data(DELETE, {"id": task_id}, ann)

    # then
    assert stored_files(data_dir) == []


async def test_deleting_a_task_keeps_a_file_another_task_still_uses(
    api: Api, ann: str, bob: str, data_dir: Path
) -> None:
    # given
    anns = await uploaded_task(api, ann, b"shared bytes")
    await uploaded_task(api, bob, b"shared bytes")

    # when
    await api.data(DELETE, {"id": anns}, ann)

    # then
    (kept,) = stored_files(data_dir)
    assert kept.read_bytes() == b"shared bytes"


async def test_another_user_cannot_delete_a_task(api: Api, ann: str, bob: str, data_dir: Path) -> None:
    task_id = await uploaded_task(api, ann, b"ann's file")
    before = await snapshot(api.database)

    body = await api.post(DELETE, {"id": task_id}, bob)

    assert error_codes(body) == ["NOT_FOUND"]
    assert await snapshot(api.database) == before
    assert len(stored_files(data_dir)) == 1


async def test_a_worker_cannot_delete_someone_elses_task(api: Api, ann: str) -> None:
    worker = await api.sign_up("pipeline@example.com", Role.WORKER)
    task_id = await uploaded_task(api, ann, b"ann's file")
    before = await snapshot(api.database)

    body = await api.post(DELETE, {"id": task_id}, worker)

    assert error_codes(body) == ["FORBIDDEN"]
    assert await snapshot(api.database) == before


async def test_an_admin_deletes_anyones_task(api: Api, ann: str) -> None:
    admin = await api.sign_up("admin@example.com", Role.ADMIN)
    task_id = await uploaded_task(api, ann, b"ann's file")

    await api.data(DELETE, {"id": task_id}, admin)

    assert (await api.data(TASK, {"id": task_id}, ann))["task"] is None

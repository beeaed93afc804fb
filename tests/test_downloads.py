"""GET /files/...: a task's original file and its artifacts, for whoever may read the task."""

import uuid

import httpx
import pytest

from db.enums import Role
from graph.relay import from_global_id, to_global_id
from tests.api import Api
from tests.test_uploads import UPLOAD

ADD_ARTIFACT = """
mutation($taskId: ID!, $file: Upload!) {
  addArtifact(taskId: $taskId, file: $file, kind: "screenshot") { artifact { downloadUrl } }
}
"""
CONTENT = b"tag,reading\nT-1,550\nT-2,12.5\n"


@pytest.fixture
async def ann(api: Api) -> str:
    return await api.sign_up("ann@example.com")


@pytest.fixture
async def worker(api: Api) -> str:
    return await api.sign_up("pipeline@example.com", Role.WORKER)


async def upload_url(api: Api, token: str, filename: str = "readings é.csv") -> str:
    response = await api.upload(UPLOAD, {"file": None}, {"file": (filename, CONTENT)}, token=token)
    return response.json()["data"]["uploadDocument"]["task"]["downloadUrl"]


@pytest.mark.parametrize("reader", ["ann", "worker"])
async def test_the_owner_and_a_worker_download_the_exact_bytes(
    api: Api, ann: str, worker: str, reader: str
) -> None:
    # given
    url = await upload_url(api, ann)

    token = {"ann": ann, "worker": worker}[reader]

    # when
    response = await api.client.get(url, headers={"Authorization": f"Bearer {token}"})

    # then
    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "readings%20%C3%A9.csv" in response.headers["content-disposition"]
    assert response.headers["x-content-type-options"] == "nosniff"


def assert_coded(response: httpx.Response, code: str) -> None:
    """A refusal reads as GraphQL's do: one coded error carrying the response's request id, no file."""
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": code, "requestId": response.headers["x-request-id"]}


async def test_another_user_gets_not_found(api: Api, ann: str) -> None:
    url = await upload_url(api, ann)
    bob = await api.sign_up("bob@example.com")

    response = await api.client.get(url, headers={"Authorization": f"Bearer {bob}"})

    assert response.status_code == 404
    assert_coded(response, "NOT_FOUND")


async def test_an_unknown_task_is_not_found(api: Api, ann: str) -> None:
    response = await api.client.get(f"/files/tasks/{uuid.uuid4()}", headers={"Authorization": f"Bearer {ann}"})

    assert response.status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"])
async def test_a_download_without_a_valid_token_is_refused(
    api: Api, ann: str, authorization: str | None
) -> None:
    url = await upload_url(api, ann)

    response = await api.client.get(url, headers={"Authorization": authorization} if authorization else {})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="auditgraph"'
    assert_coded(response, "UNAUTHENTICATED")


async def test_an_artifact_downloads_for_the_tasks_owner_but_not_for_another_user(
    api: Api, ann: str, worker: str
) -> None:
    # given
    task_url = await upload_url(api, ann)
    task_id = task_url.rsplit("/", 1)[1]
    png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 64
    added = await api.upload(ADD_ARTIFACT, {"taskId": to_global_id("Task", uuid.UUID(task_id)), "file": None},
                             {"file": ("shot.png", png)}, token=worker)
    url = added.json()["data"]["addArtifact"]["artifact"]["downloadUrl"]
    bob = await api.sign_up("bob@example.com")

    # when
    owners = await api.client.get(url, headers={"Authorization": f"Bearer {ann}"})
    others = await api.client.get(url, headers={"Authorization": f"Bearer {bob}"})

    # then
    assert owners.status_code == 200
    assert owners.content == png
    assert owners.headers["content-type"] == "image/png"
    assert 'filename="screenshot-0.png"' in owners.headers["content-disposition"]
    assert others.status_code == 404


async def test_a_url_task_has_no_file_to_download(api: Api, ann: str) -> None:
    data = await api.data('mutation { submitUrl(url: "https://example.com") { task { id downloadUrl } } }',
                          token=ann)
    task_id = from_global_id(data["submitUrl"]["task"]["id"])[1]

    response = await api.client.get(f"/files/tasks/{task_id}", headers={"Authorization": f"Bearer {ann}"})

    assert data["submitUrl"]["task"]["downloadUrl"] is None
    assert response.status_code == 404

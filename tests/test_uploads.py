"""uploadDocument and submitUrl over HTTP: streaming to content-addressed storage, deduplication, refusals."""

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pypdf import PdfWriter
from sqlalchemy import func, select

from db.models import Task, TaskEvent
from db.settings import Settings
from graph.app import create_app
from tests.api import Api, error_codes
from tests.conftest import make_settings

UPLOAD = """
mutation($file: Upload!) {
  uploadDocument(file: $file) {
    deduplicated
    task { id status originalFilename contentType fileSize fileHash pageCount downloadUrl
           events { edges { node { type } } } }
  }
}
"""
SUBMIT_URL = "mutation($url: String!) { submitUrl(url: $url) { deduplicated task { id status sourceUrl } } }"
LIMIT = 10_000


def stored_files(data_dir: Path) -> list[Path]:
    """Every file in the store and in the staging folder."""
    return sorted(path for path in data_dir.rglob("*") if path.is_file() and path.parent != data_dir)


async def task_count(api: Api) -> int:
    async with api.database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Task)) or 0


async def event_count(api: Api) -> int:
    async with api.database.sessions() as session:
        return await session.scalar(select(func.count()).select_from(TaskEvent)) or 0


def pdf_with_pages(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


async def upload(api: Api, token: str, content: bytes, filename: str = "report.txt") -> dict[str, Any]:
    response = await api.upload(UPLOAD, {"file": None}, {"file": (filename, content)}, token=token)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def limited_api(database_url: str, data_dir: Path) -> AsyncIterator[Api]:
    """The app with an upload limit of LIMIT bytes."""
    settings: Settings = make_settings(database_url, data_dir, max_upload_bytes=LIMIT)
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client=client, database=app.state.database)


async def test_an_upload_becomes_a_queued_task_with_the_size_hash_and_type_of_its_bytes(
    api: Api, data_dir: Path
) -> None:
    # given
    token = await api.sign_up("ann@example.com")
    content = b"insulation resistance: 550 megaohm\n" * 100

    # when
    body = await upload(api, token, content, filename="../../etc/readings.txt")

    # then
    payload = body["data"]["uploadDocument"]
    digest = hashlib.sha256(content).hexdigest()
    assert payload["deduplicated"] is False
    assert payload["task"]["status"] == "QUEUED"
    assert payload["task"]["fileSize"] == str(len(content))
    assert payload["task"]["fileHash"] == digest
    assert payload["task"]["contentType"] == "text/plain"
    assert payload["task"]["originalFilename"] == "readings.txt"
    assert payload["task"]["events"]["edges"] == [{"node": {"type": "CREATED"}}]
    assert (data_dir / "files" / digest[:2] / digest).read_bytes() == content
    assert stored_files(data_dir) == [data_dir / "files" / digest[:2] / digest]


async def test_the_content_type_comes_from_the_bytes_not_from_the_client(api: Api) -> None:
    # given
    token = await api.sign_up("ann@example.com")

    # when: plain text sent as if it were a PDF
    response = await api.upload(
        UPLOAD, {"file": None}, {"file": ("report.pdf", b"not a pdf at all", "application/pdf")}, token=token
    )

    # then
    assert response.json()["data"]["uploadDocument"]["task"]["contentType"] == "text/plain"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"tag,reading,unit\nT-1,550,Mohm\nT-2,12.5,ohm\n", "text/csv"),
        (b'{"tag": "T-1", "readings": [550, 12.5]}', "application/json"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
    ],
)
async def test_csv_json_and_images_are_recognised_from_their_bytes(
    api: Api, content: bytes, expected: str
) -> None:
    token = await api.sign_up("ann@example.com")

    body = await upload(api, token, content, filename="upload.bin")

    assert body["data"]["uploadDocument"]["task"]["contentType"] == expected


async def test_a_pdf_upload_reports_its_page_count(api: Api) -> None:
    token = await api.sign_up("ann@example.com")

    body = await upload(api, token, pdf_with_pages(3), filename="report.pdf")

    task = body["data"]["uploadDocument"]["task"]
    assert task["contentType"] == "application/pdf"
    assert task["pageCount"] == 3


async def test_a_broken_pdf_is_accepted_without_a_page_count(api: Api) -> None:
    token = await api.sign_up("ann@example.com")

    body = await upload(api, token, b"%PDF-1.7\n garbage that is no PDF body", filename="broken.pdf")

    task = body["data"]["uploadDocument"]["task"]
    assert task["contentType"] == "application/pdf"
    assert task["pageCount"] is None


async def test_uploading_the_same_bytes_again_returns_the_same_task_and_stores_nothing_new(
    api: Api, data_dir: Path
) -> None:
    # given
    token = await api.sign_up("ann@example.com")
    first = await upload(api, token, b"the same bytes")
    files_before = stored_files(data_dir)

    # when
    second = await upload(api, token, b"the same bytes", filename="renamed.txt")

    # then
    assert second["data"]["uploadDocument"]["deduplicated"] is True
    assert second["data"]["uploadDocument"]["task"]["id"] == first["data"]["uploadDocument"]["task"]["id"]
    assert second["data"]["uploadDocument"]["task"]["originalFilename"] == "report.txt"
    assert stored_files(data_dir) == files_before
    assert await task_count(api) == 1


async def test_another_user_uploading_the_same_bytes_gets_a_task_of_their_own(
    api: Api, data_dir: Path
) -> None:
    # given
    ann = await api.sign_up("ann@example.com")
    bob = await api.sign_up("bob@example.com")
    first = await upload(api, ann, b"shared bytes")

    # when
    second = await upload(api, bob, b"shared bytes")

    # then
    assert second["data"]["uploadDocument"]["deduplicated"] is False
    assert second["data"]["uploadDocument"]["task"]["id"] != first["data"]["uploadDocument"]["task"]["id"]
    assert await task_count(api) == 2
    assert len(stored_files(data_dir)) == 1


async def test_a_file_over_the_upload_limit_is_refused_and_leaves_no_file_and_no_row(
    limited_api: Api, data_dir: Path
) -> None:
    # given
    token = await limited_api.sign_up("ann@example.com")

    # when
    body = await upload(limited_api, token, b"x" * (LIMIT + 1))

    # then
    assert error_codes(body) == ["PAYLOAD_TOO_LARGE"]
    assert body["data"] is None
    assert stored_files(data_dir) == []
    assert await task_count(limited_api) == 0


async def test_a_file_of_exactly_the_upload_limit_is_accepted(limited_api: Api) -> None:
    token = await limited_api.sign_up("ann@example.com")

    body = await upload(limited_api, token, b"x" * LIMIT)

    assert body["data"]["uploadDocument"]["task"]["fileSize"] == str(LIMIT)


async def test_a_request_declaring_a_body_far_over_the_limit_is_refused_before_it_is_read(
    limited_api: Api, data_dir: Path
) -> None:
    # given
    token = await limited_api.sign_up("ann@example.com")

    # when
    response = await limited_api.upload(UPLOAD, {"file": None}, {"file": ("big.txt", b"x" * (3 * 1024 * 1024))},
                                        token=token)

    # then
    assert response.status_code == 413
    assert error_codes(response.json()) == ["PAYLOAD_TOO_LARGE"]
    assert stored_files(data_dir) == []
    assert await task_count(limited_api) == 0


@pytest.mark.parametrize("headers", [{}, {"Apollo-Require-Preflight": ""}])
async def test_a_multipart_request_without_a_preflight_header_is_refused(
    api: Api, data_dir: Path, headers: dict[str, str]
) -> None:
    # given
    token = await api.sign_up("ann@example.com")

    # when
    response = await api.upload(UPLOAD, {"file": None}, {"file": ("a.txt", b"hello")}, token=token, headers=headers)

    # then
    assert response.status_code == 403
    assert error_codes(response.json()) == ["FORBIDDEN"]
    assert "Apollo-Require-Preflight" in response.json()["errors"][0]["message"]
    assert stored_files(data_dir) == []
    assert await task_count(api) == 0


async def test_the_x_apollo_operation_name_header_also_lets_a_multipart_request_through(api: Api) -> None:
    token = await api.sign_up("ann@example.com")

    response = await api.upload(UPLOAD, {"file": None}, {"file": ("a.txt", b"hello")}, token=token,
                                headers={"X-Apollo-Operation-Name": "Upload"})

    assert response.json()["data"]["uploadDocument"]["task"]["status"] == "QUEUED"


@pytest.mark.parametrize(
    "content",
    [b"\x7fELF\x02\x01\x01" + b"\x00" * 64, b"\x00\x01\x02binary\xff\xfe"],
    ids=["executable", "unknown-binary"],
)
async def test_a_file_of_a_type_not_accepted_is_refused_and_leaves_nothing(
    api: Api, data_dir: Path, content: bytes
) -> None:
    # given
    token = await api.sign_up("ann@example.com")

    # when
    body = await upload(api, token, content, filename="report.pdf")

    # then
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "not accepted" in body["errors"][0]["message"]
    assert stored_files(data_dir) == []
    assert await task_count(api) == 0


async def test_a_zip_archive_is_refused(api: Api, data_dir: Path) -> None:
    token = await api.sign_up("ann@example.com")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.txt", "hello")

    body = await upload(api, token, archive.getvalue(), filename="report.zip")

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert stored_files(data_dir) == []


async def test_an_empty_file_is_refused(api: Api, data_dir: Path) -> None:
    token = await api.sign_up("ann@example.com")

    body = await upload(api, token, b"")

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert stored_files(data_dir) == []


async def test_an_upload_without_a_token_is_refused_and_stores_nothing(api: Api, data_dir: Path) -> None:
    response = await api.upload(UPLOAD, {"file": None}, {"file": ("a.txt", b"hello")})

    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    assert stored_files(data_dir) == []


async def test_a_failure_between_storing_the_file_and_committing_the_row_leaves_no_file_and_no_row(
    api: Api, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    token = await api.sign_up("ann@example.com")

    async def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("db.uploads.create_file_task", fail)

    # when
    body = await upload(api, token, b"bytes that will not be kept")

    # then
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert "database" not in body["errors"][0]["message"]
    assert stored_files(data_dir) == []
    assert await task_count(api) == 0
    assert await event_count(api) == 0


async def test_a_failed_upload_keeps_the_file_another_task_already_references(
    api: Api, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    ann = await api.sign_up("ann@example.com")
    bob = await api.sign_up("bob@example.com")
    await upload(api, ann, b"shared bytes")
    files_before = stored_files(data_dir)

    async def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("db.uploads.create_file_task", fail)

    # when
    body = await upload(api, bob, b"shared bytes")

    # then
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    assert stored_files(data_dir) == files_before
    assert files_before[0].read_bytes() == b"shared bytes"


async def test_a_submitted_url_is_queued_in_its_normal_form(api: Api) -> None:
    token = await api.sign_up("ann@example.com")

    data = await api.data(SUBMIT_URL, {"url": "  HTTPS://Example.COM:443/audit?page=1#top "}, token)

    assert data["submitUrl"]["deduplicated"] is False
    assert data["submitUrl"]["task"]["status"] == "QUEUED"
    assert data["submitUrl"]["task"]["sourceUrl"] == "https://example.com/audit?page=1"


async def test_the_same_url_while_its_task_is_open_returns_that_task(api: Api) -> None:
    # given
    token = await api.sign_up("ann@example.com")
    first = await api.data(SUBMIT_URL, {"url": "https://example.com/a"}, token)

    # when
    second = await api.data(SUBMIT_URL, {"url": "https://EXAMPLE.com/a#again"}, token)

    # then
    assert second["submitUrl"]["deduplicated"] is True
    assert second["submitUrl"]["task"]["id"] == first["submitUrl"]["task"]["id"]
    assert await task_count(api) == 1


@pytest.mark.parametrize("url", ["ftp://example.com/file", "javascript:alert(1)", "example.com", "http://"])
async def test_only_absolute_http_urls_can_be_submitted(api: Api, url: str) -> None:
    token = await api.sign_up("ann@example.com")

    body = await api.post(SUBMIT_URL, {"url": url}, token)

    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await task_count(api) == 0

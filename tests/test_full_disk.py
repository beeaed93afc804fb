"""A full disk is INSUFFICIENT_STORAGE (507 under application/graphql-response+json), leaves nothing behind,
and the server keeps serving. The disks are real: small tmpfs mounts, filled by the uploads themselves."""

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from db.settings import Settings
from graph.app import create_app
from graph.graphql_http import GRAPHQL_RESPONSE_JSON
from tests.api import Api, error_codes
from tests.conftest import make_settings
from tests.rows import snapshot
from tests.small_disk import small_filesystem_or_skip

UPLOAD = "mutation($file: Upload!) { uploadDocument(file: $file) { task { id fileSize } } }"
READ = "{ tasks { totalCount } }"
HEADERS = {"Apollo-Require-Preflight": "true", "Accept": GRAPHQL_RESPONSE_JSON}
DISK_SIZE = "1m"
TOO_LARGE = b"line of text that fills the disk\n" * 64 * 1024  # 2 MiB


async def serving(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client=client, database=app.state.database)


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem_or_skip(tmp_path / "small-data", DISK_SIZE) as mounted:
        yield mounted


@pytest.fixture
def small_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with small_filesystem_or_skip(tmp_path / "small-tmp", DISK_SIZE) as mounted:
        # Where Starlette spools each file part of a multipart request while it parses the body.
        monkeypatch.setattr(tempfile, "tempdir", str(mounted))
        yield mounted


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


async def test_an_upload_larger_than_the_free_data_disk_is_507_leaves_nothing_and_reads_go_on(
    database_url: str, small_data_dir: Path
) -> None:
    # given: the data folder (staging and store) on a 1 MiB disk; the database elsewhere
    async for api in serving(make_settings(database_url, small_data_dir)):
        token = await api.sign_up("owner@example.com")
        before = await snapshot(api.database)

        # when
        refused = await api.upload(UPLOAD, {"file": None}, {"file": ("big.txt", TOO_LARGE)}, token, HEADERS)
        read = await api.post(READ, token=token)
        fits = await api.upload(UPLOAD, {"file": None}, {"file": ("small.txt", b"a small report")}, token, HEADERS)

        # then
        assert refused.status_code == 507, refused.text
        assert refused.headers["content-type"] == GRAPHQL_RESPONSE_JSON
        assert error_codes(refused.json()) == ["INSUFFICIENT_STORAGE"]
        assert "no room" in refused.json()["errors"][0]["message"]
        assert read == {"data": {"tasks": {"totalCount": 0}}}
        assert fits.status_code == 200 and "errors" not in fits.json(), fits.text
        after = await snapshot(api.database)
        assert len(after["tasks"]) == len(before["tasks"]) + 1
        assert [path.relative_to(small_data_dir).parts[0] for path in files_under(small_data_dir)] == ["files"]


async def test_an_upload_larger_than_the_free_temporary_folder_is_507_leaves_nothing_and_reads_go_on(
    settings: Settings, small_temp_dir: Path, data_dir: Path
) -> None:
    async for api in serving(settings):
        # given
        token = await api.sign_up("owner@example.com")
        before = await snapshot(api.database)

        # when
        refused = await api.upload(UPLOAD, {"file": None}, {"file": ("big.txt", TOO_LARGE)}, token, HEADERS)
        read = await api.post(READ, token=token)

        # then
        assert refused.status_code == 507, refused.text
        assert error_codes(refused.json()) == ["INSUFFICIENT_STORAGE"]
        assert "data" not in refused.json()
        assert read == {"data": {"tasks": {"totalCount": 0}}}
        assert await snapshot(api.database) == before
        assert files_under(small_temp_dir) == []
        assert files_under(data_dir / "staging") + files_under(data_dir / "files") == []

"""A full disk is INSUFFICIENT_STORAGE (507 under application/graphql-response+json), leaves nothing behind,
and the server keeps serving. The disks are real: small tmpfs mounts, filled by the uploads themselves."""

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from db.settings import Settings
from graph.app import create_app
from graph.http.negotiation import GRAPHQL_RESPONSE_JSON
from tests.api import Api, error_codes
from tests.conftest import make_settings, run_in_thread
from tests.rows import snapshot
from tests.small_disk import small_filesystem_or_skip
from tests.throwaway_postgres import PostgresServer

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


SUBMIT_URL = 'mutation { submitUrl(url: "https://example.com/report") { task { id } } }'
REGISTER = 'mutation { register(email: "new@example.com", password: "correct horse battery") { token } }'


def fill(folder: Path) -> Path:
    """Take every free byte of the filesystem under `folder`; removing the returned file frees them."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            with suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    return filler


@pytest.fixture
def database_disk(backend: str, database_url: str, tmp_path: Path, sqlite_template: Path,
                  request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """The test's database with its files on a small disk of its own: (its URL, the disk)."""
    # Not under tmp_path: PostgreSQL's own user must reach the disk, through folders only root may enter.
    mount_point = Path(tempfile.mkdtemp(prefix="auditgraph-db-disk-"))
    mount_point.chmod(0o755)
    with ExitStack() as cleanup:
        # Unmounted lazily: the folder goes once the last file on the disk is closed, maybe later.
        cleanup.callback(lambda: shutil.rmtree(mount_point, ignore_errors=True))
        disk = cleanup.enter_context(small_filesystem_or_skip(mount_point, "24m"))
        if backend == "sqlite":
            shutil.copyfile(sqlite_template, disk / "auditgraph.db")
            yield f"sqlite+aiosqlite:///{disk / 'auditgraph.db'}", disk
            return
        # PostgreSQL: the database's files (its catalogue alone is some 8 MB) in a tablespace on that
        # disk; its WAL stays where it was.
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = database_url.rsplit("/", 1)[1]
        shutil.chown(disk, "postgres", "postgres")
        tablespace = f"small_{name}"

        async def move(statements: list[str]) -> None:
            connection = await asyncpg.connect(server.dsn("postgres"))
            try:
                for statement in statements:
                    await connection.execute(statement)
            finally:
                await connection.close()

        run_in_thread(move([f"CREATE TABLESPACE {tablespace} LOCATION '{disk}'",
                            f"ALTER DATABASE {name} SET TABLESPACE {tablespace}"]))
        try:
            yield database_url, disk
        finally:
            run_in_thread(move([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"DROP TABLESPACE {tablespace}"]))


@pytest.mark.parametrize("write", ["submitUrl", "register"])
async def test_a_write_on_a_full_database_disk_is_507_changes_nothing_and_reads_go_on(
    database_disk: tuple[str, Path], data_dir: Path, write: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, disk = database_disk
    async for api in serving(make_settings(url, data_dir)):
        # given: an account (for submitUrl), then a database disk with no byte free
        token = await api.sign_up("owner@example.com") if write == "submitUrl" else None
        before = await snapshot(api.database)
        filler = fill(disk)
        caplog.clear()

        # when
        refused = await api.client.post("/graphql", json={"query": SUBMIT_URL if token else REGISTER},
                                        headers={"Accept": GRAPHQL_RESPONSE_JSON,
                                                 **({"Authorization": f"Bearer {token}"} if token else {})})
        read = await api.post("{ __typename }" if token is None else READ, token=token)
        unchanged = await snapshot(api.database) == before
        filler.unlink()
        after = await api.post(SUBMIT_URL if token else REGISTER, token=token)

        # then: refused with the code, no traceback logged, nothing written; reads and, with room again, writes go on
        assert refused.status_code == 507, refused.text
        assert error_codes(refused.json()) == ["INSUFFICIENT_STORAGE"]
        assert "no room" in refused.json()["errors"][0]["message"]
        assert [record.getMessage() for record in caplog.records if record.exc_info] == []
        assert "errors" not in read, read
        assert unchanged
        # The same write again, now with room: a register that had been written would now be refused.
        assert "errors" not in after, after

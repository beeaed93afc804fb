"""Every process must share one upload folder: /readyz and `auditgraph check` find a DATA_DIR that is not the
one the database's other processes use."""

import re
import shutil
from pathlib import Path

import httpx

from db.settings import Settings
from db.storage_marker import MARKERS
from tests.cli import run_cli, serve_processes


def environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    return {"DATABASE_URL": settings.database_url, "DATA_DIR": str(data_dir), "SECRET_KEY": settings.secret_key,
            "LOG_LEVEL": "warning"}


def readiness(url: str) -> tuple[int, str]:
    response = httpx.get(f"{url}/readyz", timeout=10)
    return response.status_code, response.json().get("storage")


def test_processes_that_share_one_data_dir_are_ready(settings: Settings) -> None:
    # given
    shared = environment(settings, settings.data_dir)

    # when
    with serve_processes(shared, shared) as urls:
        answers = [readiness(url) for url in urls]
    checked = run_cli("check", **shared)

    # then
    assert answers == [(200, "shared"), (200, "shared")]
    assert checked.returncode == 0, checked.stdout
    assert re.search(r"^storage\s+ok\s+uploads writable in .*, the folder every process shares", checked.stdout,
                     re.M), checked.stdout


def test_a_process_with_another_data_dir_is_not_ready_and_check_says_why(settings: Settings, tmp_path: Path) -> None:
    # given: a process on the deployment's DATA_DIR, then one on a folder of its own, on the same database
    elsewhere = tmp_path / "elsewhere"

    # when
    with serve_processes(environment(settings, settings.data_dir), environment(settings, elsewhere)) as urls:
        first = readiness(urls[0])
        second = readiness(urls[1])
    checked = run_cli("check", **environment(settings, elsewhere))

    # then
    assert first == (200, "shared")
    assert second == (503, "not shared")
    assert checked.returncode == 1
    assert re.search(rf"^storage\s+FAILED {re.escape(str(elsewhere / 'files'))} does not hold the storage marker this "
                     r"database names \(\.storage-markers/[0-9a-f-]{36}\): every process must use the same DATA_DIR",
                     checked.stdout, re.M), checked.stdout


async def test_readyz_is_not_ready_once_the_marker_is_gone_from_the_upload_folder(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # given: ready, then the folder replaced by an empty one (a volume that did not mount, say)
    before = await client.get("/readyz")
    shutil.rmtree(settings.upload_dir / MARKERS)

    # when
    after = await client.get("/readyz")

    # then
    assert (before.status_code, before.json()["storage"]) == (200, "shared")
    assert (after.status_code, after.json()["storage"]) == (503, "not shared")

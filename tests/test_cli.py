import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from db import migrations
from db.engine import create_engine
from tests.cli import free_port, run_cli, start_cli
from tests.conftest import make_settings


def test_serve_on_the_embedded_default_creates_a_wal_database_at_head(tmp_path: Path) -> None:
    # given
    data_dir = tmp_path / "fresh"
    port = free_port()

    # when
    server = start_cli("serve", "--port", str(port), DATA_DIR=str(data_dir))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)

    # then
    assert (response.status_code, response.json()["schema"]) == (200, "head")
    with sqlite3.connect(data_dir / "auditgraph.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_serve_refuses_a_default_secret_in_production(tmp_path: Path) -> None:
    result = run_cli("serve", DATA_DIR=str(tmp_path), ENVIRONMENT="production")
    assert result.returncode == 1
    assert "SECRET_KEY must be set" in result.stderr


def test_serve_refuses_a_short_secret_in_production(tmp_path: Path) -> None:
    result = run_cli("serve", DATA_DIR=str(tmp_path), ENVIRONMENT="production", SECRET_KEY="short")
    assert result.returncode == 1
    assert "SECRET_KEY must be set" in result.stderr


async def test_migrate_upgrades_an_empty_database_to_head(empty_database_url: str, data_dir: Path) -> None:
    # when
    result = run_cli("migrate", "upgrade", DATABASE_URL=empty_database_url, DATA_DIR=str(data_dir))

    # then
    assert result.returncode == 0, result.stderr
    engine = create_engine(make_settings(empty_database_url, data_dir))
    assert await migrations.current_revision(engine) == migrations.head_revision()
    await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_migrate_downgrade_without_a_target_is_refused(empty_database_url: str) -> None:
    result = run_cli("migrate", "downgrade", DATABASE_URL=empty_database_url)
    assert result.returncode == 2
    assert "needs a target revision" in result.stderr


def test_migrate_against_an_unreachable_database_says_so_in_one_line(tmp_path: Path) -> None:
    # given: nothing listens on the port
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/auditgraph"

    # when
    result = run_cli("migrate", DATABASE_URL=url, DATA_DIR=str(tmp_path))

    # then
    assert result.returncode == 1
    assert result.stderr.startswith("the database is unreachable at the moment; retry shortly (")
    assert len(result.stderr.strip().splitlines()) == 1

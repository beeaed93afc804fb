"""The CLI refuses what it cannot honour in one clear line: a port or worker count out of range, an unknown
migration revision; and `auditgraph schema` needs no database at all."""

from pathlib import Path

import pytest

from tests.cli import run_cli


@pytest.mark.parametrize(("option", "value"), [("--port", "99999"), ("--port", "0"), ("--workers", "0")])
def test_serve_refuses_a_port_or_worker_count_out_of_range(option: str, value: str, tmp_path: Path) -> None:
    refused = run_cli("serve", option, value, DATA_DIR=str(tmp_path))

    assert refused.returncode == 2
    assert f"argument {option}" in refused.stderr and value in refused.stderr


def test_schema_needs_no_database_url() -> None:
    printed = run_cli("schema", DATABASE_URL="mysql://nobody@nowhere/none")

    assert printed.returncode == 0, printed.stderr
    assert "type Query" in printed.stdout


def test_an_unknown_migration_revision_is_one_clear_line(database_url: str, data_dir: Path) -> None:
    refused = run_cli("migrate", "upgrade", "nosuchrevision", DATABASE_URL=database_url, DATA_DIR=str(data_dir))

    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        "cannot migrate: Can't locate revision identified by 'nosuchrevision'"]

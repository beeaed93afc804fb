"""The `auditgraph` command as an operator meets it: help everywhere, accounts, status and checks,
demo data, and failures that are one line and an exit code, never a traceback, a secret or a hash."""

import argparse
import re
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, update

from db.engine import Database
from db.models import OwnerFigures
from db.settings import Settings
from graph.app import create_app
from graph.cli.main import build_parser
from tests.cli import PROJECT_ROOT, cli_environment, free_port, run_cli
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
LOGIN = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }"
# The queries README.md shows after `auditgraph demo`.
README_TASKS = """{
  tasks(first: 10) {
    totalCount
    edges { node { status originalFilename sourceUrl
                   analysis { verdict complianceScore findings { severity ruleId message sources { section snippet } } }
                   events { edges { node { sequence type data } } } } }
  }
}"""
README_DASHBOARD = "{ dashboard { totalTasks tasksByStatus { status count } findingsBySeverity { severity count } } }"


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(parsers(child))
    return found


def assert_one_clean_line(result: subprocess.CompletedProcess[str], *secrets: str) -> str:
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for secret in ("Traceback", "$argon2", *secrets):
        assert secret not in result.stderr
    return lines[0]


def test_every_command_and_option_has_help() -> None:
    for parser in parsers(build_parser()):
        assert parser.description, parser.prog
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), parser.prog
            else:
                assert action.help, f"{parser.prog} {action.dest}"


def test_schema_prints_the_committed_sdl() -> None:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (PROJECT_ROOT / "schema.graphql").read_text()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_accounts_are_created_listed_and_changed(database_url: str) -> None:
    # given
    settings = {"DATABASE_URL": database_url}
    assert run_cli("create-user", "--email", "Ops@Example.com", input=PASSWORD + "\n", **settings).returncode == 0

    # when
    changed = [run_cli("users", "set-role", "ops@example.com", "WORKER", **settings),
               run_cli("users", "set-active", "ops@example.com", "no", **settings),
               run_cli("users", "set-password", "ops@example.com", input="another good password\n", **settings)]
    listed = run_cli("users", "list", **settings)

    # then
    assert [result.returncode for result in changed] == [0, 0, 0], [result.stderr for result in changed]
    assert re.fullmatch(r"ops@example\.com\s+WORKER\s+inactive\s+\S+ \S+\n", listed.stdout)
    assert "$argon2" not in listed.stdout


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_refused_account_change_is_one_line_without_the_hash(database_url: str) -> None:
    settings = {"DATABASE_URL": database_url}
    run_cli("create-user", "--email", "ops@example.com", input=PASSWORD + "\n", **settings)

    duplicate = run_cli("create-user", "--email", "OPS@example.com", input=PASSWORD + "\n", **settings)
    weak = run_cli("users", "set-password", "ops@example.com", input="short\n", **settings)
    unknown = run_cli("users", "set-role", "nobody@example.com", "ADMIN", **settings)

    assert (duplicate.returncode, weak.returncode, unknown.returncode) == (2, 2, 2)
    assert "already exists" in assert_one_clean_line(duplicate)
    assert "10 to 256 characters" in assert_one_clean_line(weak)
    assert "no account" in assert_one_clean_line(unknown)


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    url = f"postgresql://auditgraph:hunter2-secret@127.0.0.1:{free_port()}/auditgraph"
    for command in (["migrate"], ["users", "list"], ["migrate", "status"]):
        result = run_cli(*command, DATABASE_URL=url)
        assert result.returncode == 1
        line = assert_one_clean_line(result, "hunter2-secret")
        assert line.startswith("the database is unreachable at the moment; retry shortly (")
        assert "postgresql+asyncpg://auditgraph:***@127.0.0.1" in line


@pytest.mark.parametrize("url", ["mysql://root:hunter2-secret@db/auditgraph", "not a url hunter2-secret"])
def test_a_database_url_that_cannot_work_is_refused_in_one_line(url: str) -> None:
    result = run_cli("users", "list", DATABASE_URL=url)
    assert result.returncode == 2
    assert assert_one_clean_line(result, "hunter2-secret").startswith("invalid settings: DATABASE_URL: ")


def test_a_command_in_the_wrong_folder_creates_no_database(tmp_path: Path) -> None:
    # given: a folder with no database, as when the command runs with another DATA_DIR than the server's
    empty = tmp_path / "elsewhere"

    # when
    result = run_cli("create-user", "--email", "ops@example.com", input=PASSWORD + "\n", DATA_DIR=str(empty))

    # then
    assert result.returncode == 1
    assert f"no database at {empty / 'auditgraph.db'}" in assert_one_clean_line(result)
    assert not empty.exists()


def test_settings_resolve_to_the_checkout_from_any_folder(tmp_path: Path) -> None:
    # when: the command runs from an unrelated folder with the default DATA_DIR
    result = subprocess.run([str(Path(PROJECT_ROOT / ".venv" / "bin" / "auditgraph")), "check"], cwd=tmp_path,
                            env=cli_environment(), capture_output=True, text=True, timeout=120)

    # then: the data folder is the checkout's, and nothing appeared where the command ran
    assert f"data in {PROJECT_ROOT / 'data'}" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_serve_with_several_workers_is_refused_on_sqlite(tmp_path: Path) -> None:
    result = run_cli("serve", "--workers", "2", DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "needs PostgreSQL" in assert_one_clean_line(result)
    assert not (tmp_path / "auditgraph.db").exists()


def test_migrate_status_says_when_the_schema_is_behind(empty_database_url: str, backend: str, data_dir: Path) -> None:
    # given: an empty database (for SQLite, an empty file)
    if backend == "sqlite":
        sqlite3.connect(data_dir / "auditgraph.db").close()

    # when
    result = run_cli("migrate", "status", DATABASE_URL=empty_database_url)

    # then
    assert result.returncode == 1
    assert result.stdout.startswith("at no revision (empty database); the newest is ")


def test_migrate_status_says_when_the_schema_is_at_head(database_url: str) -> None:
    result = run_cli("migrate", "status", DATABASE_URL=database_url)
    assert (result.returncode, result.stdout[:8]) == (0, "at head ")


async def test_check_passes_on_a_ready_deployment_and_names_what_fails(database_url: str, data_dir: Path) -> None:
    ready = run_cli("check", DATABASE_URL=database_url, DATA_DIR=str(data_dir))
    unreachable = run_cli("check", DATA_DIR=str(data_dir),
                          DATABASE_URL=f"postgresql://auditgraph:hunter2-secret@127.0.0.1:{free_port()}/x")

    assert ready.returncode == 0, ready.stdout
    assert [line.split()[:2] for line in ready.stdout.splitlines()] == [
        ["settings", "ok"], ["database", "ok"], ["schema", "ok"], ["storage", "ok"]]
    assert unreachable.returncode == 1
    assert "database  FAILED the database is unreachable at the moment" in unreachable.stdout
    assert "hunter2-secret" not in unreachable.stdout + unreachable.stderr


async def test_check_figures_recounts_the_dashboard_figures_and_names_one_that_drifted(
    database_url: str, data_dir: Path
) -> None:
    # given: the demo data set, whose figures the domain operations kept
    assert run_cli("demo", DATABASE_URL=database_url, DATA_DIR=str(data_dir)).returncode == 0
    consistent = run_cli("check", "--figures", DATABASE_URL=database_url, DATA_DIR=str(data_dir))
    # ... and then one owner's figure changed behind their back
    database = Database.from_settings(make_settings(database_url, data_dir))
    async with database.transaction() as session:
        await session.execute(update(OwnerFigures).values(queued=OwnerFigures.queued + 7)
                              .where(OwnerFigures.owner_id == select(OwnerFigures.owner_id).limit(1).scalar_subquery()))
    await database.dispose()

    # when
    drifted = run_cli("check", "--figures", DATABASE_URL=database_url, DATA_DIR=str(data_dir))

    # then
    assert consistent.returncode == 0, consistent.stdout
    assert re.search(r"^figures\s+ok\s+\d+ owners, \d+ owner-days and everyone's tasks per day equal a recount", consistent.stdout, re.M)
    assert drifted.returncode == 1
    assert re.search(r"^figures\s+FAILED 1 kept figures differ from a recount: owner [0-9a-f-]+: queued \d+≠\d+$",
                     drifted.stdout, re.M), drifted.stdout


async def test_demo_data_answers_the_readme_queries(database_url: str, data_dir: Path) -> None:
    # given
    result = run_cli("demo", DATABASE_URL=database_url, DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr
    passwords = dict(re.findall(r"^\s+(\S+@demo\.example)\s+\S+\s+(\S+)$", result.stdout, re.MULTILINE))

    # when
    settings: Settings = make_settings(database_url, data_dir)
    app = create_app(settings)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://test") as http:
        async def data(query: str, variables: dict[str, str] | None = None, token: str | None = None) -> dict:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = (await http.post("/graphql", json={"query": query, "variables": variables or {}},
                                    headers=headers)).json()
            assert "errors" not in body, body
            return body["data"]

        ann = (await data(LOGIN, {"email": "ann@demo.example", "password": passwords["ann@demo.example"]}))
        admin = (await data(LOGIN, {"email": "admin@demo.example", "password": passwords["admin@demo.example"]}))
        tasks = (await data(README_TASKS, token=ann["login"]["token"]))["tasks"]
        dashboard = (await data(README_DASHBOARD, token=admin["login"]["token"]))["dashboard"]

    # then
    assert sorted(passwords) == ["admin@demo.example", "ann@demo.example", "bob@demo.example",
                                 "pipeline@demo.example"]
    nodes = [edge["node"] for edge in tasks["edges"]]
    assert {node["status"] for node in nodes} == {"QUEUED", "PROCESSING", "COMPLETED", "CANCELLED"}
    findings = [finding for node in nodes if node["analysis"] for finding in node["analysis"]["findings"]]
    assert findings and all(finding["sources"] for finding in findings)
    assert all(node["events"]["edges"] for node in nodes)
    assert {entry["status"] for entry in dashboard["tasksByStatus"] if entry["count"]} == {
        "QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"}


async def test_demo_is_refused_a_second_time_and_skipped_with_if_empty(database_url: str, data_dir: Path) -> None:
    assert run_cli("demo", DATABASE_URL=database_url, DATA_DIR=str(data_dir)).returncode == 0

    again = run_cli("demo", DATABASE_URL=database_url, DATA_DIR=str(data_dir))
    skipped = run_cli("demo", "--if-empty", DATABASE_URL=database_url, DATA_DIR=str(data_dir))

    assert again.returncode == 2
    assert "already in this database" in assert_one_clean_line(again)
    assert (skipped.returncode, skipped.stdout.strip()) == (0, "the database has accounts already: no demo data added")

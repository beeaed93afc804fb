"""A filename search finds exactly the names that hold its text, ignoring case, however PostgreSQL's
statistics steer it; and with statistics, it asks the trigram index for the rare trigrams only, and one
owner's search reads that owner's names only."""

import json
from typing import Any

import pytest
from sqlalchemy import select, text

from db.access import Viewer
from db.enums import Role
from db.filename_search import index_probes, inner_trigrams
from db.listing import TaskCriteria, task_list, with_filename_probes
from db.models import Task, User
from graph.relay import to_global_id
from tests.api import Api
from tests.factories import make_task
from tests.sql_counter import count_statements

# Every name holds "plant" (as every name of the scale benchmark does), so its trigrams are common.
NAMES = [f"site-photos-plant{i % 40}-{i:07}.jpg" for i in range(80)] + [
    "loan%file.pdf", "b_100.txt", "a/b.pdf", "ÄRGER-Übersicht.pdf", "PLANT17 REPORT.PDF",
]
SEARCHES = ["plant17", "PLANT17", "plant1", "photos", "t17-", "%", "_1", "/b", "ärger", "übersicht", "pl", "0000123",
            "no such name", "plant17 report"]
# Another owner's names hold the same texts: a search must neither find nor count them.
NEIGHBOUR_NAMES = [f"Site-Photos-Plant{i + 10}-{i:07}.JPG" for i in range(15)] + ["plant17 report (copy).pdf"]
TASKS = """query($s: String!, $owner: ID) {
  tasks(first: 100, filter: {filenameContains: $s, ownerId: $owner}) { totalCount edges { node { originalFilename } } }
}"""


def _ascii_lower(value: str) -> str:
    """SQLite's lower(): ASCII letters only (README, "Lists")."""
    return "".join(char.lower() if char.isascii() else char for char in value)


async def _named_tasks(api: Api) -> str:
    token = await api.sign_up("searcher@example.com")
    await api.sign_up("neighbour@example.com")
    async with api.database.transaction() as session:
        for email, names in (("searcher@example.com", NAMES), ("neighbour@example.com", NEIGHBOUR_NAMES)):
            owner = await session.scalar(select(User).where(User.email == email))
            assert owner is not None
            for name in names:
                await make_task(session, owner, original_filename=name)
    if api.database.dialect == "postgresql":
        async with api.database.engine.begin() as connection:
            await connection.execute(text("ANALYZE tasks"))
    return token


async def test_a_search_finds_exactly_the_names_holding_its_text(api: Api) -> None:
    # given
    token = await _named_tasks(api)

    # when
    found = {}
    for search in SEARCHES:
        tasks = (await api.data(TASKS, {"s": search}, token=token))["tasks"]
        found[search] = (tasks["totalCount"], sorted(edge["node"]["originalFilename"] for edge in tasks["edges"]))

    # then
    assert found == _expected(api, NAMES)


def _expected(api: Api, names: list[str]) -> dict[str, tuple[int, list[str]]]:
    fold = _ascii_lower if api.database.dialect == "sqlite" else str.lower
    found = {search: sorted(name for name in names if fold(search) in fold(name)) for search in SEARCHES}
    return {search: (len(names), names) for search, names in found.items()}


async def test_a_worker_searches_everyone_or_one_owner_exactly(api: Api) -> None:
    # given
    await _named_tasks(api)
    worker = await api.sign_up("worker@example.com", Role.WORKER)
    async with api.database.transaction() as session:
        owner = await session.scalar(select(User).where(User.email == "searcher@example.com"))
        assert owner is not None
    owner_id = to_global_id("User", owner.id)

    # when
    everyone: dict[str, tuple[int, list[str]]] = {}
    one_owner: dict[str, tuple[int, list[str]]] = {}
    for search in SEARCHES:
        for found, owner_filter in ((everyone, None), (one_owner, owner_id)):
            tasks = (await api.data(TASKS, {"s": search, "owner": owner_filter}, token=worker))["tasks"]
            found[search] = (tasks["totalCount"], sorted(edge["node"]["originalFilename"] for edge in tasks["edges"]))

    # then
    assert everyone == _expected(api, NAMES + NEIGHBOUR_NAMES)
    assert one_owner == _expected(api, NAMES)


@pytest.mark.parametrize("backend", ["postgresql"])  # statistics steer PostgreSQL's trigram index only
async def test_with_statistics_the_index_is_asked_for_the_rare_trigrams_only(api: Api) -> None:
    # given
    await _named_tasks(api)

    # when
    async with api.database.engine.connect() as connection:
        probes = await index_probes(connection, "plant17")

    # then
    assert probes is not None
    assert set(inner_trigrams("plant17")) == {"pla", "lan", "ant", "nt1", "t17"}
    assert set(probes) == {"t17"}


@pytest.mark.parametrize("backend", ["postgresql"])  # statistics steer PostgreSQL's trigram index only
async def test_without_statistics_the_whole_text_is_looked_up(api: Api) -> None:
    # given: a database no ANALYZE has seen

    # when
    async with api.database.engine.connect() as connection:
        probes = await index_probes(connection, "plant17")

    # then
    assert probes is None


PAGES = """query($s: String!, $after: String) {
  tasks(first: 4, after: $after, filter: {filenameContains: $s}) {
    totalCount totalCountIsExact pageInfo { endCursor hasNextPage } edges { node { originalFilename } }
  }
}"""


async def test_every_page_of_a_search_counts_all_its_matches(api: Api) -> None:
    # given
    token = await _named_tasks(api)
    expected = sorted(name for name in NAMES if "plant1" in name.lower())

    # when
    pages, names, after = [], [], None
    while True:
        tasks = (await api.data(PAGES, {"s": "plant1", "after": after}, token=token))["tasks"]
        pages.append((tasks["totalCount"], tasks["totalCountIsExact"]))
        names += [edge["node"]["originalFilename"] for edge in tasks["edges"]]
        if not tasks["pageInfo"]["hasNextPage"]:
            break
        after = tasks["pageInfo"]["endCursor"]

    # then
    assert sorted(names) == expected
    assert pages == [(len(expected), True)] * len(pages)


@pytest.mark.parametrize("backend", ["postgresql"])  # statistics steer PostgreSQL's trigram index only
async def test_the_first_page_of_a_narrowed_search_counts_its_matches_in_the_same_statement(api: Api) -> None:
    # given
    token = await _named_tasks(api)
    await api.data("{ me { id } }", token=token)

    # when
    with count_statements(api.database) as statements:
        tasks = (await api.data(PAGES, {"s": "plant17", "after": None}, token=token))["tasks"]

    # then: the statistics of its trigrams, then the page with its count
    assert tasks["totalCount"] == len([name for name in NAMES if "plant17" in name.lower()])
    assert len(statements) == 2


def _index_scans(plan: Any) -> dict[str, int]:
    """Each bitmap index scan of an EXPLAIN ANALYZE plan, with the rows it found."""
    if isinstance(plan, list):
        return {name: rows for node in plan for name, rows in _index_scans(node).items()}
    if not isinstance(plan, dict):
        return {}
    scans = {plan["Index Name"]: plan["Actual Rows"]} if plan.get("Node Type") == "Bitmap Index Scan" else {}
    return scans | _index_scans(plan.get("Plan", [])) | _index_scans(plan.get("Plans", []))


@pytest.mark.parametrize("backend", ["postgresql"])  # the owner-tagged trigram index is PostgreSQL's
async def test_an_owners_search_finds_no_other_owners_names_in_the_index(api: Api) -> None:
    # given: both owners' names hold "plant17", and the searcher has enough names that reading them all
    # costs more than the index
    await _named_tasks(api)
    async with api.database.transaction() as session:
        owner = await session.scalar(select(User).where(User.email == "searcher@example.com"))
        assert owner is not None
    async with api.database.engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO tasks (id, user_id, status, original_filename, file_hash) "
            "SELECT gen_random_uuid(), :owner, 'QUEUED', 'filler-' || n || '.pdf', md5(n::text) "
            "FROM generate_series(1, 3000) AS n"), {"owner": owner.id})
        await connection.execute(text("ANALYZE tasks"))
    criteria = await with_filename_probes(api.database, TaskCriteria(filename_contains="plant17"))
    listing = task_list(Viewer(user_id=owner.id, role=Role.USER), criteria, (Task.id,))
    sql = str(listing.compile(dialect=api.database.engine.dialect, compile_kwargs={"literal_binds": True}))

    # when
    async with api.database.engine.connect() as connection:
        plan = (await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).scalar_one()

    # then: the index's candidates are the searcher's own names that hold the probes' trigrams
    probes = criteria.filename_probes
    assert probes
    own = [name for name in NAMES if all(probe in name.lower() for probe in probes)]
    assert _index_scans(json.loads(plan) if isinstance(plan, str) else plan) == {
        "ix_tasks_owner_filename_trigrams": len(own)}

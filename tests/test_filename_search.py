"""A filename search finds exactly the names that hold its text, ignoring case, however PostgreSQL's
statistics steer it; and with statistics, it asks the trigram index for the rare trigrams only."""

import pytest
from sqlalchemy import select, text

from db.filename_search import index_probes, inner_trigrams
from db.models import User
from tests.api import Api
from tests.factories import make_task
from tests.sql_counter import count_statements

# Every name holds "plant" (as every name of the scale benchmark does), so its trigrams are common.
NAMES = [f"site-photos-plant{i % 40}-{i:07}.jpg" for i in range(80)] + [
    "loan%file.pdf", "b_100.txt", "a/b.pdf", "ÄRGER-Übersicht.pdf", "PLANT17 REPORT.PDF",
]
SEARCHES = ["plant17", "PLANT17", "plant1", "photos", "t17-", "%", "_1", "/b", "ärger", "übersicht", "pl", "0000123",
            "no such name", "plant17 report"]
TASKS = "query($s: String!) { tasks(first: 100, filter: {filenameContains: $s}) { totalCount edges { node { originalFilename } } } }"


def _ascii_lower(value: str) -> str:
    """SQLite's lower(): ASCII letters only (README, "Lists")."""
    return "".join(char.lower() if char.isascii() else char for char in value)


async def _named_tasks(api: Api) -> str:
    token = await api.sign_up("searcher@example.com")
    async with api.database.transaction() as session:
        owner = await session.scalar(select(User).where(User.email == "searcher@example.com"))
        assert owner is not None
        for name in NAMES:
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
    fold = _ascii_lower if api.database.dialect == "sqlite" else str.lower
    expected = {search: sorted(name for name in NAMES if fold(search) in fold(name)) for search in SEARCHES}
    assert found == {search: (len(names), names) for search, names in expected.items()}


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

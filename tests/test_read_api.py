import gc
from typing import Any

import pytest
from sqlalchemy import select, update

from db.access import SYSTEM
from db.enums import Role
from db.models import Task, User
from db.tasks import transition_task
from graph.loaders import Loaders
from graph.relay import to_global_id
from tests.api import Api, error_codes
from tests.factories import make_analysed_task, make_task
from tests.sql_counter import count_statements

NESTED = """
query($first: Int) {
  tasks(first: $first) {
    totalCount
    edges { cursor node {
      id status originalFilename fileSize fileHash createdAt durationSeconds
      owner { email }
      analysis {
        verdict complianceScore confidenceScore extractionResult
        findingCounts { critical minor total }
        findings { severity ruleId message evidence remediation confidence sources { pageNumber section snippet } }
      }
      events { totalCount edges { node { sequence type data } } }
      artifacts { id }
    } }
  }
}
"""


async def _owner(api: Api, email: str = "alice@example.com") -> tuple[str, User]:
    token = await api.sign_up(email)
    async with api.database.sessions() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return token, user


async def test_one_request_returns_tasks_owner_analysis_findings_sources_and_events(api: Api) -> None:
    # given
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        task, _analysis = await make_analysed_task(session, owner)

    # when
    data = await api.data(NESTED, {"first": 10}, token)

    # then
    assert data["tasks"]["totalCount"] == 1
    node = data["tasks"]["edges"][0]["node"]
    assert node["id"] == to_global_id("Task", task.id)
    assert (node["status"], node["originalFilename"], node["fileSize"]) == ("PROCESSING", "report.pdf", str(task.file_size))
    assert node["owner"] == {"email": "alice@example.com"}
    assert node["analysis"]["verdict"] == "REVIEW"
    assert node["analysis"]["complianceScore"] == 72.5 and node["analysis"]["confidenceScore"] == 0.9
    assert node["analysis"]["extractionResult"] == {"pages": 3}
    assert node["analysis"]["findingCounts"] == {"critical": 1, "minor": 1, "total": 2}
    assert node["analysis"]["findings"] == [
        {"severity": "CRITICAL", "ruleId": "GND-01", "message": "ground resistance above limit",
         "evidence": {"measured": 12.5, "limit": 10}, "remediation": "re-bond the ground", "confidence": 0.8,
         "sources": [{"pageNumber": 2, "section": "4.1", "snippet": "12.5 ohm"}]},
        {"severity": "MINOR", "ruleId": "DOC-03", "message": "signature missing", "evidence": None,
         "remediation": None, "confidence": None, "sources": []},
    ]
    assert node["events"]["totalCount"] == 3
    assert [(e["node"]["sequence"], e["node"]["type"]) for e in node["events"]["edges"]] == [
        (1, "CREATED"), (2, "STATUS_CHANGED"), (3, "ANALYSIS_RECORDED")
    ]
    assert node["events"]["edges"][1]["node"]["data"] == {"from": "QUEUED", "to": "PROCESSING", "attempt": 1}
    assert node["artifacts"] == []
    assert node["durationSeconds"] >= 0


async def _statements_for(api: Api, token: str, tasks: int) -> int:
    with count_statements(api.database) as statements:
        data = await api.data(NESTED, {"first": tasks}, token)
    assert len(data["tasks"]["edges"]) == tasks
    return len(statements)


async def _owner_of_analysed_tasks(api: Api, count: int) -> str:
    """The token of an owner of `count` analysed tasks, whose role the API has already read once."""
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        for _ in range(count):
            await make_analysed_task(session, owner)
    await api.data("{ me { id } }", token=token)
    return token


async def test_the_nested_query_issues_a_constant_number_of_statements(api: Api) -> None:
    # given
    token = await _owner_of_analysed_tasks(api, 100)

    # when
    for_five = await _statements_for(api, token, 5)
    for_hundred = await _statements_for(api, token, 100)

    # then: the viewer's role (remembered on PostgreSQL, tests/test_viewer_roles.py), the page with
    # its analyses, totalCount, and one per other relationship level (owner, findings, sources, events,
    # artifacts)
    viewer = 0 if api.database.dialect == "postgresql" else 1
    assert for_five == for_hundred == viewer + 1 + 1 + 5


async def test_a_task_the_page_already_holds_is_not_read_again(api: Api) -> None:
    # given
    token = await _owner_of_analysed_tasks(api, 3)

    # when
    with count_statements(api.database) as statements:
        data = await api.data("{ tasks { edges { node { id analysis { task { id } } } } } }", token=token)

    # then: the page, which holds the analyses; each analysis's task is one of the page's
    nodes = [edge["node"] for edge in data["tasks"]["edges"]]
    assert [node["analysis"]["task"]["id"] for node in nodes] == [node["id"] for node in nodes]
    viewer = 0 if api.database.dialect == "postgresql" else 1
    assert len(statements) == viewer + 1


async def _page_with_analyses(api: Api, arguments: str) -> tuple[dict[str, Any], int]:
    """Two analysed tasks and one still queued, listed with their analyses: the answer, keyed by task, and
    the statements the list took."""
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        low, _ = await make_analysed_task(session, owner, compliance_score=40.0, verdict="REJECTED")
        high, _ = await make_analysed_task(session, owner, compliance_score=90.0, verdict="APPROVED")
        queued = await make_task(session, owner)
    await api.data("{ me { id } }", token=token)
    with count_statements(api.database) as statements:
        data = await api.data(
            f"{{ tasks{arguments} {{ edges {{ node {{ id analysis {{ id verdict complianceScore }} }} }} }} }}",
            token=token)
    analyses = {edge["node"]["id"]: edge["node"]["analysis"] for edge in data["tasks"]["edges"]}
    assert analyses[to_global_id("Task", queued.id)] is None
    assert analyses[to_global_id("Task", low.id)]["verdict"] == "REJECTED"
    assert analyses[to_global_id("Task", high.id)]["complianceScore"] == 90.0
    assert len(analyses) == 3
    return analyses, len(statements)


@pytest.mark.parametrize("arguments", ["", "(orderBy: {field: COMPLIANCE_SCORE, direction: DESC})"])
async def test_a_page_reads_its_analyses_with_it_and_a_task_without_one_answers_null(api: Api, arguments: str) -> None:
    # when
    _, statements = await _page_with_analyses(api, arguments)

    # then: one statement (after the viewer's role, read again only on SQLite)
    viewer = 0 if api.database.dialect == "postgresql" else 1
    assert statements == viewer + 1


async def test_a_searchs_page_reads_the_analyses_of_its_own_tasks_after_it(api: Api) -> None:
    # when
    _, statements = await _page_with_analyses(api, '(filter: {filenameContains: "report"})')

    # then: the page, then its analyses by key (a join would read every match's before the sort); before
    # them the viewer's role on SQLite, the statistics of the search's trigrams on PostgreSQL
    assert statements == 1 + 2


async def test_a_finished_request_leaves_what_it_read_to_reference_counting(api: Api) -> None:
    # given
    token = await _owner_of_analysed_tasks(api, 1)
    gc.collect()
    gc.disable()
    try:
        # when
        await api.data("{ tasks { edges { node { analysis { findings { ruleId } } } } } }", token=token)

        # then: no reference cycle keeps the request's loaders, and every row they read, for the collector
        assert [held for held in gc.get_objects() if isinstance(held, Loaders)] == []
    finally:
        gc.enable()


async def test_a_file_larger_than_two_gigabytes_reports_its_exact_size(api: Api) -> None:
    token, owner = await _owner(api)
    size = 5 * 1024**3 + 7
    async with api.database.transaction() as session:
        await make_task(session, owner, file_size=size)

    data = await api.data("{ tasks { edges { node { fileSize } } } }", token=token)

    assert data["tasks"]["edges"][0]["node"]["fileSize"] == str(size)


async def test_a_page_larger_than_the_maximum_is_refused(api: Api) -> None:
    token, _ = await _owner(api)

    first = await api.post("{ tasks(first: 101) { totalCount } }", token=token)
    last = await api.post("{ tasks(last: 1000) { totalCount } }", token=token)

    assert error_codes(first) == error_codes(last) == ["BAD_USER_INPUT"]


PAGE = """
query($first: Int, $after: String, $last: Int, $before: String, $order: TaskOrder) {
  tasks(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def _walk(api: Api, token: str, order: dict[str, str], forward: bool, between_pages: Any = None) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        variables: dict[str, Any] = {"order": order}
        if forward:
            variables |= {"first": 7, "after": cursor}
        else:
            variables |= {"last": 7, "before": cursor}
        page = (await api.data(PAGE, variables, token))["tasks"]
        ids = [edge["node"]["id"] for edge in page["edges"]]
        seen.extend(ids if forward else reversed(ids))
        info = page["pageInfo"]
        more = info["hasNextPage"] if forward else info["hasPreviousPage"]
        if not more:
            return seen
        cursor = info["endCursor"] if forward else info["startCursor"]
        if between_pages is not None:
            await between_pages()


async def test_pagination_walks_every_ordering_forward_and_backward_without_gap_or_duplicate(api: Api) -> None:
    # given: equal sizes and scores, so the id breaks ties
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        for i in range(30):
            if i % 3:
                await make_analysed_task(session, owner, compliance_score=float(i % 4 * 10))
            else:
                await make_task(session, owner, file_size=i % 5)
    everything = await api.data("{ tasks(first: 100) { edges { node { id } } } }", token=token)
    expected = {edge["node"]["id"] for edge in everything["tasks"]["edges"]}

    for field in ("CREATED_AT", "UPDATED_AT", "FILE_SIZE", "COMPLIANCE_SCORE"):
        for direction in ("ASC", "DESC"):
            order = {"field": field, "direction": direction}
            # when
            forward = await _walk(api, token, order, forward=True)
            backward = await _walk(api, token, order, forward=False)
            # then
            assert len(forward) == len(set(forward)) == 30, order
            assert set(forward) == expected
            assert backward == list(reversed(forward)), order


async def test_pagination_stays_stable_while_new_tasks_are_inserted(api: Api) -> None:
    # given
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        for _ in range(20):
            await make_task(session, owner)
    before = {e["node"]["id"] for e in (await api.data("{ tasks(first: 100) { edges { node { id } } } }", token=token))["tasks"]["edges"]}

    async def insert_newer_task() -> None:
        async with api.database.transaction() as session:
            await make_task(session, owner)

    # when: walking oldest first, new tasks arrive at the end of the order
    walked = await _walk(api, token, {"field": "CREATED_AT", "direction": "DESC"}, forward=True,
                         between_pages=insert_newer_task)

    # then: newest-first pages shift nothing already seen; every original task appears once
    assert len(walked) == len(set(walked))
    assert before <= set(walked)


async def test_a_cursor_from_another_ordering_is_refused(api: Api) -> None:
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        await make_task(session, owner)
        await make_task(session, owner)
    cursor = (await api.data(PAGE, {"first": 1}, token))["tasks"]["pageInfo"]["endCursor"]

    body = await api.post(PAGE, {"first": 1, "after": cursor, "order": {"field": "FILE_SIZE", "direction": "ASC"}}, token)

    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_task_by_hash_finds_the_viewers_own_task(api: Api) -> None:
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        task = await make_task(session, owner)

    found = await api.data("query($h: String!) { taskByHash(sha256: $h) { id } }", {"h": str(task.file_hash).upper()}, token)
    bad = await api.post("{ taskByHash(sha256: \"xyz\") { id } }", token=token)

    assert found == {"taskByHash": {"id": to_global_id("Task", task.id)}}
    assert error_codes(bad) == ["BAD_USER_INPUT"]


async def test_analysis_findings_can_be_limited_to_some_severities(api: Api) -> None:
    token, owner = await _owner(api)
    async with api.database.transaction() as session:
        task, _ = await make_analysed_task(session, owner)

    data = await api.data(
        "query($id: ID!) { task(id: $id) { analysis { findings(severity: [MINOR, INFO]) { ruleId } } } }",
        {"id": to_global_id("Task", task.id)}, token,
    )

    assert data["task"]["analysis"]["findings"] == [{"ruleId": "DOC-03"}]


async def test_a_worker_reads_every_users_tasks(api: Api) -> None:
    _, alice = await _owner(api, "alice@example.com")
    _, bob = await _owner(api, "bob@example.com")
    worker = await api.sign_up("worker@example.com", Role.WORKER)
    async with api.database.transaction() as session:
        await make_task(session, alice)
        task = await make_task(session, bob)
        await transition_task(session, task.id, "PROCESSING", viewer=SYSTEM)
        await session.execute(update(Task).where(Task.id == task.id).values(original_filename="b.pdf"))

    data = await api.data("{ tasks { totalCount edges { node { owner { email } } } } }", token=worker)

    assert data["tasks"]["totalCount"] == 2
    assert {e["node"]["owner"]["email"] for e in data["tasks"]["edges"]} == {"alice@example.com", "bob@example.com"}

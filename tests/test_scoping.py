"""A USER sees nothing of another user's tasks on any read path; WORKER and ADMIN see every task.

Of accounts, a USER sees only itself, a WORKER itself and the owners of tasks, an ADMIN everyone.
"""

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from db.enums import Role
from db.models import Finding, SourceReference, TaskEvent, User
from graph.relay import to_global_id
from tests.api import Api, error_codes
from tests.factories import make_analysed_task


async def _graph(api: Api) -> dict[str, Any]:
    """Alice owns an analysed task; Bob owns nothing. Returns their tokens and Alice's ids."""
    alice = await api.sign_up("alice@example.com")
    bob = await api.sign_up("bob@example.com")
    worker = await api.sign_up("worker@example.com", Role.WORKER)
    admin = await api.sign_up("admin@example.com", Role.ADMIN)
    async with api.database.transaction() as session:
        owner = await session.scalar(select(User).where(User.email == "alice@example.com"))
        assert owner is not None
        task, analysis = await make_analysed_task(session, owner)
        finding = await session.scalar(select(Finding).where(Finding.analysis_id == analysis.id, Finding.rule_id == "GND-01"))
        source = await session.scalar(select(SourceReference))
        event = await session.scalar(select(TaskEvent).where(TaskEvent.task_id == task.id))
        assert finding and source and event
    return {
        "alice": alice, "bob": bob, "worker": worker, "admin": admin,
        "task": task, "analysis": analysis, "finding": finding, "source": source, "event": event,
        "owner": owner,
    }


NODE = "query($id: ID!) { node(id: $id) { id } }"
TASK = "query($id: ID!) { task(id: $id) { id } }"


@pytest.mark.parametrize("kind", ["Task", "Analysis", "Finding", "SourceReference", "TaskEvent", "User"])
async def test_node_of_another_users_row_reads_exactly_like_a_missing_one(api: Api, kind: str) -> None:
    # given
    graph = await _graph(api)
    row = {"Task": graph["task"], "Analysis": graph["analysis"], "Finding": graph["finding"],
           "SourceReference": graph["source"], "TaskEvent": graph["event"], "User": graph["owner"]}[kind]
    real_id = to_global_id(kind, row.id)
    missing_id = to_global_id(kind, uuid.uuid4())

    # when
    someone_elses = await api.post(NODE, {"id": real_id}, graph["bob"])
    never_existed = await api.post(NODE, {"id": missing_id}, graph["bob"])
    own = await api.post(NODE, {"id": real_id}, graph["alice"])

    # then
    assert someone_elses == never_existed == {"data": {"node": None}}
    assert own == {"data": {"node": {"id": real_id}}}


async def test_task_of_another_user_reads_like_a_missing_one_and_staff_see_it(api: Api) -> None:
    graph = await _graph(api)
    real_id = to_global_id("Task", graph["task"].id)

    bob = await api.post(TASK, {"id": real_id}, graph["bob"])
    missing = await api.post(TASK, {"id": to_global_id("Task", uuid.uuid4())}, graph["bob"])
    worker = await api.data(TASK, {"id": real_id}, graph["worker"])
    admin = await api.data(TASK, {"id": real_id}, graph["admin"])

    assert bob == missing == {"data": {"task": None}}
    assert worker == admin == {"task": {"id": real_id}}


async def test_lists_counts_hashes_findings_and_dashboard_show_a_user_nothing_of_others(api: Api) -> None:
    # given
    graph = await _graph(api)
    query = """
    query($hash: String!) {
      tasks { totalCount edges { node { id } } }
      findings { totalCount edges { node { id } } }
      taskByHash(sha256: $hash) { id }
      dashboard { totalTasks findingsBySeverity { count } analysesByVerdict { count } }
      me { tasks { totalCount } }
    }
    """

    # when
    bob = await api.data(query, {"hash": graph["task"].file_hash}, graph["bob"])
    alice = await api.data(query, {"hash": graph["task"].file_hash}, graph["alice"])

    # then
    assert bob["tasks"] == {"totalCount": 0, "edges": []}
    assert bob["findings"] == {"totalCount": 0, "edges": []}
    assert bob["taskByHash"] is None
    assert bob["dashboard"]["totalTasks"] == 0
    assert sum(c["count"] for c in bob["dashboard"]["findingsBySeverity"]) == 0
    assert sum(c["count"] for c in bob["dashboard"]["analysesByVerdict"]) == 0
    assert bob["me"]["tasks"]["totalCount"] == 0
    assert alice["tasks"]["totalCount"] == 1 and alice["findings"]["totalCount"] == 2
    assert alice["taskByHash"] is not None and alice["dashboard"]["totalTasks"] == 1


async def test_a_user_cannot_filter_by_another_owner(api: Api) -> None:
    graph = await _graph(api)
    owner_id = to_global_id("User", graph["owner"].id)

    body = await api.post(
        "query($owner: ID!) { tasks(filter: {ownerId: $owner}) { totalCount } }", {"owner": owner_id}, graph["bob"]
    )
    worker = await api.data(
        "query($owner: ID!) { tasks(filter: {ownerId: $owner}) { totalCount } }", {"owner": owner_id}, graph["worker"]
    )

    assert error_codes(body) == ["FORBIDDEN"]
    assert worker["tasks"]["totalCount"] == 1


async def test_nodes_resolves_each_id_under_the_same_rule(api: Api) -> None:
    graph = await _graph(api)
    ids = [to_global_id("Task", graph["task"].id), to_global_id("Finding", graph["finding"].id)]

    bob = await api.data("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, graph["bob"])
    alice = await api.data("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, graph["alice"])

    assert bob == {"nodes": [None, None]}
    assert alice == {"nodes": [{"id": ids[0]}, {"id": ids[1]}]}


async def _user_id(api: Api, email: str) -> str:
    async with api.database.sessions() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return to_global_id("User", user.id)


@pytest.mark.parametrize("email", ["admin@example.com", "bob@example.com"], ids=["an admin", "a user with no task"])
async def test_a_worker_reads_an_account_that_owns_no_task_like_a_missing_one(api: Api, email: str) -> None:
    # given
    graph = await _graph(api)
    real_id = await _user_id(api, email)
    missing_id = to_global_id("User", uuid.uuid4())

    # when
    hidden = await api.post(NODE, {"id": real_id}, graph["worker"])
    never_existed = await api.post(NODE, {"id": missing_id}, graph["worker"])
    admin = await api.post(NODE, {"id": real_id}, graph["admin"])

    # then
    assert hidden == never_existed == {"data": {"node": None}}
    assert admin == {"data": {"node": {"id": real_id}}}


async def test_a_worker_reads_the_owner_of_a_task_and_itself(api: Api) -> None:
    # given
    graph = await _graph(api)
    owner_id = to_global_id("User", graph["owner"].id)
    query = """
    query($task: ID!, $owner: ID!) {
      task(id: $task) { owner { id email tasks { totalCount } } }
      node(id: $owner) { ... on User { email } }
      me { email role }
    }
    """

    # when
    worker = await api.data(query, {"task": to_global_id("Task", graph["task"].id), "owner": owner_id},
                            graph["worker"])

    # then
    assert worker == {
        "task": {"owner": {"id": owner_id, "email": "alice@example.com", "tasks": {"totalCount": 1}}},
        "node": {"email": "alice@example.com"},
        "me": {"email": "worker@example.com", "role": "WORKER"},
    }


async def test_a_malformed_id_is_bad_user_input(api: Api) -> None:
    token = await api.sign_up("ada@example.com")

    body = await api.post(TASK, {"id": "not-an-id"}, token)

    assert error_codes(body) == ["BAD_USER_INPUT"]



"""Children of parents a request has shown its USER are read without the scope join; any other key keeps it.

graph/engine/visible.py says why that is safe. These tests hold the two halves: the
dashboard's children are read by their keys alone and answer as before, and a
batch holding one key the request never showed is scoped, so another user's
rows stay out of it.
"""

from typing import Any

from sqlalchemy import select

from db.access import Viewer
from db.enums import Role
from db.models import User
from graph.analyses.types import Analysis
from graph.loaders import Loaders
from graph.relay import to_global_id
from tests.api import Api
from tests.factories import make_analysed_task
from tests.sql_counter import count_statements

PAGE = """
{ tasks(first: 5) { edges { node { id
    analysis { verdict findings { ruleId sources { pageNumber } } }
    artifacts { id } } } } }
"""


async def _two_owners(api: Api) -> dict[str, Any]:
    alice = await api.sign_up("alice@example.com")
    await api.sign_up("bob@example.com")
    async with api.database.transaction() as session:
        owners = {user.email: user for user in await session.scalars(select(User))}
        alices_task, alices_analysis = await make_analysed_task(session, owners["alice@example.com"])
        _, bobs_analysis = await make_analysed_task(session, owners["bob@example.com"])
    return {"alice": alice, "alice_id": owners["alice@example.com"].id, "task": alices_task,
            "analysis": alices_analysis, "bobs_analysis": bobs_analysis}


async def test_the_children_of_a_page_are_read_by_their_keys_alone(api: Api) -> None:
    # given
    graph = await _two_owners(api)

    # when
    with count_statements(api.database) as statements:
        data = await api.data(PAGE, {}, graph["alice"])

    # then
    children = [s for s in statements if not s.lstrip().upper().startswith("SELECT USERS")][1:]
    assert len(children) == 3  # artifacts, findings, sources (the page's statement reads the analyses)
    assert all("JOIN tasks" not in statement and "JOIN analyses" not in statement for statement in children)
    [edge] = data["tasks"]["edges"]
    assert edge["node"]["id"] == to_global_id("Task", graph["task"].id)
    findings = edge["node"]["analysis"]["findings"]
    assert [finding["ruleId"] for finding in findings] == ["GND-01", "DOC-03"]
    assert any(finding["sources"] for finding in findings)


async def test_a_batch_with_a_key_never_shown_keeps_its_scope(api: Api) -> None:
    # given: Alice's request has shown her analysis, not Bob's
    graph = await _two_owners(api)
    loaders = Loaders(api.database, Viewer(user_id=graph["alice_id"], role=Role.USER))
    loaders.visible.shown_keys(Analysis, [graph["analysis"].id])
    keys = [graph["analysis"].id, graph["bobs_analysis"].id]

    # when
    with count_statements(api.database) as statements:
        _, found = await loaders.findings_by_analysis_id.rows_by_key(keys)

    # then
    assert set(found) == {graph["analysis"].id}
    [statement] = statements
    assert "JOIN tasks" in statement


async def test_keys_shown_to_one_viewer_are_nothing_to_another(api: Api) -> None:
    # given: what Alice's request was shown is not Bob's request's to use
    graph = await _two_owners(api)
    async with api.database.read() as connection:
        bob_id = (await connection.execute(select(User.id).where(User.email == "bob@example.com"))).scalar_one()
    alices = Loaders(api.database, Viewer(user_id=graph["alice_id"], role=Role.USER))
    bobs = Loaders(api.database, Viewer(user_id=bob_id, role=Role.USER))
    alices.visible.shown_keys(Analysis, [graph["analysis"].id])

    # when
    _, found = await bobs.findings_by_analysis_id.rows_by_key([graph["analysis"].id])

    # then
    assert found == {}

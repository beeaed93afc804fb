"""Event data speaks the API's language: global ids that node(id:) takes, and no other account's id."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.access import SYSTEM
from db.artifacts import create_artifact
from db.enums import Role
from db.models import User
from db.tasks import claim_next_task
from graph.relay import to_global_id
from tests.api import Api
from tests.factories import make_analysed_task, make_task, make_user, stored_file

EVENTS = """
query($id: ID!) { task(id: $id) { events(first: 20) { edges { node { type data } } } } }
"""
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


async def account(session: AsyncSession, email: str) -> User:
    return (await session.scalars(select(User).where(User.email == email))).one()


async def event_data(api: Api, token: str, task_id: object) -> dict[str, dict]:
    data = await api.data(EVENTS, {"id": to_global_id("Task", task_id)}, token)  # type: ignore[arg-type]
    return {edge["node"]["type"]: edge["node"]["data"] for edge in data["task"]["events"]["edges"]}


async def test_analysis_and_artifact_ids_in_event_data_are_global_ids_node_accepts(api: Api) -> None:
    # given
    owner_token = await api.sign_up("owner@example.com")
    async with api.database.transaction() as session:
        owner = await account(session, "owner@example.com")
        task, analysis = await make_analysed_task(session, owner)
        artifact = await create_artifact(session, task.id, stored_file(b"png"), kind="screenshot", viewer=SYSTEM,
                                         claim_id=task.claim_id)

    # when
    data = await event_data(api, owner_token, task.id)

    # then
    analysis_id, artifact_id = data["ANALYSIS_RECORDED"]["analysisId"], data["ARTIFACT_ADDED"]["artifactId"]
    assert (analysis_id, artifact_id) == (to_global_id("Analysis", analysis.id), to_global_id("Artifact", artifact.id))
    for global_id, type_name in ((analysis_id, "Analysis"), (artifact_id, "Artifact")):
        node = (await api.data(NODE, {"id": global_id}, owner_token))["node"]
        assert node == {"__typename": type_name, "id": global_id}


async def test_the_worker_account_in_event_data_is_shown_to_admins_only_as_a_global_id(api: Api) -> None:
    # given: a worker claimed a user's task
    owner_token = await api.sign_up("owner@example.com")
    async with api.database.transaction() as session:
        worker = await make_user(session, email="worker@example.com", role=Role.WORKER)
        task = await make_task(session, await account(session, "owner@example.com"))
        await claim_next_task(session, worker.id)
    admin_token = await api.sign_up("admin@example.com", Role.ADMIN)

    # when
    seen_by_owner = await event_data(api, owner_token, task.id)
    seen_by_admin = await event_data(api, admin_token, task.id)

    # then
    assert seen_by_owner["STATUS_CHANGED"] == {"from": "QUEUED", "to": "PROCESSING", "attempt": 1}
    assert seen_by_admin["STATUS_CHANGED"]["workerId"] == to_global_id("User", worker.id)

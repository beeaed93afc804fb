"""Rows written through a live server's own Database, so its broker publishes them as the server's own writes."""

import uuid

from db.access import SYSTEM
from db.analyses import record_analysis
from db.engine import Database
from db.enums import EventType, Role, TaskStatus
from db.events import append_event
from db.models import User
from db.tasks import transition_task
from graph.access.tokens import issue_token
from tests.factories import analysis_input, make_analysed_task, make_task, make_user
from tests.live import LiveServer


def database(server: LiveServer) -> Database:
    return server.app.state.database


async def account(server: LiveServer, role: Role = Role.USER) -> tuple[User, str]:
    """A user and a bearer token for them."""
    async with database(server).transaction() as session:
        user = await make_user(session, role=role)
    return user, issue_token(user.id, server.app.state.settings)[0]


async def queued_task(server: LiveServer, owner: User) -> uuid.UUID:
    """A task whose only event is CREATED, sequence 1."""
    async with database(server).transaction() as session:
        return (await make_task(session, owner)).id


async def analysed_task(server: LiveServer, owner: User) -> uuid.UUID:
    """A task with an analysis, findings and their sources (tests.factories.analysis_input)."""
    async with database(server).transaction() as session:
        task, _ = await make_analysed_task(session, owner)
    return task.id


async def progress(server: LiveServer, task_id: uuid.UUID, count: int = 1) -> None:
    """`count` PROGRESS events, each committed on its own like a worker's reports."""
    for step in range(count):
        async with database(server).transaction() as session:
            await append_event(session, task_id, EventType.PROGRESS, {"step": step})


async def analyse(server: LiveServer, task_id: uuid.UUID) -> None:
    """The pipeline picks the task up and records its analysis: STATUS_CHANGED, then ANALYSIS_RECORDED."""
    async with database(server).transaction() as session:
        claimed = await transition_task(session, task_id, TaskStatus.PROCESSING, viewer=SYSTEM)
    async with database(server).transaction() as session:
        await record_analysis(session, task_id, analysis_input(), viewer=SYSTEM, claim_id=claimed.claim_id)

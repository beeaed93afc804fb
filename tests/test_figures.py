"""The figures kept per owner equal a recount from the base tables, whatever the writers do."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select, update

from db import figures, migrations
from db.access import SYSTEM, Viewer
from db.analyses import record_analysis
from db.base import utcnow
from db.engine import Database, create_engine
from db.enums import Role, TaskStatus, Verdict
from db.errors import DomainError
from db.leases import requeue_expired_leases
from db.models import Analysis, Finding, OwnerFigures, Task, TaskEvent, User
from db.settings import Settings
from db.tasks import claim_next_task, create_url_task, delete_task, transition_task
from tests.conftest import make_settings
from tests.factories import analysis_input, make_task, make_user, task_at_old_revision

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKERS = 8
TASKS = 300


async def _drift(database: Database) -> figures.Drift:
    async with database.read() as connection:
        return await figures.drift(connection)


async def _pipeline_worker(database: Database, worker: User, seed: int) -> None:
    """Claims until the queue is empty, doing a little of everything a pipeline and its users do."""
    rng = random.Random(seed)
    viewer = Viewer(user_id=worker.id, role=Role.WORKER)
    while True:
        async with database.transaction() as session:
            task = await claim_next_task(session, worker.id)
        if task is None:
            return
        action = rng.random()
        try:
            async with database.transaction() as session:
                if action < 0.6:
                    await record_analysis(session, task.id, analysis_input(
                        verdict=rng.choice(["APPROVED", "REVIEW", "REJECTED"]),
                        compliance_score=rng.choice([None, rng.uniform(0, 100)])),
                        viewer=viewer, claim_id=task.claim_id)
            async with database.transaction() as session:
                if action < 0.3:
                    await transition_task(session, task.id, TaskStatus.COMPLETED, viewer=viewer,
                                          claim_id=task.claim_id)
                    if rng.random() < 0.3:
                        await record_analysis(session, task.id, analysis_input(verdict="REJECTED"), viewer=viewer,
                                              claim_id=task.claim_id, replace=True)
                elif action < 0.6:
                    await transition_task(session, task.id, TaskStatus.FAILED, viewer=viewer, claim_id=task.claim_id,
                                          error_message="broken")
                    if rng.random() < 0.5:
                        await transition_task(session, task.id, TaskStatus.QUEUED, viewer=SYSTEM)
                elif action < 0.75:
                    await transition_task(session, task.id, TaskStatus.CANCELLED, viewer=SYSTEM)
                elif action < 0.9:
                    # The worker goes quiet: its lease runs out and any worker's sweep takes the task back.
                    await session.execute(update(Task).where(Task.id == task.id)
                                          .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
                else:
                    await delete_task(session, task.id, viewer=SYSTEM)
            async with database.transaction() as session:
                await requeue_expired_leases(session, max_attempts=2)
        except DomainError:
            pass  # another worker's sweep or deletion got there first: the rules refused, nothing changed


async def test_the_figures_equal_a_recount_after_concurrent_writers(db: Database) -> None:
    # given: three owners' queued tasks (uploads and URL audits) and eight pipeline workers
    async with db.transaction() as session:
        owners = [await make_user(session) for _ in range(3)]
        workers = [await make_user(session, role=Role.WORKER) for _ in range(WORKERS)]
        for number in range(TASKS):
            owner = owners[number % 3]
            if number % 5:
                await make_task(session, owner)
            else:
                await create_url_task(session, owner.id, f"https://example.com/{number}")

    # when: they claim, record, replace, complete, fail, retry, cancel, let leases expire and delete at once
    await asyncio.gather(*(_pipeline_worker(db, worker, seed) for seed, worker in enumerate(workers)))

    # then
    found = await _drift(db)
    assert found.differences == []
    async with db.read() as connection:
        kept = await figures.owner_totals(connection, None)
    assert sum(kept[name] for name in figures.STATUS_FIGURES.values()) > 0.8 * TASKS
    assert all(kept[name] > 0 for name in ("completed", "failed", "cancelled", "approved", "rejected", "critical"))


async def test_a_writer_killed_inside_its_transaction_leaves_the_figures_equal_a_recount(
    db: Database, settings: Settings
) -> None:
    # given: an owner whose figures are already kept
    async with db.transaction() as session:
        owner = await make_user(session)
        await make_task(session, owner)
    environment = {**os.environ, "DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir),
                   "SECRET_KEY": settings.secret_key}
    child = subprocess.Popen([sys.executable, "-m", "tests.figures_writer", str(owner.id)], cwd=PROJECT_ROOT,
                             env=environment, stdout=subprocess.PIPE, text=True)
    try:
        # when: it has written a task, an analysis and their figures, and is killed before it commits
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "written"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)

    # then
    assert (await _drift(db)).differences == []
    async with db.read() as connection:
        tasks = (await connection.execute(select(Task.id).where(Task.user_id == owner.id))).all()
        kept = (await connection.execute(select(OwnerFigures.queued, OwnerFigures.processing)
                                          .where(OwnerFigures.owner_id == owner.id))).one()
    assert len(tasks) == 1
    assert tuple(kept) == (1, 0)


async def test_check_figures_names_a_figure_that_no_longer_equals_a_recount(db: Database) -> None:
    # given: a kept figure changed behind the domain operations' back
    async with db.transaction() as session:
        owner = await make_user(session)
        await make_task(session, owner)
    async with db.transaction() as session:
        await session.execute(update(OwnerFigures).where(OwnerFigures.owner_id == owner.id).values(queued=5))

    # when
    found = await _drift(db)

    # then
    assert found.differences == [f"owner {owner.id}: queued 5≠1"]


async def test_a_task_deleted_by_its_owner_leaves_no_figure_behind(db: Database) -> None:
    # given
    async with db.transaction() as session:
        owner = await make_user(session)
        task = await make_task(session, owner)
        claimed = await transition_task(session, task.id, TaskStatus.PROCESSING, viewer=SYSTEM)
        await record_analysis(session, task.id, analysis_input(), viewer=SYSTEM, claim_id=claimed.claim_id)

    # when
    async with db.transaction() as session:
        await delete_task(session, task.id, viewer=Viewer(user_id=owner.id, role=Role.USER))

    # then
    async with db.read() as connection:
        kept = await figures.owner_totals(connection, owner.id)
    assert {name: value for name, value in kept.items() if value} == {}
    assert (await _drift(db)).differences == []


async def test_the_upgrade_fills_the_figures_verdicts_and_event_owners_of_the_rows_already_there(
    empty_database_url: str, data_dir: Path
) -> None:
    # given: a database at the revision before kept figures, with an analysed task and a queued one
    engine = create_engine(make_settings(empty_database_url, data_dir))
    await migrations.upgrade(engine, "61e069a4908c")
    async with engine.begin() as connection:
        analysed = await task_at_old_revision(connection, "COMPLETED", last_event_sequence=1)
        queued = await task_at_old_revision(connection, "QUEUED", last_event_sequence=1)
        analysis_id = uuid.uuid4()
        await connection.execute(insert(Analysis).values(
            id=analysis_id, task_id=analysed, verdict="REJECTED", compliance_score=40.0, confidence_score=0.5))
        await connection.execute(insert(Finding), [
            {"id": uuid.uuid4(), "analysis_id": analysis_id, "severity": severity, "rule_id": "R-1", "message": "m"}
            for severity in ("CRITICAL", "CRITICAL", "INFO")])
        await connection.execute(insert(TaskEvent), [
            {"id": uuid.uuid4(), "task_id": task_id, "sequence": 1, "position": position, "type": "CREATED",
             "data": {}} for position, task_id in enumerate((analysed, queued), start=1)])

    # when
    await migrations.upgrade(engine)

    # then
    async with engine.connect() as connection:
        found = await figures.drift(connection)
        kept = await figures.owner_totals(connection, None)
        tasks = dict((await connection.execute(select(Task.id, Task.verdict))).all())
        scores = dict((await connection.execute(select(Task.id, Task.compliance_key))).all())
        event_owners = (await connection.execute(select(TaskEvent.user_id, Task.user_id)
                                                 .join(Task, Task.id == TaskEvent.task_id))).all()
    await engine.dispose()
    assert found.differences == [] and found.owners_checked == 2
    assert {name: value for name, value in kept.items() if value} == {
        "completed": 1, "queued": 1, "rejected": 1, "critical": 2, "info": 1,
        "compliance_sum": 40.0, "compliance_count": 1, "confidence_sum": 0.5, "confidence_count": 1}
    assert tasks == {analysed: Verdict.REJECTED, queued: None}
    assert scores == {analysed: 40.0, queued: -1.0}
    assert len(event_owners) == 2 and all(event_owner == owner for event_owner, owner in event_owners)

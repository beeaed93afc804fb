"""The work queue as an operator watches it: tasks by status, how long the oldest QUEUED one has waited,
and how many claims have outlived their lease (a worker died, or the requeuing sweep is not running)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import figures
from db.base import utcnow
from db.enums import TaskStatus
from db.leases import BEING_PROCESSED
from db.models import Task


@dataclass(frozen=True)
class QueueStats:
    tasks_by_status: dict[TaskStatus, int]
    oldest_queued_at: datetime | None
    expired_leases: int


async def queue_stats(connection: AsyncConnection) -> QueueStats:
    """Cheap on every scrape at any size: the kept figures (a row per owner), the first entry of the
    (status, created_at) index, and the partial index of the leases of tasks being processed."""
    totals = await figures.owner_totals(connection, None)
    counts = {status: int(totals[name]) for status, name in figures.STATUS_FIGURES.items()}
    oldest = await connection.scalar(select(func.min(Task.created_at)).where(Task.status == TaskStatus.QUEUED))
    # The time is bound from Python: SQLite's and PostgreSQL's "now" differ in type and zone.
    expired = await connection.scalar(select(func.count()).where(BEING_PROCESSED, Task.lease_expires_at < utcnow()))
    return QueueStats(tasks_by_status=counts, oldest_queued_at=oldest, expired_leases=int(expired or 0))

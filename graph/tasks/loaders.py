import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from db import models
from db.access import task_scope
from graph.batching import BatchLoader, many_per_key, one_per_key
from graph.tasks.types import ARTIFACT_COLUMNS, EVENT_COLUMNS, TASK_COLUMNS, Artifact, Task, TaskEvent


class TaskByIdLoader(BatchLoader[uuid.UUID, Task | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Task | None]:
        rows = await self.fetch(
            select(*TASK_COLUMNS).where(models.Task.id.in_(keys), self.viewer.visible_tasks())
        )
        return one_per_key(keys, {row.id: Task.from_row(row) for row in rows})


class TaskEventByIdLoader(BatchLoader[uuid.UUID, TaskEvent | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[TaskEvent | None]:
        rows = await self.fetch(
            select(*EVENT_COLUMNS).where(
                models.TaskEvent.id.in_(keys), task_scope(self.viewer, models.TaskEvent.task_id)
            )
        )
        return one_per_key(keys, {row.id: TaskEvent.from_row(row) for row in rows})


EventPageKey = tuple[uuid.UUID, int, int]


class EventPageByTaskLoader(BatchLoader[EventPageKey, list[TaskEvent]]):
    """Keys are (task id, after sequence, how many): one windowed SELECT serves every task's page."""

    async def batch_load_fn(self, keys: Sequence[EventPageKey]) -> list[list[TaskEvent]]:
        pages: dict[EventPageKey, list[TaskEvent]] = {}
        for after, limit in {(after, limit) for _, after, limit in keys}:
            task_ids = [task_id for task_id, a, n in keys if (a, n) == (after, limit)]
            position = (
                func.row_number()
                .over(partition_by=models.TaskEvent.task_id, order_by=models.TaskEvent.sequence)
                .label("position")
            )
            numbered = (
                select(*EVENT_COLUMNS, position)
                .where(
                    models.TaskEvent.task_id.in_(task_ids),
                    models.TaskEvent.sequence > after,
                    task_scope(self.viewer, models.TaskEvent.task_id),
                )
                .subquery()
            )
            rows = await self.fetch(
                select(numbered)
                .where(numbered.c.position <= limit)
                .order_by(numbered.c.task_id, numbered.c.sequence)
            )
            grouped = many_per_key(task_ids, ((row.task_id, TaskEvent.from_row(row)) for row in rows))
            pages.update({(task_id, after, limit): page for task_id, page in zip(task_ids, grouped)})
        return [pages.get(key, []) for key in keys]


class ArtifactsByTaskIdLoader(BatchLoader[uuid.UUID, list[Artifact]]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[Artifact]]:
        rows = await self.fetch(
            select(*ARTIFACT_COLUMNS)
            .where(models.Artifact.task_id.in_(keys), task_scope(self.viewer, models.Artifact.task_id))
            .order_by(models.Artifact.index, models.Artifact.created_at, models.Artifact.id)
        )
        return many_per_key(keys, ((row.task_id, Artifact.from_row(row)) for row in rows))


class ArtifactByIdLoader(BatchLoader[uuid.UUID, Artifact | None]):
    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Artifact | None]:
        rows = await self.fetch(
            select(*ARTIFACT_COLUMNS).where(
                models.Artifact.id.in_(keys), task_scope(self.viewer, models.Artifact.task_id)
            )
        )
        return one_per_key(keys, {row.id: Artifact.from_row(row) for row in rows})

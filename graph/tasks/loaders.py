import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select

from db import models
from db.access import Viewer, among_visible_tasks, task_scope
from graph.engine.batching import BatchLoader, KeyMatch, many_per_key
from graph.tasks.types import (
    ARTIFACT_COLUMNS,
    EVENT_COLUMNS,
    TASK_COLUMNS,
    Artifact,
    Task,
    TaskEvent,
)

Columns = tuple[Any, ...]


class TaskByIdLoader(BatchLoader[uuid.UUID, Task | None]):
    node, shape = Task, TASK_COLUMNS

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return select(*columns).where(key(models.Task.id), viewer.visible_tasks())


class TaskEventByIdLoader(BatchLoader[uuid.UUID, TaskEvent | None]):
    node, shape = TaskEvent, EVENT_COLUMNS

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return select(*columns).where(key(models.TaskEvent.id), task_scope(viewer, models.TaskEvent.task_id))


EventPageKey = tuple[uuid.UUID, int, int]


class EventPageByTaskLoader(BatchLoader[EventPageKey, list[TaskEvent]]):
    """Keys are (task id, after sequence, how many): one windowed SELECT serves every task's page."""

    async def batch_load_fn(self, keys: Sequence[EventPageKey]) -> list[list[TaskEvent]]:
        pages: dict[EventPageKey, list[TaskEvent]] = {}
        for after, limit in {(after, limit) for _, after, limit in keys}:
            task_ids = [task_id for task_id, a, n in keys if (a, n) == (after, limit)]
            rank = (
                func.row_number()
                .over(partition_by=models.TaskEvent.task_id, order_by=models.TaskEvent.sequence)
                .label("page_rank")
            )
            numbered = (
                select(*EVENT_COLUMNS, rank)
                .where(
                    models.TaskEvent.task_id.in_(task_ids),
                    models.TaskEvent.sequence > after,
                    task_scope(self.viewer, models.TaskEvent.task_id),
                )
                .subquery()
            )
            rows = await self.fetch(
                select(*(column for column in numbered.c if column.key != "page_rank"))
                .where(numbered.c.page_rank <= limit)
                .order_by(numbered.c.task_id, numbered.c.sequence)
            )
            grouped = many_per_key(task_ids, ((item.task_pk, item) for item in map(TaskEvent.from_row, rows)))
            pages.update({(task_id, after, limit): page for task_id, page in zip(task_ids, grouped)})
        return [pages.get(key, []) for key in keys]


class ArtifactsByTaskIdLoader(BatchLoader[uuid.UUID, list[Artifact]]):
    node, shape, parent = Artifact, ARTIFACT_COLUMNS, Task
    key_column, many = "task_pk", True

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return (
            among_visible_tasks(select(*columns), viewer, models.Artifact.task_id, key)
            .order_by(models.Artifact.task_id, models.Artifact.index, models.Artifact.created_at, models.Artifact.id)
        )


class ArtifactByIdLoader(BatchLoader[uuid.UUID, Artifact | None]):
    node, shape = Artifact, ARTIFACT_COLUMNS

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: Columns) -> Select:
        return select(*columns).where(key(models.Artifact.id), task_scope(viewer, models.Artifact.task_id))

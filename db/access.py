"""Who is asking, and which rows that lets them see: scoping lives in the SQL itself."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, SQLColumnExpression, Uuid, bindparam, or_, select, true

from db.enums import Role
from db.models import Analysis, Task


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: uuid.UUID | None
    role: Role

    @property
    def sees_every_task(self) -> bool:
        return self.role in (Role.WORKER, Role.ADMIN)

    @property
    def id_parameter(self) -> BindParameter[uuid.UUID]:
        # A named parameter, so a statement built once can be run for any viewer
        # by passing {VIEWER_ID: viewer.user_id}; without it, nothing matches NULL.
        return bindparam(VIEWER_ID, self.user_id, type_=Uuid())

    def visible_tasks(self) -> ColumnElement[bool]:
        """The WHERE clause that limits tasks (and everything beneath them) to this viewer."""
        if self.sees_every_task:
            return true()
        return Task.user_id == self.id_parameter


VIEWER_ID = "viewer_id"


# The pipeline and the operator's CLI act as the system: every row is in scope.
SYSTEM = Viewer(user_id=None, role=Role.ADMIN)


def task_scope(viewer: Viewer, task_id: SQLColumnExpression[uuid.UUID]) -> ColumnElement[bool]:
    """Limit rows that hang off a task (by `task_id`) to tasks the viewer may see."""
    if viewer.sees_every_task:
        return true()
    return task_id.in_(select(Task.id).where(Task.user_id == viewer.id_parameter))


def analysis_scope(viewer: Viewer, analysis_id: SQLColumnExpression[uuid.UUID]) -> ColumnElement[bool]:
    """Limit rows that hang off an analysis to analyses of tasks the viewer may see."""
    if viewer.sees_every_task:
        return true()
    return analysis_id.in_(
        select(Analysis.id).join(Task, Task.id == Analysis.task_id).where(Task.user_id == viewer.id_parameter)
    )


# A batch's keys as a condition on a column (graph/engine/batching.py's key match).
Among = Callable[[Any], ColumnElement[bool]]


def among_visible_tasks(statement: Select, viewer: Viewer, task_id: SQLColumnExpression[uuid.UUID],
                        among: Among) -> Select:
    """`statement`'s rows whose `task_id` is one of a batch's keys and a task the viewer may see.

    A join on the keys' tasks rather than a scope subquery beside the keys: with
    the subquery PostgreSQL read every task the viewer owns, or tested each row
    against the whole list of keys (EXPLAIN at a page of 200: 12 ms against 5).
    """
    if viewer.sees_every_task:
        return statement.where(among(task_id))
    return statement.join(Task, Task.id == task_id).where(among(Task.id), Task.user_id == viewer.id_parameter)


def among_visible_analyses(statement: Select, viewer: Viewer, analysis_id: SQLColumnExpression[uuid.UUID],
                           among: Among) -> Select:
    """`statement`'s rows whose `analysis_id` is one of a batch's keys, of analyses the viewer may see."""
    if viewer.sees_every_task:
        return statement.where(among(analysis_id))
    return (
        statement.join(Analysis, Analysis.id == analysis_id).join(Task, Task.id == Analysis.task_id)
        .where(among(Analysis.id), Task.user_id == viewer.id_parameter)
    )


def user_scope(viewer: Viewer, user_id: SQLColumnExpression[uuid.UUID]) -> ColumnElement[bool]:
    """A USER sees only themselves; a WORKER themselves and the owners of tasks it sees; an ADMIN everyone."""
    if viewer.role is Role.ADMIN:
        return true()
    own = user_id == viewer.id_parameter
    if viewer.role is Role.WORKER:
        # Correlated, so a lookup by id probes the owner index instead of reading every task.
        owns_a_visible_task = select(Task.id).where(Task.user_id == user_id, viewer.visible_tasks()).exists()
        return or_(own, owns_a_visible_task)
    return own

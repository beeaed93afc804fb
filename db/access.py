"""Who is asking, and which rows that lets them see: scoping lives in the SQL itself."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, SQLColumnExpression, Uuid, bindparam, or_, select, true

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


# The keys a statement is already limited to, as a condition on a column: when the
# statement's key column is the scoped id itself, the scope's subquery reads just
# those ids instead of every row the viewer owns (PostgreSQL cannot carry an
# `= ANY(keys)` into a subquery itself, and hashed all of the owner's rows).
Among = Callable[[Any], ColumnElement[bool]]


def task_scope(viewer: Viewer, task_id: SQLColumnExpression[uuid.UUID], among: Among | None = None
               ) -> ColumnElement[bool]:
    """Limit rows that hang off a task (by `task_id`) to tasks the viewer may see."""
    if viewer.sees_every_task:
        return true()
    visible = select(Task.id).where(Task.user_id == viewer.id_parameter)
    return task_id.in_(visible if among is None else visible.where(among(Task.id)))


def analysis_scope(viewer: Viewer, analysis_id: SQLColumnExpression[uuid.UUID], among: Among | None = None
                   ) -> ColumnElement[bool]:
    """Limit rows that hang off an analysis to analyses of tasks the viewer may see."""
    if viewer.sees_every_task:
        return true()
    visible = select(Analysis.id).join(Task, Task.id == Analysis.task_id).where(Task.user_id == viewer.id_parameter)
    return analysis_id.in_(visible if among is None else visible.where(among(Analysis.id)))


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

"""Who is asking, and which rows that lets them see: scoping lives in the SQL itself."""

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, true

from db.enums import Role
from db.models import Task


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: uuid.UUID | None
    role: Role

    @property
    def sees_every_task(self) -> bool:
        return self.role in (Role.WORKER, Role.ADMIN)

    def visible_tasks(self) -> ColumnElement[bool]:
        """The WHERE clause that limits tasks (and everything beneath them) to this viewer."""
        if self.sees_every_task:
            return true()
        return Task.user_id == self.user_id


# The pipeline and the operator's CLI act as the system: every row is in scope.
SYSTEM = Viewer(user_id=None, role=Role.ADMIN)

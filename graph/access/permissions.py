"""Who may call a field: signed in, or of a role. Row-level rules live in the SQL (db/access.py).

One instance of each class serves every request at once, so a refusal is
raised from what this request's context says, never stored on the instance.
"""

from typing import Any, ClassVar

from strawberry.permission import BasePermission

from db.enums import Role
from db.errors import Forbidden
from graph.context import Info


class IsAuthenticated(BasePermission):
    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        # Raises UNAUTHENTICATED, saying why a presented token was refused.
        info.context.require_viewer()
        return True


class _HasRole(BasePermission):
    roles: ClassVar[frozenset[Role]]
    refusal: ClassVar[str]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.require_viewer().role in self.roles

    def on_unauthorized(self) -> None:
        raise Forbidden(self.refusal)


class IsWorker(_HasRole):
    refusal = "only the analysis pipeline (WORKER) or an ADMIN can do this"
    roles = frozenset({Role.WORKER, Role.ADMIN})


class IsAdmin(_HasRole):
    refusal = "only an ADMIN can do this"
    roles = frozenset({Role.ADMIN})

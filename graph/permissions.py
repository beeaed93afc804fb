"""Who may call a field: signed in, or of a role. Row-level rules live in the SQL (db/access.py)."""

from typing import Any

from strawberry.permission import BasePermission

from db.enums import Role
from graph.context import Info


class IsAuthenticated(BasePermission):
    message = "sign in to do this"
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if info.context.viewer is None:
            # Say why a presented token was refused, not just that one is missing.
            self.message = info.context.auth_error or IsAuthenticated.message
            return False
        return True


class _HasRole(BasePermission):
    roles: frozenset[Role] = frozenset()
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer is None:
            self.message = info.context.auth_error or IsAuthenticated.message
            self.error_extensions = {"code": "UNAUTHENTICATED"}
            return False
        return viewer.role in self.roles


class IsWorker(_HasRole):
    message = "only the analysis pipeline (WORKER) or an ADMIN can do this"
    roles = frozenset({Role.WORKER, Role.ADMIN})


class IsAdmin(_HasRole):
    message = "only an ADMIN can do this"
    roles = frozenset({Role.ADMIN})

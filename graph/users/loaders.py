import uuid
from typing import Any

from sqlalchemy import Select, select

from db import models
from db.access import Viewer, user_scope
from graph.engine.batching import BatchLoader, KeyMatch
from graph.users.types import USER_COLUMNS, User


class UserByIdLoader(BatchLoader[uuid.UUID, User | None]):
    node, shape = User, USER_COLUMNS

    @staticmethod
    def statement(viewer: Viewer, key: KeyMatch, columns: tuple[Any, ...]) -> Select:
        return select(*columns).where(key(models.User.id), user_scope(viewer, models.User.id))

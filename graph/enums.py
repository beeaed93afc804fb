"""The domain's enums exposed to GraphQL under their own names."""

from enum import Enum

import strawberry

from db import enums

Role = strawberry.enum(enums.Role)
TaskStatus = strawberry.enum(enums.TaskStatus)
Verdict = strawberry.enum(enums.Verdict)
Severity = strawberry.enum(enums.Severity)
EventType = strawberry.enum(enums.EventType)


@strawberry.enum
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"

"""The domain's enums exposed to GraphQL under their own names."""

from enum import Enum

import strawberry

from db import enums

# strawberry.enum marks a class and returns it: each name stays the domain's own class (and, to a
# type checker, a type rather than a variable).
for domain_enum in (enums.Role, enums.TaskStatus, enums.Verdict, enums.Severity, enums.EventType):
    strawberry.enum(domain_enum)
Role = enums.Role
TaskStatus = enums.TaskStatus
Verdict = enums.Verdict
Severity = enums.Severity
EventType = enums.EventType


@strawberry.enum
class SortDirection(Enum):
    ASC = "ASC"
    DESC = "DESC"

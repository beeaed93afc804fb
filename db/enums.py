"""The closed vocabularies of the domain, shared by the ORM and the API."""

import enum


class Role(enum.StrEnum):
    USER = "USER"
    WORKER = "WORKER"
    ADMIN = "ADMIN"


class TaskStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Verdict(enum.StrEnum):
    APPROVED = "APPROVED"
    REVIEW = "REVIEW"
    REJECTED = "REJECTED"


class Severity(enum.StrEnum):
    CRITICAL = "CRITICAL"
    MAJOR = "MAJOR"
    MINOR = "MINOR"
    INFO = "INFO"


class EventType(enum.StrEnum):
    CREATED = "CREATED"
    STATUS_CHANGED = "STATUS_CHANGED"
    PROGRESS = "PROGRESS"
    ANALYSIS_RECORDED = "ANALYSIS_RECORDED"
    ARTIFACT_ADDED = "ARTIFACT_ADDED"

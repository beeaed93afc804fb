"""The ORM classes of the audit graph, nothing else."""

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, IdMixin, JSONDocument, TimestampMixin, UTCDateTime
from db.enums import EventType, Role, Severity, TaskStatus, Verdict


def _enum(python_enum: type[enum.Enum], name: str) -> Enum:
    # Portable VARCHAR + CHECK instead of a native PostgreSQL enum, so adding a
    # value later is a plain migration on both databases.
    return Enum(python_enum, name=name, native_enum=False, create_constraint=True, length=32)


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored lower-cased, which makes the plain unique constraint
        # case-insensitive on both databases.
        UniqueConstraint("email"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    email: Mapped[str] = mapped_column(String(320))
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.USER)
    # Named in every token; moved by a password change, a deactivation or a role change, which ends
    # every session (token and open stream) opened before it.
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    tasks: Mapped[list["Task"]] = relationship(
        back_populates="owner", lazy="raise", cascade="all, delete-orphan", passive_deletes=True,
        foreign_keys="Task.user_id",
    )


class Task(IdMixin, TimestampMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("user_id", "file_hash"),
        Index(None, "created_at", "id"),
        Index(None, "user_id", "created_at", "id"),
        Index(None, "status", "created_at", "id"),
        # Every list ordering and filter a viewer can ask for is a walk of one of these
        # (db/listing.py): a USER's list by its owner first, a WORKER's or ADMIN's without.
        Index(None, "user_id", "status", "created_at", "id"),
        Index(None, "user_id", "verdict", "created_at", "id"),
        Index(None, "verdict", "created_at", "id"),
        Index(None, "user_id", "compliance_key", "id"),
        Index(None, "compliance_key", "id"),
        Index(None, "user_id", "updated_at", "id"),
        Index(None, "updated_at", "id"),
        # The lease sweep and the expired-leases gauge read only the tasks being processed.
        Index(
            "ix_tasks_processing_lease_expires_at", "lease_expires_at",
            postgresql_where=text("status = 'PROCESSING'"), sqlite_where=text("status = 'PROCESSING'"),
        ),
        CheckConstraint("file_size IS NULL OR file_size >= 0", name="file_size_non_negative"),
        CheckConstraint("page_count IS NULL OR page_count >= 0", name="page_count_non_negative"),
        CheckConstraint(
            "(file_hash IS NOT NULL) OR (source_url IS NOT NULL)", name="has_file_or_url"
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[TaskStatus] = mapped_column(
        _enum(TaskStatus, "task_status"), default=TaskStatus.QUEUED, index=True
    )
    original_filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(255))
    file_path: Mapped[str | None] = mapped_column(String(1024))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    file_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    source_url: Mapped[str | None] = mapped_column(String(2048), index=True)
    page_count: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last sequence number handed to this task's events. Incrementing it
    # locks the task row, which is what makes event sequences gap-free.
    last_event_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The claim (db/claims.py): a lease on the task for one worker, which every pipeline write must
    # name. Kept after its holder completes or fails the task; cleared when the task leaves its hands.
    claim_id: Mapped[uuid.UUID | None] = mapped_column()
    claimed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Claims since the task was last queued by hand: the current claim's attempt number.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The analysis's verdict and compliance score, kept here by db/analyses.py in the same transaction,
    # so that filtering by verdict and ordering by score are walks of the task indexes above. The score
    # is -1 without an analysis or a score: a NULL would break the keyset comparison of a page cursor.
    verdict: Mapped[Verdict | None] = mapped_column(_enum(Verdict, "verdict"))
    compliance_key: Mapped[float] = mapped_column(Float, default=-1.0, server_default="-1")

    owner: Mapped[User] = relationship(back_populates="tasks", lazy="raise", foreign_keys=[user_id])
    analysis: Mapped["Analysis | None"] = relationship(
        back_populates="task", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    events: Mapped[list["TaskEvent"]] = relationship(
        back_populates="task", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    artifacts: Mapped[list["Artifact"]] = relationship(
        back_populates="task", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class Analysis(IdMixin, TimestampMixin, Base):
    __tablename__ = "analyses"
    __table_args__ = (
        UniqueConstraint("task_id"),
        CheckConstraint(
            "compliance_score IS NULL OR (compliance_score >= 0 AND compliance_score <= 100)",
            name="compliance_score_range",
        ),
        CheckConstraint(
            "confidence_score IS NULL OR (confidence_score >= 0 AND confidence_score <= 1)",
            name="confidence_score_range",
        ),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    equipment_type: Mapped[str | None] = mapped_column(String(255))
    test_type: Mapped[str | None] = mapped_column(String(255))
    equipment_tag: Mapped[str | None] = mapped_column(String(255))
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict, "verdict"), index=True)
    compliance_score: Mapped[float | None] = mapped_column(Float)
    confidence_score: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str | None] = mapped_column(Text)
    extraction_result: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    validation_result: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    # The claim (the attempt) it was recorded under: a later attempt replaces it without being asked.
    claim_id: Mapped[uuid.UUID | None] = mapped_column()

    task: Mapped[Task] = relationship(back_populates="analysis", lazy="raise")
    findings: Mapped[list["Finding"]] = relationship(
        back_populates="analysis", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class Finding(IdMixin, TimestampMixin, Base):
    __tablename__ = "findings"
    __table_args__ = (
        CheckConstraint(
            "confidence IS NULL OR (confidence >= 0 AND confidence <= 1)",
            name="confidence_range",
        ),
    )

    analysis_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), index=True
    )
    severity: Mapped[Severity] = mapped_column(_enum(Severity, "severity"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    remediation: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    artifact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("artifacts.id", ondelete="SET NULL"), index=True
    )

    analysis: Mapped[Analysis] = relationship(back_populates="findings", lazy="raise")
    sources: Mapped[list["SourceReference"]] = relationship(
        back_populates="finding", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    artifact: Mapped["Artifact | None"] = relationship(lazy="raise")


class SourceReference(IdMixin, TimestampMixin, Base):
    __tablename__ = "source_references"
    __table_args__ = (CheckConstraint("page_number >= 1", name="page_number_positive"),)

    finding_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("findings.id", ondelete="CASCADE"), index=True
    )
    page_number: Mapped[int | None] = mapped_column(Integer)
    section: Mapped[str | None] = mapped_column(String(255))
    snippet: Mapped[str | None] = mapped_column(Text)

    finding: Mapped[Finding] = relationship(back_populates="sources", lazy="raise")


class TaskEvent(IdMixin, TimestampMixin, Base):
    __tablename__ = "task_events"
    __table_args__ = (
        UniqueConstraint("task_id", "sequence"),
        UniqueConstraint("position"),
        Index(None, "user_id", "position"),
        CheckConstraint("sequence >= 1", name="sequence_positive"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    # The event's place in the whole log, in commit order and without gaps,
    # numbered just before its transaction commits (db.events.announce_events):
    # NULL only inside that transaction, never in a committed row.
    position: Mapped[int | None] = mapped_column(BigInteger)
    # The task's owner, written with the position: a USER resuming the log reads their own events
    # by (user_id, position) instead of every event committed since, by anyone.
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[EventType] = mapped_column(_enum(EventType, "event_type"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)

    task: Mapped[Task] = relationship(back_populates="events", lazy="raise")


class Artifact(IdMixin, TimestampMixin, Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        CheckConstraint("file_size >= 0", name="file_size_non_negative"),
        CheckConstraint('"index" >= 0', name="index_non_negative"),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(255))
    index: Mapped[int] = mapped_column(Integer, default=0)
    content_type: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_path: Mapped[str] = mapped_column(String(1024))
    file_hash: Mapped[str] = mapped_column(String(64))

    task: Mapped[Task] = relationship(back_populates="artifacts", lazy="raise")


class FigureColumns(TimestampMixin):
    """What the dashboard shows, kept as running totals (db/figures.py keeps them; every write that
    moves one changes it in its own transaction): tasks by status; analyses by verdict, with the sums
    and counts of their scores; findings by severity. One column a value, so a change is one row
    update. Column names are the enum values in lower case."""

    queued: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    processing: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    completed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cancelled: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    approved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    review: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    rejected: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    compliance_sum: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    compliance_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    confidence_sum: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    confidence_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    critical: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    major: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    info: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class OwnerFigures(FigureColumns, Base):
    """The figures of all of one owner's tasks."""

    __tablename__ = "owner_figures"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, sort_order=-10
    )


class OwnerDayFigures(FigureColumns, Base):
    """The figures of one owner's tasks created on one day (UTC): tasks per day, and dashboards
    over a window of days."""

    __tablename__ = "owner_day_figures"
    __table_args__ = (Index(None, "day"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, sort_order=-10
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, sort_order=-9)


class DayTaskCounts(Base):
    """How many tasks were created on one day (UTC), everyone's, in at most DAY_SHARDS rows a day.

    A WORKER's or an ADMIN's tasks per day: one owner_day_figures row per owner and day made the sum grow
    with the number of owners active each day (twelve thousand rows for a month at a million tasks); this
    is at most DAY_SHARDS rows a day however many owners there are. A transaction adds its change to one of
    the day's rows, picked at random (db/figures.py), so concurrent submissions do not all queue for one row;
    only a day's sum means anything (a task removed may be taken off another row than the one it was added to).
    """

    __tablename__ = "day_task_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    tasks: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class PersistedQuery(IdMixin, TimestampMixin, Base):
    """A document a client registered as an automatic persisted query, for every process to run by its hash."""

    __tablename__ = "persisted_queries"
    __table_args__ = (UniqueConstraint("sha256"),)

    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    # The document's length, kept beside it: bounding the table sums these, never the documents themselves.
    size: Mapped[int] = mapped_column(Integer)


class StorageMarker(IdMixin, TimestampMixin, Base):
    """The marker file every process must find in a shared folder (db/storage_marker.py); `id` names the file."""

    __tablename__ = "storage_markers"
    __table_args__ = (UniqueConstraint("folder"),)

    # Which folder the marker is for ("uploads"): one row each.
    folder: Mapped[str] = mapped_column(String(64))


class AccessChange(IdMixin, TimestampMixin, Base):
    """An access change (deactivation, role, password) as the embedded SQLite default announces it: in order,
    in the changing transaction, for a server in another process than the change (the CLI's) to poll.
    PostgreSQL announces the same with NOTIFY and writes none (db/events.py)."""

    __tablename__ = "access_changes"
    __table_args__ = (UniqueConstraint("position"),)

    position: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))


class StreamTicket(IdMixin, TimestampMixin, Base):
    """A short-lived, single-use credential that signs one SSE stream in from a URL (the browser's own
    EventSource sends no header). Only its sha256 is kept; it is spent by the first stream that shows it."""

    __tablename__ = "stream_tickets"
    __table_args__ = (UniqueConstraint("ticket_hash"), Index(None, "expires_at"))

    ticket_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The account's token generation when it was minted: a password change, a deactivation or a role
    # change since then voids it, as it voids the token that minted it.
    token_generation: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the token that minted it expires: the stream it opens ends then, as that token's would.
    session_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

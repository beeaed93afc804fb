"""Maintained figures, part 2: fill the figures and new columns from the rows there, and the list indexes

Revision ID: 5a6b7c8d9e0f
Revises: 4f1a2b3c4d5e
Create Date: 2026-12-06 15:10:00.000000

A transaction of its own after 0004's: nothing here takes a lock that stops a reader. On PostgreSQL
the tables it reads are locked in SHARE mode first, so writers wait until it commits (the figures
must count every row) while readers go on; each fill is one set-based statement (a join, not a probe
per row), and the indexes are built after the rows are in. SQLite's readers go on in WAL mode.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "5a6b7c8d9e0f"
down_revision: str | None = "4f1a2b3c4d5e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_INDEX = "ix_tasks_original_filename_trgm"
OWNER_SIZE_INDEX = "ix_tasks_user_id_size_key_id"
SIZE_INDEX = "ix_tasks_size_key_id"
STATUSES = ("QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED")
VERDICTS = ("APPROVED", "REVIEW", "REJECTED")
SEVERITIES = ("CRITICAL", "MAJOR", "MINOR", "INFO")
COUNTERS = (*STATUSES, *VERDICTS, *SEVERITIES)
FIGURES = (*(name.lower() for name in COUNTERS),
           "compliance_sum", "compliance_count", "confidence_sum", "confidence_count")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE tasks, analyses, findings, task_events IN SHARE MODE")
    _backfill()

    with op.batch_alter_table("owner_day_figures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_day_figures_day"), ["day"], unique=False)
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_events_user_id_position"), ["user_id", "position"], unique=False)
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        # Everyone's newest tasks first (a WORKER's list) is a walk of (created_at, id); 0006 drops the
        # index on created_at alone, which it makes redundant.
        for columns in (("created_at", "id"), ("user_id", "status", "created_at", "id"),
                        ("user_id", "verdict", "created_at", "id"),
                        ("verdict", "created_at", "id"), ("user_id", "compliance_key", "id"),
                        ("compliance_key", "id"), ("user_id", "updated_at", "id"), ("updated_at", "id")):
            batch_op.create_index(batch_op.f(f"ix_tasks_{'_'.join(columns)}"), list(columns), unique=False)
        batch_op.create_index(
            "ix_tasks_processing_lease_expires_at", ["lease_expires_at"], unique=False,
            postgresql_where=sa.text("status = 'PROCESSING'"), sqlite_where=sa.text("status = 'PROCESSING'"),
        )
    # The FILE_SIZE ordering's key (a URL audit has no size and sorts as -1), by owner and for everyone.
    op.create_index(OWNER_SIZE_INDEX, "tasks", ["user_id", sa.text("coalesce(file_size, -1)"), "id"], unique=False)
    op.create_index(SIZE_INDEX, "tasks", [sa.text("coalesce(file_size, -1)"), "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # filenameContains (ILIKE '%…%') through trigrams; pg_trgm is a trusted extension, which the
        # database's owner may create. SQLite has no such index: there the filter walks the viewer's tasks.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(TRIGRAM_INDEX, "tasks", ["original_filename"], unique=False, postgresql_using="gin",
                        postgresql_ops={"original_filename": "gin_trgm_ops"})


def _backfill() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute(
        "UPDATE tasks SET verdict = analyses.verdict, compliance_key = coalesce(analyses.compliance_score, -1) "
        "FROM analyses WHERE analyses.task_id = tasks.id"
    )
    op.execute("UPDATE task_events SET user_id = tasks.user_id FROM tasks WHERE tasks.id = task_events.task_id")
    day = "CAST(timezone('UTC', tasks.created_at) AS date)" if postgresql else "date(tasks.created_at)"
    now = "now()" if postgresql else "CURRENT_TIMESTAMP"

    def flag(column: str, value: str) -> str:
        return f"CASE WHEN {column} = '{value}' THEN 1 ELSE 0 END"

    per_task = ", ".join([
        *(f"{flag('tasks.status', status)} AS {status.lower()}" for status in STATUSES),
        *(f"{flag('analyses.verdict', verdict)} AS {verdict.lower()}" for verdict in VERDICTS),
        *(f"coalesce(severities.{severity.lower()}, 0) AS {severity.lower()}" for severity in SEVERITIES),
        "coalesce(analyses.compliance_score, 0) AS compliance_sum",
        "CASE WHEN analyses.compliance_score IS NULL THEN 0 ELSE 1 END AS compliance_count",
        "coalesce(analyses.confidence_score, 0) AS confidence_sum",
        "CASE WHEN analyses.confidence_score IS NULL THEN 0 ELSE 1 END AS confidence_count",
    ])
    by_severity = ", ".join(f"sum({flag('severity', severity)}) AS {severity.lower()}" for severity in SEVERITIES)
    sums = ", ".join(f"sum({name})" for name in FIGURES)
    names = ", ".join(FIGURES)
    op.execute(
        f"INSERT INTO owner_day_figures (owner_id, day, {names}, created_at, updated_at) "
        f"SELECT owner_id, day, {sums}, {now}, {now} FROM ("
        f" SELECT tasks.user_id AS owner_id, {day} AS day, {per_task} FROM tasks"
        "  LEFT JOIN analyses ON analyses.task_id = tasks.id"
        f"  LEFT JOIN (SELECT analysis_id, {by_severity} FROM findings GROUP BY analysis_id) AS severities"
        "   ON severities.analysis_id = analyses.id"
        ") AS per_task GROUP BY owner_id, day"
    )
    op.execute(
        f"INSERT INTO owner_figures (owner_id, {names}, created_at, updated_at) "
        f"SELECT owner_id, {sums}, {now}, {now} FROM owner_day_figures GROUP BY owner_id"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(TRIGRAM_INDEX, table_name="tasks")
    op.drop_index(SIZE_INDEX, table_name="tasks")
    op.drop_index(OWNER_SIZE_INDEX, table_name="tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_processing_lease_expires_at")
        for columns in (("updated_at", "id"), ("user_id", "updated_at", "id"), ("compliance_key", "id"),
                        ("user_id", "compliance_key", "id"), ("verdict", "created_at", "id"),
                        ("user_id", "verdict", "created_at", "id"), ("user_id", "status", "created_at", "id"),
                        ("created_at", "id")):
            batch_op.drop_index(batch_op.f(f"ix_tasks_{'_'.join(columns)}"))
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_events_user_id_position"))
    with op.batch_alter_table("owner_day_figures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_day_figures_day"))
    op.execute("DELETE FROM owner_day_figures")
    op.execute("DELETE FROM owner_figures")
    op.execute("UPDATE task_events SET user_id = NULL")
    op.execute("UPDATE tasks SET verdict = NULL, compliance_key = -1")
